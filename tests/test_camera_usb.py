"""OpenCV sources through the real cv2.VideoCapture code: a video file, an HTTP stream, a fake device."""
import threading

import cv2
import numpy as np
import pytest
from werkzeug.serving import make_server

from camera_server.capture import camera as camera_base
from camera_server.capture import opencv as camera_usb
from camera_server.capture.camera import Camera, CameraError, FocusNotSupported
from camera_server.capture.opencv import KinectSource, OpenCVSource, demosaic_grbg, describe_source, find_kinect_device
from camera_server.web.app import create_app, stop_services
from conftest import read_one_part


@pytest.mark.parametrize("spec, expected", [
    ("", ("index", 0)), ("2", ("index", 2)), ("/dev/video1", ("device", "/dev/video1")),
    ("rtsp://cam.local/stream", ("url", "rtsp://cam.local/stream")),
    ("http://10.0.0.5:8080/video", ("url", "http://10.0.0.5:8080/video")),
    ("clips/door.mp4", ("file", "clips/door.mp4")), ("²", ("file", "²")),     # not a crash in int()
])
def test_source_kinds(spec, expected):
    assert describe_source(spec) == expected


def test_video_file_is_paced_at_its_own_rate_and_loops(video_file):
    source = OpenCVSource(str(video_file), fps=30)
    source.open()
    try:
        assert source.frame_interval == pytest.approx(1 / 10)
        brightness = [int(source.read().mean()) for _ in range(25)]     # the file has 20 frames
    finally:
        source.close()
    assert brightness[0] < 5 and brightness[10] == pytest.approx(100, abs=5)
    assert brightness[20] < 5, "after the last frame the file starts again"


def test_missing_video_file_says_so(tmp_path):
    with pytest.raises(CameraError, match="does not exist"):
        OpenCVSource(str(tmp_path / "nothing.mp4")).open()


def test_a_file_has_no_focus(video_file):
    source = OpenCVSource(str(video_file))
    assert not source.supports_focus
    with pytest.raises(FocusNotSupported):
        source.set_focus(100)


def test_http_mjpeg_stream_is_read_by_opencv(app):
    """Serve our own /video_feed over HTTP and open it as a camera URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    camera = Camera(OpenCVSource(f"http://127.0.0.1:{server.server_port}/video_feed"), kind="usb",
                    idle_timeout=0.2)
    try:
        frame = camera.current_frame(timeout=15)
        assert frame.live and frame.image.shape == (480, 640, 3)
    finally:
        camera.stop()
        server.shutdown()


class FakeCapture:
    """Stands in for cv2.VideoCapture on a V4L2 device that may be unplugged."""

    plugged = True
    controls = {cv2.CAP_PROP_AUTOFOCUS: 1, cv2.CAP_PROP_FOCUS: 300}
    instances = []

    def __init__(self, target, *args):
        self.target, self.released = target, False
        self.values = dict(self.controls)
        FakeCapture.instances.append(self)

    def isOpened(self):
        return FakeCapture.plugged

    def read(self):
        if not FakeCapture.plugged or self.released:
            return False, None
        return True, np.full((48, 64, 3), 99, np.uint8)

    def set(self, prop, value):
        if prop in self.values:
            self.values[prop] = value
            return True
        return prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS)

    def get(self, prop):
        return self.values.get(prop, -1)

    def release(self):
        self.released = True


@pytest.fixture
def fake_capture(monkeypatch):
    FakeCapture.plugged, FakeCapture.instances = True, []
    FakeCapture.controls = {cv2.CAP_PROP_AUTOFOCUS: 1, cv2.CAP_PROP_FOCUS: 300}
    monkeypatch.setattr(camera_usb.cv2, "VideoCapture", FakeCapture)
    return FakeCapture


def test_unplugged_usb_camera_gives_no_signal_then_resumes(fake_capture):
    camera = Camera(OpenCVSource("/dev/video0"), kind="usb", idle_timeout=0.2)
    stream = camera.frames()
    try:
        assert next(stream).live
        fake_capture.plugged = False
        while next(stream).live:
            pass
        assert "stopped delivering frames" in camera.status()["last_error"]
        assert camera.state == "no_signal"
        fake_capture.plugged = True
        while not next(stream).live:
            pass
        assert len(fake_capture.instances) >= 2 and fake_capture.instances[0].released
    finally:
        stream.close()
        camera.stop()


STREAM_URL = "rtsp://admin:hunter2@127.0.0.1:9/stream1?channel=1&pwd=s3cret"


@pytest.fixture
def drawn_reasons(monkeypatch):
    """The reasons written into the NO SIGNAL frames."""
    reasons, real_image = [], camera_base.no_signal_image
    monkeypatch.setattr(camera_base, "no_signal_image",
                        lambda width, height, reason: reasons.append(reason) or real_image(width, height, reason))
    return reasons


def test_passwords_in_a_stream_url_are_never_shown(fake_capture, drawn_reasons, settings, caplog):
    fake_capture.plugged = False                  # the stream cannot be opened: its address is in the error
    camera = Camera(OpenCVSource(STREAM_URL), kind="usb", idle_timeout=0.2)
    application = create_app(settings, camera=camera)
    client = application.test_client()
    try:
        read_one_part(client)                     # the NO SIGNAL frame
        status = client.get("/status").get_json()["camera"]
        page = client.get("/").get_data(as_text=True)
    finally:
        stop_services(application)
    assert fake_capture.instances[0].target == STREAM_URL          # the camera gets the real address
    assert status["source"] == "url rtsp://admin:***@127.0.0.1:9/stream1?channel=1&pwd=***"
    assert "cannot open url rtsp://admin:***@127.0.0.1:9/" in status["last_error"]
    for shown in (str(status), page, *drawn_reasons, caplog.text):
        assert "hunter2" not in shown and "s3cret" not in shown


def test_an_opencv_error_that_echoes_the_stream_url_is_redacted(fake_capture, drawn_reasons, monkeypatch):
    def read(capture):
        raise cv2.error(f"cannot read {STREAM_URL} (timeout)")

    monkeypatch.setattr(fake_capture, "read", read)
    camera = Camera(OpenCVSource(STREAM_URL), kind="usb", idle_timeout=0.2)
    stream = camera.frames()
    try:
        assert not next(stream).live
        error = camera.status()["last_error"]
    finally:
        stream.close()
        camera.stop()
    assert "cannot read rtsp://admin:***@127.0.0.1:9/stream1?channel=1&pwd=*** (timeout)" in error
    assert all("hunter2" not in reason and "s3cret" not in reason for reason in drawn_reasons)


def test_a_user_name_alone_in_a_stream_url_is_hidden_as_a_token():
    source = OpenCVSource("https://T0ken9x@cam.local/video?channel=2")
    assert source.name == "url https://***@cam.local/video?channel=2"
    assert "T0ken9x" not in source.redact("cannot open https://T0ken9x@cam.local/video?channel=2")


def test_the_password_of_a_malformed_stream_url_is_hidden_too():
    # urllib cannot split it (an unclosed IPv6 bracket), yet OpenCV gets it and errors echo it.
    source = OpenCVSource("rtsp://admin:hunter2@[fe80::1/stream1?pwd=s3cret")
    assert source.name == "url rtsp://admin:***@[fe80::1/stream1?pwd=***"
    assert "hunter2" not in source.redact("cannot open rtsp://admin:hunter2@[fe80::1/stream1")


@pytest.mark.parametrize("name", ["password", "passwd", "pass", "pwd", "token", "access_token", "secret", "key",
                                  "apikey", "api_key", "API_KEY", "auth", "Auth", "sig", "signature", "Token"])
def test_every_usual_secret_parameter_of_a_stream_url_is_hidden(name):
    source = OpenCVSource(f"http://cam.local/video?channel=2&{name}=Hidden9&subtype=0")
    assert source.name == f"url http://cam.local/video?channel=2&{name}=***&subtype=0"
    assert "Hidden9" not in source.redact(f"cannot open http://cam.local/video?channel=2&{name}=Hidden9")


def test_v4l2_focus_controls(fake_capture):
    camera = Camera(OpenCVSource("0", focus=True), kind="liquidlens", idle_timeout=0.2)
    try:
        assert camera.set_autofocus(True)["autofocus"] is True
        state = camera.set_focus(500)
        assert state["autofocus"] is False and state["focus"] == 500
        device = fake_capture.instances[-1]
        assert device.values == {cv2.CAP_PROP_AUTOFOCUS: 0, cv2.CAP_PROP_FOCUS: 500}
        assert camera.step_focus(-2)["focus"] == 500 - 2 * camera_usb.FOCUS_STEP
        assert camera.set_focus(5000)["focus"] == camera_usb.FOCUS_RANGE[1]
    finally:
        camera.stop()


@pytest.mark.parametrize("controls, use, refused", [
    ({}, lambda camera: camera.set_autofocus(False), "autofocus"),
    ({cv2.CAP_PROP_AUTOFOCUS: 1}, lambda camera: camera.set_focus(100), "focus"),     # autofocus only
])
def test_a_usb_camera_without_a_focus_control_is_told_apart_by_set(fake_capture, controls, use, refused):
    fake_capture.controls = controls
    camera = Camera(OpenCVSource("0"), kind="usb", idle_timeout=0.2)
    try:
        with pytest.raises(FocusNotSupported, match=f"refused to set {refused} "):
            use(camera)
    finally:
        camera.stop()


def test_a_camera_with_manual_focus_but_no_autofocus_can_be_focused(fake_capture):
    fake_capture.controls = {cv2.CAP_PROP_FOCUS: 300}
    camera = Camera(OpenCVSource("0", focus=True), kind="liquidlens", idle_timeout=0.2)
    try:
        assert camera.set_focus(500)["focus"] == 500
        assert camera.step_focus(1)["focus"] == 500 + camera_usb.FOCUS_STEP
        assert fake_capture.instances[-1].values == {cv2.CAP_PROP_FOCUS: 500 + camera_usb.FOCUS_STEP}
        with pytest.raises(FocusNotSupported, match="refused to set autofocus"):
            camera.set_autofocus(True)
    finally:
        camera.stop()


def test_focus_is_restored_after_a_reopen(fake_capture):
    source = OpenCVSource("0", focus=True)
    source.open()
    source.set_focus(420)
    source.close()
    source.open()
    assert fake_capture.instances[-1].values[cv2.CAP_PROP_FOCUS] == 420
    source.close()


def test_find_kinect_by_its_v4l2_name(tmp_path):
    for name, label in (("video0", "HD Webcam"), ("video2", "Kinect")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "name").write_text(label + "\n")
    assert find_kinect_device(tmp_path) == "/dev/video2"


def test_no_kinect_lists_what_was_seen(tmp_path):
    (tmp_path / "video0").mkdir()
    (tmp_path / "video0" / "name").write_text("HD Webcam\n")
    with pytest.raises(CameraError, match=r"video0 \(HD Webcam\)"):
        find_kinect_device(tmp_path)


def mosaic_grbg(image):
    """Sample a BGR image the way a GRBG sensor does: row 0 is G R, row 1 is B G."""
    blue, green, red = image[:, :, 0], image[:, :, 1], image[:, :, 2]
    raw = np.empty(image.shape[:2], np.uint8)
    raw[0::2, 0::2] = green[0::2, 0::2]
    raw[0::2, 1::2] = red[0::2, 1::2]
    raw[1::2, 0::2] = blue[1::2, 0::2]
    raw[1::2, 1::2] = green[1::2, 1::2]
    return raw


def test_demosaic_keeps_colours_where_they_were():
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (0, 0, 220)        # red left half (BGR)
    image[:, 32:] = (200, 30, 0)       # blue right half
    result = demosaic_grbg(mosaic_grbg(image).reshape(1, -1), 64, 48)   # V4L2 hands a flat buffer
    assert result.shape == (48, 64, 3)
    assert np.allclose(result[24, 8], (0, 0, 220), atol=2)
    assert np.allclose(result[24, 56], (200, 30, 0), atol=2)


def test_demosaic_rejects_a_frame_of_the_wrong_size():
    with pytest.raises(CameraError, match="expected 64x48"):
        demosaic_grbg(np.zeros(100, np.uint8), 64, 48)


def test_kinect_reads_raw_bayer_when_opencv_does_not_convert(monkeypatch, tmp_path):
    (tmp_path / "video3").mkdir()
    (tmp_path / "video3" / "name").write_text("Kinect\n")
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[:] = (0, 200, 0)

    class BayerCapture(FakeCapture):
        def read(self):
            if self.values.get(cv2.CAP_PROP_CONVERT_RGB) == 0:
                return True, mosaic_grbg(colour).reshape(1, -1)
            return False, None

        def set(self, prop, value):
            self.values[prop] = value
            return True

    monkeypatch.setattr(camera_usb.cv2, "VideoCapture", BayerCapture)
    source = KinectSource(width=64, height=48, sysfs_root=tmp_path)
    source.open()
    assert source.target == "/dev/video3" and source.raw_bayer
    assert np.allclose(source.read()[20, 20], (0, 200, 0), atol=2)
    source.close()


def test_a_kinect_reopened_with_converted_frames_leaves_raw_bayer(monkeypatch):
    """The first open's probe read timed out (raw Bayer); after a reopen OpenCV converts again."""
    opened = []

    class ConvertingCapture(FakeCapture):
        def __init__(self, *args):
            super().__init__(*args)
            opened.append(self)
            self.reads = 0

        def read(self):
            self.reads += 1
            if len(opened) == 1 and self.reads == 1:
                return False, None
            if self.values.get(cv2.CAP_PROP_CONVERT_RGB) == 0:
                return True, np.zeros((1, 64 * 48), np.uint8)
            return True, np.full((48, 64, 3), 77, np.uint8)

        def set(self, prop, value):
            self.values[prop] = value
            return True

    monkeypatch.setattr(camera_usb.cv2, "VideoCapture", ConvertingCapture)
    source = KinectSource("/dev/video3", width=64, height=48)
    source.open()
    assert source.raw_bayer
    source.close()
    source.open()
    try:
        assert not source.raw_bayer
        assert source.read().shape == (48, 64, 3) and source.read()[0, 0, 0] == 77
    finally:
        source.close()
