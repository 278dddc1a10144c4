"""Pick the camera backend named in the settings; backends are imported only when chosen."""
import importlib

from camera_server.capture.camera import Camera

# camera setting -> (module of this package, factory function name)
BACKENDS = {
    "demo": ("demo", "DemoSource"),
    "default": ("opencv", "OpenCVSource"),
    "usb": ("opencv", "OpenCVSource"),
    "opencv": ("opencv", "OpenCVSource"),
    "liquidlens": ("opencv", "OpenCVSource"),
    "kinect": ("opencv", "KinectSource"),
    "pi": ("pi", "PiCameraSource"),
    "picamera": ("pi", "PiCameraSource"),
}


def create_source(settings):
    module_name, class_name = BACKENDS[settings.camera]
    source_class = getattr(importlib.import_module(f"{__package__}.{module_name}"), class_name)
    size = {"width": settings.width, "height": settings.height, "fps": settings.fps}
    if module_name == "opencv":
        extra = {"focus": True} if settings.camera == "liquidlens" else {}
        return source_class(settings.source, **size, **extra)
    return source_class(**size)


def create_camera(settings, hub=None):
    """The Camera for these settings; raises CameraError when the backend cannot exist here."""
    return Camera(create_source(settings), kind=settings.camera, name=settings.name, width=settings.width,
                  height=settings.height, jpeg_quality=settings.jpeg_quality,
                  idle_timeout=settings.idle_timeout, hub=hub)
