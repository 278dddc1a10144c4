"""Raspberry Pi cameras through picamera2, imported only when this camera is chosen.

picamera2 comes from Raspberry Pi OS (``sudo apt install python3-picamera2``), not from pip, so the
virtual environment needs ``--system-site-packages`` (flaskstart.sh creates it that way). Focus for
Camera Module 3 goes through the ``AfMode`` and ``LensPosition`` controls; the lens position is in
dioptres (0 is infinity).
"""
import importlib
import logging

from camera_server.capture.camera import CameraError, FocusNotSupported, Source

log = logging.getLogger(__name__)

AF_MANUAL, AF_CONTINUOUS = 0, 2     # libcamera's AfModeEnum values
LENS_STEP = 0.5                     # dioptres per focus step
INSTALL_HINT = ("the Pi camera needs picamera2: on Raspberry Pi OS run 'sudo apt install python3-picamera2' "
                "and use a virtual environment made with --system-site-packages (flaskstart.sh does)")


def import_picamera2():
    try:
        return importlib.import_module("picamera2")
    except ImportError as error:
        raise CameraError(f"{INSTALL_HINT} ({error})") from None


class PiCameraSource(Source):
    name = "Raspberry Pi camera"

    def __init__(self, width=640, height=480, fps=30.0):
        self._module = import_picamera2()
        self.width, self.height, self.fps = width, height, fps
        self._camera = None
        self._lens_range = None
        self._autofocus = None
        self._lens_position = None

    def open(self):
        try:
            camera = self._module.Picamera2()
        except Exception as error:  # picamera2 raises plain RuntimeError/IndexError when no camera is attached
            raise CameraError(f"cannot open the Pi camera: {error} (is it connected and enabled?)") from None
        try:
            # RGB888 is stored B, G, R in memory: what OpenCV and the JPEG encoder expect.
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)})
            camera.configure(config)
            camera.start()
        except Exception as error:
            camera.close()
            raise CameraError(f"cannot start the Pi camera: {error}") from None
        self._camera = camera
        lens = camera.camera_controls.get("LensPosition")
        self._lens_range = (float(lens[0]), float(lens[1])) if lens else None
        self._restore_focus()

    def read(self):
        if self._camera is None:
            raise CameraError("the Pi camera is not open")
        return self._camera.capture_array("main")

    def close(self):
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()

    # -- focus (Camera Module 3) ------------------------------------------------------------
    @property
    def supports_focus(self):
        """Unknown until the camera is open; then true for modules with an autofocus lens."""
        return self._camera is None or "AfMode" in self._camera.camera_controls

    def set_autofocus(self, enabled):
        self._require_focus()
        self._camera.set_controls({"AfMode": AF_CONTINUOUS if enabled else AF_MANUAL})
        self._autofocus = bool(enabled)
        return self.focus_state()

    def set_focus(self, value):
        self._require_focus()
        low, high = self._lens_range or (0.0, 10.0)
        position = min(max(float(value), low), high)
        self._camera.set_controls({"AfMode": AF_MANUAL, "LensPosition": position})
        self._autofocus, self._lens_position = False, position
        return self.focus_state()

    def step_focus(self, steps):
        self._require_focus()
        current = self._lens_position
        if current is None:
            current = self._camera.capture_metadata().get("LensPosition", 1.0)
        return self.set_focus(current + steps * LENS_STEP)

    def focus_state(self):
        if self._camera is None or not self.supports_focus:
            return None
        return {"autofocus": self._autofocus, "focus": self._lens_position,
                "range": list(self._lens_range or (0.0, 10.0)), "step": LENS_STEP}

    def _require_focus(self):
        if self._camera is None:
            raise CameraError("the Pi camera is not open")
        if not self.supports_focus:
            raise FocusNotSupported("this Pi camera module has no autofocus lens (Camera Module 3 has one)")

    def _restore_focus(self):
        if not self.supports_focus:
            return
        if self._lens_position is not None:
            self._camera.set_controls({"AfMode": AF_MANUAL, "LensPosition": self._lens_position})
        elif self._autofocus is not None:
            self._camera.set_controls({"AfMode": AF_CONTINUOUS if self._autofocus else AF_MANUAL})
