"""The camera worker: one encode per frame, start and stop with consumers, no signal and recovery."""
import threading
import time

import numpy as np
import pytest

from camera_server.capture import camera as camera_base
from camera_server.capture.camera import Camera, CameraError
from camera_server.capture.demo import DemoSource
from conftest import FakeSource, wait_for


def take(camera, count):
    frames = []
    for item in camera.frames():
        frames.append(item)
        if len(frames) == count:
            break
    return frames


def test_each_frame_is_encoded_once_whatever_the_number_of_viewers(fake_camera, monkeypatch):
    encodes = []
    real_encode = camera_base.encode_jpeg
    monkeypatch.setattr(camera_base, "encode_jpeg", lambda image, quality: encodes.append(1) or real_encode(image, quality))
    received = [[] for _ in range(5)]

    def viewer(store):
        store.extend(take(fake_camera, 10))

    threads = [threading.Thread(target=viewer, args=(store,)) for store in received]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    last_seq = fake_camera.hub.latest.seq
    assert len(encodes) == last_seq          # one encode per published frame, not per viewer
    by_seq = {}
    for store in received:
        assert len(store) == 10
        for item in store:
            assert by_seq.setdefault(item.seq, item) is item    # every viewer got the very same bytes


def test_starts_with_the_first_consumer_and_releases_the_device_after_the_last(fake_camera, fake_source):
    assert fake_camera.state == "stopped" and fake_source.opens == 0
    take(fake_camera, 3)
    assert fake_source.opens == 1
    assert wait_for(lambda: fake_camera.state == "stopped")
    assert fake_source.closes == 1 and not fake_source.is_open
    take(fake_camera, 3)                     # a new viewer opens it again
    assert fake_source.opens == 2


def test_a_held_camera_stays_open(fake_camera, fake_source):
    with fake_camera.consumer():
        take(fake_camera, 2)
        reads = fake_source.reads
        assert wait_for(lambda: fake_source.reads > reads + 30)   # well past idle_timeout
        assert fake_source.is_open and fake_camera.state == "streaming"


def test_a_slow_viewer_does_not_hold_up_the_producer(fake_camera):
    stream = fake_camera.frames()
    first = next(stream)                      # this viewer now stops reading
    assert wait_for(lambda: fake_camera.hub.latest.seq > first.seq + 20)
    assert next(stream).seq > first.seq + 20  # and skips to the newest frame when it reads again
    stream.close()


def test_grayscale_and_half_resolution(fake_camera):
    assert fake_camera.set_grayscale(True) is True
    assert take(fake_camera, 2)[-1].image.shape == (48, 64)
    fake_camera.set_half_resolution(True)
    assert wait_for(lambda: fake_camera.current_frame().image.shape == (24, 32))
    fake_camera.set_grayscale(False)
    assert wait_for(lambda: fake_camera.current_frame().image.shape == (24, 32, 3))
    assert fake_camera.status()["resolution"] == [32, 24]


def test_a_camera_that_cannot_open_shows_why_and_recovers(fake_camera, fake_source):
    fake_source.fail_open = "cannot open /dev/video7"
    stream = fake_camera.frames()
    frame = next(stream)
    assert not frame.live and frame.image.shape == (48, 64, 3)
    assert fake_camera.state == "no_signal"
    assert fake_camera.status()["last_error"] == "cannot open /dev/video7"
    with pytest.raises(CameraError, match="cannot open /dev/video7"):
        fake_camera.current_frame(timeout=0.3)
    fake_source.fail_open = None               # plugged back in: the same stream continues
    assert wait_for(lambda: next(stream).live)
    assert fake_camera.state == "streaming" and fake_camera.status()["last_error"] is None
    stream.close()


def test_a_camera_that_disappears_mid_stream_is_reopened(fake_camera, fake_source):
    stream = fake_camera.frames()
    assert next(stream).live
    fake_source.fail_read = "camera unplugged"
    assert wait_for(lambda: not next(stream).live)
    assert fake_source.closes >= 1
    fake_source.fail_read = None
    assert wait_for(lambda: next(stream).live)
    assert fake_source.opens >= 2
    stream.close()


def test_an_unexpected_error_does_not_kill_the_worker(fake_camera, fake_source, monkeypatch):
    real_read = fake_source.read
    calls = []

    def broken_once():
        calls.append(1)
        if len(calls) == 3:
            raise ZeroDivisionError("a bug in a frame hook")
        return real_read()

    monkeypatch.setattr(fake_source, "read", broken_once)
    frames = take(fake_camera, 12)
    assert any(not item.live for item in frames) and frames[-1].live


def test_demo_frames_change_and_have_the_configured_size():
    camera = Camera(DemoSource(320, 240, 30), width=320, height=240, idle_timeout=0.2)
    try:
        first, second = take(camera, 2)
        assert first.image.shape == (240, 320, 3)
        assert not np.array_equal(first.image, second.image)
        assert first.jpeg.startswith(b"\xff\xd8") and first.jpeg.endswith(b"\xff\xd9")
    finally:
        camera.stop()


def test_focus_on_a_camera_without_focus_is_refused_without_opening_it(fake_camera, fake_source):
    with pytest.raises(camera_base.FocusNotSupported):
        fake_camera.set_focus(10)
    assert fake_source.opens == 0


def test_overlays_show_in_the_stream_but_not_in_the_frame_image(fake_camera):
    def paint_white_corner(image):
        image[:8, :8] = 255

    fake_camera.add_overlay(paint_white_corner)
    frame = take(fake_camera, 2)[-1]
    import simplejpeg
    shown = simplejpeg.decode_jpeg(frame.jpeg, colorspace="BGR")
    assert shown[:6, :6].min() > 200                 # the JPEG has the overlay
    assert frame.image[:8, :8, 1].max() == 40        # the clean image does not
    fake_camera.remove_overlay(paint_white_corner)
    assert wait_for(lambda: simplejpeg.decode_jpeg(fake_camera.current_frame().jpeg, colorspace="BGR")[:6, :6].max() < 100)


def test_a_frame_says_whether_its_jpeg_shows_an_overlay(fake_camera):
    drawing = threading.Event()

    def boxes_while_drawing(image):
        if drawing.is_set():
            image[:8, :8] = 255
        return drawing.is_set()                     # False: nothing drawn

    fake_camera.add_overlay(boxes_while_drawing)
    assert [frame.overlaid for frame in take(fake_camera, 3)] == [False] * 3
    drawing.set()
    assert wait_for(lambda: fake_camera.current_frame().overlaid)
    fake_camera.remove_overlay(boxes_while_drawing)
    assert wait_for(lambda: not fake_camera.current_frame().overlaid)


def test_a_consumer_can_leave_while_the_device_hangs(fake_camera, fake_source, monkeypatch):
    unhang = threading.Event()
    real_read = fake_source.read
    monkeypatch.setattr(fake_source, "read", lambda: unhang.wait() and real_read())   # delivers nothing
    leave, left = threading.Event(), threading.Event()
    consumer = threading.Thread(target=lambda: list(fake_camera.frames(timeout=0.05, until=leave.is_set)) == [] and left.set())
    consumer.start()
    assert wait_for(lambda: fake_source.is_open)
    leave.set()
    has_left = left.wait(10)
    unhang.set()
    assert has_left          # frames() noticed `until` without a frame to yield


class FocusSource(FakeSource):
    """A fake with focus whose read() can be held, like a slow or hanging device."""

    supports_focus = True

    def __init__(self):
        super().__init__()
        self.hold_reads = threading.Event()
        self.read_held = threading.Event()
        self.let_go = threading.Event()
        self.reading = False
        self.focus_during_read = False

    def read(self):
        self.reading = True
        try:
            if self.hold_reads.is_set():
                self.read_held.set()
                self.let_go.wait(10)
            return super().read()
        finally:
            self.reading = False

    def set_focus(self, value):
        self.focus_during_read |= self.reading
        return {"focus": value}


@pytest.fixture
def focus_source():
    source = FocusSource()
    yield source
    source.let_go.set()


def test_a_focus_request_waits_for_a_slow_read_without_stopping_other_greenlets(focus_source):
    gevent = pytest.importorskip("gevent")
    camera = Camera(focus_source, kind="fake", width=64, height=48, idle_timeout=0.2)
    try:
        with camera.consumer():
            camera.current_frame()
            focus_source.hold_reads.set()
            assert focus_source.read_held.wait(5)          # the camera thread is now inside read()
            ticks = []
            ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.001)) for _ in range(50)])
            request = gevent.spawn(camera.set_focus, 300)
            ticker.join(10)
            assert len(ticks) == 50 and not request.ready()   # the others ran while the focus waited
            focus_source.hold_reads.clear()
            focus_source.let_go.set()
            assert request.get(timeout=10) == {"focus": 300}
    finally:
        camera.stop()
    assert not focus_source.focus_during_read             # applied between two reads


def test_a_focus_request_to_a_camera_that_cannot_open_says_why(focus_source):
    focus_source.fail_open = "cannot open /dev/video7"
    camera = Camera(focus_source, kind="fake", width=64, height=48, idle_timeout=0.2)
    try:
        with pytest.raises(CameraError, match="cannot open /dev/video7"):
            camera.set_focus(300)
    finally:
        camera.stop()


def test_a_focus_request_to_a_hanging_camera_gives_up(focus_source):
    camera = Camera(focus_source, kind="fake", width=64, height=48, idle_timeout=0.2, control_timeout=0.2)
    try:
        with camera.consumer():
            camera.current_frame()
            focus_source.hold_reads.set()
            assert focus_source.read_held.wait(5)
            with pytest.raises(CameraError, match="did not answer"):
                camera.set_focus(300)
    finally:
        focus_source.let_go.set()
        camera.stop()


def test_a_focus_control_that_hangs_in_the_device_gives_up_too(focus_source, monkeypatch):
    started, let_go, outcome = threading.Event(), threading.Event(), []

    def hanging_set_focus(value):               # the camera thread is stuck inside the control
        started.set()
        let_go.wait(30)
        return {"focus": value}

    def request_focus():
        try:
            outcome.append(camera.set_focus(300))
        except CameraError as error:
            outcome.append(error)

    monkeypatch.setattr(focus_source, "set_focus", hanging_set_focus)
    camera = Camera(focus_source, kind="fake", width=64, height=48, idle_timeout=0.2, control_timeout=0.2)
    try:
        with camera.consumer():
            camera.current_frame()
            threading.Thread(target=request_focus, daemon=True).start()
            assert started.wait(5)
            assert wait_for(lambda: outcome)     # answered while the control still hangs
            assert isinstance(outcome[0], CameraError) and "did not answer" in str(outcome[0])
    finally:
        let_go.set()
        camera.stop()


def test_a_frame_is_stamped_when_it_was_read_not_after_encoding(fake_camera, fake_source, monkeypatch):
    read_at, encoded_at = [], []
    real_read, real_encode = fake_source.read, camera_base.encode_jpeg

    def read():
        image = real_read()
        read_at.append(time.time())
        return image

    def slow_encode(image, quality):
        threading.Event().wait(0.01)            # encoding takes a while
        encoded_at.append(time.time())
        return real_encode(image, quality)

    monkeypatch.setattr(fake_source, "read", read)
    monkeypatch.setattr(camera_base, "encode_jpeg", slow_encode)
    frame = take(fake_camera, 1)[0]
    index = frame.seq - 1                        # the fake's frames are all live: one read per frame
    assert read_at[index] <= frame.timestamp < encoded_at[index]
