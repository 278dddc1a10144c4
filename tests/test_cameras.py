"""The cameras registry, the picture saver, and the camera's frame loop as the watch and tiles use it."""
import threading
import time

import numpy as np
import pytest

from camera_server.cameras import CameraExists, Cameras, CameraUnit, DefaultCameraKept, UnknownCamera
from camera_server.capture.camera import Camera
from camera_server.capture.hub import Frame
from camera_server.media.files import MediaExists
from camera_server.media.pictures import save_picture
from camera_server.settings import Settings
from conftest import FakeSource, wait_for


class Part:
    """A recorder or watch stand-in that notes what was done to it."""

    def __init__(self, done):
        self.done = done

    def shut_down(self):
        self.done.append("shut_down")

    def close(self):
        self.done.append("close")

    def status(self):
        return {"recording": False}


@pytest.fixture
def registry():
    done = []

    def open_unit(settings, camera=None, default=True):
        camera = camera or Camera(FakeSource(), kind="fake", name=settings.camera_name or None)
        done.append(("opened", camera.name, default))
        return CameraUnit(settings, camera, Part(done), Part(done))

    cameras = Cameras(open_unit)
    cameras.done = done
    yield cameras
    cameras.close()


def named(name):
    return Settings(camera_name=name)


def test_the_first_camera_is_the_default_and_the_order_is_kept(registry):
    for name in ("porch", "garage", "bench"):
        registry.add(named(name))
    assert registry.names == ["porch", "garage", "bench"] and registry.default.name == "porch"
    assert [unit.name for unit in registry] == registry.names and len(registry) == 3
    assert [entry for entry in registry.done if entry[0] == "opened"] == [
        ("opened", "porch", True), ("opened", "garage", False), ("opened", "bench", False)]
    assert registry.get("garage").camera.name == "garage"


def test_no_device_is_opened_until_something_uses_the_camera(registry):
    unit = registry.add(named("porch"))
    assert unit.camera.source.opens == 0 and unit.camera.status()["state"] == "stopped"


def test_an_unknown_name_lists_the_cameras(registry):
    registry.add(named("porch"))
    registry.add(named("garage"))
    with pytest.raises(UnknownCamera) as raised:
        registry.get("attic")
    assert str(raised.value) == "no camera named 'attic'; the cameras are: porch, garage"


def test_a_name_is_taken_once(registry):
    registry.add(named("porch"))
    with pytest.raises(CameraExists):
        registry.add(named("porch"))
    assert registry.names == ["porch"]


def test_removing_a_camera_closes_it_and_keeps_the_default(registry):
    registry.add(named("porch"))
    garage = registry.add(named("garage"))
    registry.done.clear()
    assert registry.remove("garage") is garage
    assert registry.done == ["shut_down", "close", "close"]     # the recording first, then the watch and it
    assert registry.names == ["porch"]
    with pytest.raises(DefaultCameraKept):
        registry.remove("porch")
    with pytest.raises(UnknownCamera):
        registry.remove("garage")


def test_one_camera_failing_does_not_stop_another():
    broken, working = FakeSource(), FakeSource()
    broken.fail_open = "unplugged"
    cameras = [Camera(broken, kind="fake", name="broken", idle_timeout=0.2),
               Camera(working, kind="fake", name="working", idle_timeout=0.2)]
    try:
        streams = [camera.frames(timeout=0.5) for camera in cameras]
        frame = next(streams[1])
        assert frame.live and frame.image.shape == (48, 64, 3)
        assert not next(streams[0]).live                    # its "no signal" picture
        assert [next(streams[1]).live for _ in range(10)] == [True] * 10
    finally:
        for camera in cameras:
            camera.stop()


class HangingSource(FakeSource):
    """A device that stops answering after its first frames, until released."""

    def __init__(self):
        super().__init__()
        self.hang, self.released = threading.Event(), threading.Event()

    def read(self):
        if self.hang.is_set():
            self.released.wait(10)
        return super().read()


def test_idle_ticks_let_a_reader_notice_time_without_frames():
    source = HangingSource()
    camera = Camera(source, kind="fake", idle_timeout=0.2)
    stop = threading.Event()
    try:
        frames = camera.frames(timeout=0.05, until=stop.is_set, idle_ticks=True)
        assert next(frames) is not None
        source.hang.set()
        assert None in [next(frames) for _ in range(10)]     # ticks while the device hangs
        source.released.set()
        assert wait_for(lambda: next(frames) is not None)
        stop.set()
        assert all(frame is None or frame.live for frame in frames)   # and the loop ends
    finally:
        source.released.set()
        camera.stop()


def test_newest_frame_answers_the_no_signal_picture_too():
    source = FakeSource()
    source.fail_open = "unplugged"
    camera = Camera(source, kind="fake", idle_timeout=0.2)
    try:
        frame = camera.newest_frame(timeout=3)
        assert frame is not None and not frame.live and frame.jpeg.startswith(b"\xff\xd8")
        source.fail_open = None
        assert wait_for(lambda: camera.newest_frame(timeout=1).live, timeout=10)
    finally:
        camera.stop()


def test_newest_frame_is_none_when_the_camera_never_answers():
    camera = Camera(FakeSource(), kind="fake")
    camera.stop()                           # stopped for good: nothing comes
    started = time.monotonic()
    assert camera.newest_frame(timeout=0.2) is None
    assert time.monotonic() - started < 5


def frame_of(size=(48, 64)):
    image = np.zeros((*size, 3), np.uint8)
    return Frame.build(1, 1700000000.0, image, b"\xff\xd8jpeg\xff\xd9")


def test_a_picture_is_written_and_catalogued_with_its_camera(tmp_path):
    listed = []
    path = save_picture(frame_of(), tmp_path, "change", lambda *args, **fields: listed.append((args, fields)),
                        camera="porch", note="score 400")
    assert path.name.startswith("change_") and path.read_bytes() == b"\xff\xd8jpeg\xff\xd9"
    assert listed == [((path.name, "change"), {"created": 1700000000.0, "width": 64, "height": 48,
                                                "camera": "porch", "note": "score 400"})]
    snapshot = save_picture(frame_of(), tmp_path, "picture", lambda *args, **fields: None)
    assert snapshot.name.startswith("snapshot_")


def test_a_named_picture_never_replaces_a_file(tmp_path):
    save_picture(frame_of(), tmp_path, "picture", lambda *args, **fields: None, filename="door.jpg")
    with pytest.raises(MediaExists):
        save_picture(frame_of(), tmp_path, "picture", lambda *args, **fields: None, filename="door.jpg")


def test_a_picture_the_catalogue_refuses_leaves_no_file(tmp_path):
    def refuse(*args, **fields):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        save_picture(frame_of(), tmp_path, "picture", refuse, filename="door.jpg")
    assert list(tmp_path.iterdir()) == []


def test_a_camera_other_than_the_default_has_its_own_mqtt_topics(tmp_path, free_port):
    from camera_server.cameras import open_camera_unit
    from camera_server.media.writer import CatalogueWriter

    settings = Settings(mqtt_host="127.0.0.1", mqtt_port=free_port, min_free_mb=0)
    writer = CatalogueWriter(None)
    units = [open_camera_unit(settings.replace(camera_name=name), None, tmp_path, writer, default=default)
             for name, default in (("porch", True), ("garage", False))]
    try:
        assert [unit.watch.notifiers[0].motion_topic for unit in units] == [
            "camera_server/motion", "camera_server/garage/motion"]
    finally:
        for unit in units:
            unit.close()
