"""The serial LED and heart-rate board: ``trinket.Led``, ``trinket.Color``, ``trinket.build_color`` and
``trinket.open_light``, the names the original project gives.

The code is in camera_server/board/ (trinket.py: the serial protocol and the Led; light_model.py: colours).
"""
from camera_server.board.light_model import Color, LedUnavailable, build_color
from camera_server.board.trinket import HeartRate, Led, open_light

__all__ = ["Color", "HeartRate", "Led", "LedUnavailable", "build_color", "open_light"]
