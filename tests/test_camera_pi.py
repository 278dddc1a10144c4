"""The Pi camera against a fake picamera2 module, and its clear error where there is none."""
import sys
import types

import numpy as np
import pytest

from camera_server.capture.camera import Camera, CameraError, FocusNotSupported


class FakePicamera2:
    instances = []
    autofocus_lens = True

    def __init__(self):
        self.configured = self.started = self.closed = False
        self.controls_set = []
        self.camera_controls = {"ExposureTime": (1, 100000, 20000)}
        if FakePicamera2.autofocus_lens:
            self.camera_controls.update({"AfMode": (0, 2, 0), "LensPosition": (0.0, 15.0, 1.0)})
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main, controls):
        return {"main": main, "controls": controls}

    def configure(self, config):
        self.config = config
        self.configured = True

    def start(self):
        self.started = True

    def capture_array(self, name):
        width, height = self.config["main"]["size"]
        return np.full((height, width, 3), len(self.controls_set) * 10, np.uint8)

    def capture_metadata(self):
        return {"LensPosition": 2.0}

    def set_controls(self, controls):
        self.controls_set.append(controls)

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    FakePicamera2.instances, FakePicamera2.autofocus_lens = [], True
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return FakePicamera2


def test_frames_come_from_picamera2(fake_picamera2):
    from camera_server.capture.pi import PiCameraSource
    camera = Camera(PiCameraSource(320, 240, 25), kind="pi", idle_timeout=0.2)
    try:
        frame = camera.current_frame()
        assert frame.image.shape == (240, 320, 3)
        device = fake_picamera2.instances[0]
        assert device.config["main"] == {"size": (320, 240), "format": "RGB888"}
        assert device.config["controls"] == {"FrameRate": 25.0}
    finally:
        camera.stop()
    assert device.closed and not device.started


def test_camera_module_3_focus(fake_picamera2):
    from camera_server.capture.pi import LENS_STEP, PiCameraSource
    camera = Camera(PiCameraSource(), kind="pi", idle_timeout=0.2)
    try:
        assert camera.set_autofocus(True)["autofocus"] is True
        device = fake_picamera2.instances[0]
        assert device.controls_set[-1] == {"AfMode": 2}
        assert camera.set_focus(4.5)["focus"] == 4.5
        assert device.controls_set[-1] == {"AfMode": 0, "LensPosition": 4.5}
        assert camera.step_focus(2)["focus"] == 4.5 + 2 * LENS_STEP
        assert camera.set_focus(99)["focus"] == 15.0        # clamped to the lens's range
    finally:
        camera.stop()


def test_a_module_without_autofocus_refuses_focus(fake_picamera2):
    from camera_server.capture.pi import PiCameraSource
    fake_picamera2.autofocus_lens = False
    camera = Camera(PiCameraSource(), kind="pi", idle_timeout=0.2)
    try:
        with pytest.raises(FocusNotSupported, match="Camera Module 3"):
            camera.step_focus(1)
    finally:
        camera.stop()


def test_no_camera_attached_is_a_no_signal_reason(fake_picamera2, monkeypatch):
    from camera_server.capture.pi import PiCameraSource

    def no_camera():
        raise IndexError("list index out of range")

    source = PiCameraSource()
    monkeypatch.setattr(source._module, "Picamera2", no_camera)
    with pytest.raises(CameraError, match="is it connected and enabled"):
        source.open()


def test_off_a_pi_choosing_it_fails_with_install_instructions(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)      # makes the import fail
    from camera_server.capture.pi import PiCameraSource
    with pytest.raises(CameraError, match="apt install python3-picamera2.*--system-site-packages"):
        PiCameraSource()
