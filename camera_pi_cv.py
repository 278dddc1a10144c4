"""The Raspberry Pi camera through picamera2, the camera file the original project names.

The code is in camera_server/capture/pi.py; the worker that runs any camera is capture/camera.py.
"""
from camera_server.capture.camera import Camera, CameraError, FocusNotSupported
from camera_server.capture.pi import PiCameraSource

__all__ = ["Camera", "CameraError", "FocusNotSupported", "PiCameraSource"]
