"""Pick the camera backend named in the settings; backends are imported only when chosen."""
import importlib

from camera_base import Camera

# camera setting -> (module, factory function name)
BACKENDS = {
    "demo": ("camera_demo", "DemoSource"),
    "default": ("camera_usb", "OpenCVSource"),
    "usb": ("camera_usb", "OpenCVSource"),
    "opencv": ("camera_usb", "OpenCVSource"),
    "liquidlens": ("camera_usb", "OpenCVSource"),
    "kinect": ("camera_usb", "KinectSource"),
    "pi": ("camera_pi_cv", "PiCameraSource"),
    "picamera": ("camera_pi_cv", "PiCameraSource"),
}


def create_source(settings):
    module_name, class_name = BACKENDS[settings.camera]
    source_class = getattr(importlib.import_module(module_name), class_name)
    size = {"width": settings.width, "height": settings.height, "fps": settings.fps}
    if module_name == "camera_usb":
        extra = {"focus": True} if settings.camera == "liquidlens" else {}
        return source_class(settings.source, **size, **extra)
    return source_class(**size)


def create_camera(settings, hub=None):
    """The Camera for these settings; raises CameraError when the backend cannot exist here."""
    return Camera(create_source(settings), kind=settings.camera, width=settings.width,
                  height=settings.height, jpeg_quality=settings.jpeg_quality,
                  idle_timeout=settings.idle_timeout, hub=hub)
