"""USB and other OpenCV cameras (a device index, /dev/videoN, a video file, an RTSP/HTTP URL; LiquidLens
focus; the Kinect v1), the camera file the original project names.

The code is in camera_server/capture/opencv.py; the worker that runs any camera is capture/camera.py.
"""
from camera_server.capture.camera import Camera, CameraError, FocusNotSupported
from camera_server.capture.opencv import KinectSource, OpenCVSource

__all__ = ["Camera", "CameraError", "FocusNotSupported", "KinectSource", "OpenCVSource"]
