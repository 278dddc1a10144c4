"""Logging for the running server: camera messages in the terminal, everything in the log file."""
import logging

CAMERA_LOGGERS = ("camera_base", "camera_usb", "camera_pi_cv", "camera_demo", "cameras")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(log_file, level=logging.INFO):
    root = logging.getLogger()
    root.setLevel(level)
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(file_handler)
    terminal = logging.StreamHandler()
    terminal.setFormatter(logging.Formatter("%(asctime)s camera: %(message)s", "%H:%M:%S"))
    for name in CAMERA_LOGGERS:
        logging.getLogger(name).addHandler(terminal)
