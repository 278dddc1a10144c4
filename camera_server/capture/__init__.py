"""Capture: the camera worker and frame hub, and the backends by name (demo, OpenCV/URL, Kinect, Pi)."""
