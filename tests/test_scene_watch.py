"""Scene watch through the real pipeline: a camera playing synthetic scenes, the watch thread,
the catalogue, the recorder and a webhook. Each scene gives exactly the expected events."""
import dataclasses
import errno
import http.server
import itertools
import json
import logging
import sqlite3
import threading
import time
import types
from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg

import scenes
from camera_server.capture.camera import Camera, CameraError, Source
from camera_server.capture.demo import DemoSource
from camera_server.media import catalogue as media_catalogue
from camera_server.media import pictures
from camera_server.media import recorder as recorder_module
from camera_server.media.catalogue import CatalogueError, MediaCatalogue
from camera_server.media.files import write_unique_file
from camera_server.media.recorder import Recorder
from camera_server.media.writer import CatalogueWriter
from camera_server.watch import detection as object_detection
from camera_server.watch import scene_watch
from camera_server.watch.detection import Detection
from camera_server.watch.events import ENDED, EncodedFrame, Event, EventChange, EventTracker
from camera_server.watch.monitor import SceneMonitor
from camera_server.watch.motion import MotionDetector
from camera_server.web.app import create_app, main_app, stop_services
from conftest import FakeSource, read_one_part, wait_for


class ScenePlayback(Source):
    """Plays a synthetic scene's frames at 50 fps, then holds its last frame."""

    name = "scene"
    frame_interval = 0.02

    def __init__(self, scene):
        self.images = [image for _, image in scene.frames()]
        self.index = 0
        self.finished = threading.Event()
        self.unplugged = False               # read() fails: the camera shows "no signal"
        self.hang = threading.Event()        # set: read() waits for `unhang`, delivering nothing
        self.unhang = threading.Event()

    def read(self):
        if self.unplugged:
            raise CameraError("the camera was unplugged")
        if self.hang.is_set():
            self.unhang.wait(30)
        image = self.images[min(self.index, len(self.images) - 1)]
        self.index += 1
        if self.index >= len(self.images):
            self.finished.set()
        return image.copy()


def watch_app(settings, scene, **overrides):
    source = ScenePlayback(scene)
    camera = Camera(source, kind="scene", width=scene.width, height=scene.height, idle_timeout=0.5)
    options = {"event_quiet_s": 0.6, **overrides}
    application = create_app(settings.replace(**options), camera=camera)
    return application, source


def events_after_playback(application, source, control):
    client = application.test_client()
    assert client.post("/motion/start", headers=control).status_code == 200
    watch = application.extensions["watch"]
    assert source.finished.wait(30)
    time.sleep(application.config["SETTINGS"].event_quiet_s + 0.5)     # held last frame: all quiet
    assert wait_for(lambda: watch.status()["motion"]["event"] is None)
    return client.get("/events").get_json()


@pytest.fixture
def control_for():
    return lambda application: {"X-Control-Token": application.config["CONTROL_TOKEN"]}


def test_an_object_entering_the_room_is_one_event_with_a_snapshot(settings, control_for):
    application, source = watch_app(settings, scenes.ObjectEntering())
    try:
        events = events_after_playback(application, source, control_for(application))
        assert len(events) == 1
        event = events[0]
        assert event["kind"] == "motion" and event["end"] >= event["start"] and event["peak_score"] > 0
        snapshot = Path(settings.media_dir) / event["snapshot"]
        assert snapshot.read_bytes().startswith(b"\xff\xd8")
        kinds = {entry["filename"]: entry["kind"] for entry in application.test_client().get("/get_database").get_json()}
        assert kinds[event["snapshot"]] == "motion"
    finally:
        stop_services(application)


@pytest.mark.parametrize("scene", [scenes.LightSwitch(), scenes.SensorNoise(), scenes.EmptyRoom()],
                         ids=["light switch", "sensor noise", "empty room"])
def test_scenes_without_anyone_give_no_event(settings, control_for, scene):
    application, source = watch_app(settings, scene)
    try:
        assert events_after_playback(application, source, control_for(application)) == []
    finally:
        stop_services(application)


def test_a_flickering_corner_under_a_mask_gives_no_event(settings, control_for):
    scene = scenes.FlickeringCorner()
    x1, y1, x2, y2 = scene.flicker_rect
    masked, source = watch_app(settings, scene, motion_mask=f"{x1 - 4},{0},{x2 + 1},{y2 + 4}")
    try:
        assert events_after_playback(masked, source, control_for(masked)) == []
    finally:
        stop_services(masked)
    unmasked, source = watch_app(settings.replace(media_dir=settings.media_dir + "-2"), scene)
    try:
        assert events_after_playback(unmasked, source, control_for(unmasked)) != []
    finally:
        stop_services(unmasked)


def green_pixels(jpeg, region=None):
    """How many pixels of a JPEG are the boxes' green (the room and the person are grey)."""
    image = simplejpeg.decode_jpeg(jpeg, colorspace="BGR").astype(np.int16)
    if region is not None:
        x, y, width, height = region
        image = image[y:y + height, x:x + width]
    blue, green, red = image[..., 0], image[..., 1], image[..., 2]
    return int(np.count_nonzero((green > 160) & (green - red > 80) & (green - blue > 80)))


def streamed_jpeg(application):
    return read_one_part(application.test_client())[1]


def test_boxes_are_drawn_on_the_stream_while_something_moves(settings, control_for):
    application, source = watch_app(settings, scenes.ObjectEntering(seconds=30, enter_at=1, leave_at=29))
    try:
        assert green_pixels(streamed_jpeg(application)) == 0
        application.test_client().post("/motion/start", headers=control_for(application))
        watch = application.extensions["watch"]
        assert wait_for(lambda: watch.status()["motion"]["boxes"])
        assert application.test_client().get("/status").get_json()["motion"]["motion"] is True
        assert wait_for(lambda: green_pixels(streamed_jpeg(application)) > 50)
    finally:
        stop_services(application)


def ended_events(application):
    return [event for event in application.test_client().get("/events").get_json() if event["end"] is not None]


def test_an_event_ends_while_the_camera_has_no_signal(settings, control_for):
    application, source = watch_app(settings, scenes.ObjectEntering(seconds=30, enter_at=0.5, leave_at=29))
    watch, camera = application.extensions["watch"], application.extensions["camera"]
    try:
        application.test_client().post("/motion/start", headers=control_for(application))
        assert wait_for(lambda: watch.status()["motion"]["event"] is not None)
        source.unplugged = True                 # mid-event: from now on only "no signal" frames
        assert wait_for(lambda: ended_events(application))
        assert watch.status()["motion"]["event"] is None and camera.state == "no_signal"
        (event,) = ended_events(application)
        assert event["end"] >= event["start"]
    finally:
        stop_services(application)


def test_an_event_ends_while_the_device_hangs_and_close_does_not_wait_for_it(settings, control_for):
    application, source = watch_app(settings, scenes.ObjectEntering(seconds=30, enter_at=0.5, leave_at=29))
    watch = application.extensions["watch"]
    try:
        application.test_client().post("/motion/start", headers=control_for(application))
        assert wait_for(lambda: watch.status()["motion"]["event"] is not None)
        source.hang.set()                       # mid-event: no frame at all, not even "no signal"
        assert wait_for(lambda: ended_events(application))
        assert watch.status()["motion"]["event"] is None
        thread = watch._thread
        watch.close()
        assert not thread.is_alive()            # it noticed the stop without a frame
    finally:
        source.unhang.set()
        stop_services(application)


def test_start_up_closes_the_events_a_crash_left_open(settings):
    media = Path(settings.media_dir)
    media.mkdir(parents=True)
    with MediaCatalogue(media / "media.db", media) as catalogue:
        finished = catalogue.add_event(1700000000.0, "motion", end=1700000009.0)
        interrupted = catalogue.add_event(1700000100.0, "object", labels=["person"])
    application = create_app(settings)
    try:
        events = {event["id"]: event for event in application.test_client().get("/events").get_json()}
        assert events[interrupted]["end"] == 1700000100.0
        assert events[finished]["end"] == 1700000009.0
    finally:
        stop_services(application)


class FakeDetector:
    """Finds a "cat" at a fixed place in every picture it is given; `gate` cleared: the second and
    later runs wait for it, so the first result stays the newest."""

    box = (16, 16, 80, 50)          # in the top left, where nothing moves in the scenes

    def __init__(self, min_confidence=0.5):
        self.min_confidence = min_confidence
        self.runs = 0
        self.gate = threading.Event()
        self.gate.set()
        FakeDetector.made = self

    def detect(self, image):
        self.runs += 1
        if self.runs > 1:
            self.gate.wait(30)
        return [Detection("cat", 0.9, self.box)]


@pytest.fixture
def fake_detector(monkeypatch):
    monkeypatch.setitem(object_detection.DETECTORS, "hog", FakeDetector)
    return lambda application: FakeDetector.made


def test_detection_runs_only_with_motion_and_makes_object_events_with_labels(settings, control_for,
                                                                             fake_detector):
    Webhook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    still, source = watch_app(settings, scenes.EmptyRoom(), detector="hog", webhook_url=url)
    try:
        assert events_after_playback(still, source, control_for(still)) == []
        assert fake_detector(still).runs == 0           # no motion, no detection
    finally:
        stop_services(still)
    walking, source = watch_app(settings.replace(media_dir=settings.media_dir + "-2"), scenes.ObjectEntering(),
                                detector="hog", webhook_url=url)
    try:
        (event,) = events_after_playback(walking, source, control_for(walking))
        assert fake_detector(walking).runs > 0
        assert event["kind"] == "object" and event["labels"] == ["cat"]
        assert wait_for(lambda: [message["type"] for message in Webhook.received][-1:] == ["ended"])
        assert Webhook.received[-1]["kind"] == "object" and Webhook.received[-1]["labels"] == ["cat"]
    finally:
        stop_services(walking)
        server.shutdown()


def test_detection_boxes_stay_on_the_stream_until_replaced_or_old(settings, control_for, fake_detector,
                                                                  monkeypatch):
    monkeypatch.setattr(scene_watch, "DETECTIONS_SHOWN_S", 3600.0)
    application, source = watch_app(settings, scenes.ObjectEntering(seconds=30, enter_at=0.5, leave_at=29),
                                    detector="hog")
    watch = application.extensions["watch"]
    try:
        application.test_client().post("/motion/start", headers=control_for(application))
        assert wait_for(lambda: FakeDetector.made.runs >= 2)   # one result; the next run waits at the gate
        FakeDetector.made.gate.clear()
        assert wait_for(lambda: watch.tracker.current is not None and "cat" in watch.tracker.current.labels)
        x, y, width, height = FakeDetector.box
        edge = (x - 2, y - 2, width + 4, 6)                     # the box's top edge
        assert wait_for(lambda: green_pixels(streamed_jpeg(application), edge) > width)
        frames = application.extensions["camera"].frames()
        for frame in itertools.islice(frames, 5):      # on every frame, not one per detector run
            assert green_pixels(frame.jpeg, edge) > width
        frames.close()
        monkeypatch.setattr(scene_watch, "DETECTIONS_SHOWN_S", 0.2)
        assert wait_for(lambda: green_pixels(streamed_jpeg(application), edge) == 0)   # too old now
    finally:
        FakeDetector.made.gate.set()
        stop_services(application)


class Webhook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_events_are_sent_to_the_webhook(settings, control_for):
    Webhook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    application, source = watch_app(settings, scenes.ObjectEntering(), webhook_url=url)
    try:
        events = events_after_playback(application, source, control_for(application))
        assert wait_for(lambda: len(Webhook.received) >= 2)
        started, ended = Webhook.received
        assert [started["type"], ended["type"]] == ["started", "ended"]
        assert started["snapshot"] == events[0]["snapshot"]
        assert started["catalogue_id"] == ended["catalogue_id"] == events[0]["id"]
        assert isinstance(started["id"], str) and started["id"] == ended["id"]     # one event, one id
    finally:
        stop_services(application)
        server.shutdown()


def test_shutting_down_during_an_event_still_sends_its_end_to_a_slow_webhook(settings, control_for):
    answer = threading.Event()

    class SlowWebhook(Webhook):
        def do_POST(self):
            answer.wait(10)
            super().do_POST()

    Webhook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowWebhook)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    application, source = watch_app(settings, scenes.ObjectEntering(seconds=30, enter_at=0.5, leave_at=29),
                                     webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
    stopping = threading.Thread(target=stop_services, args=(application,))
    try:
        application.test_client().post("/motion/start", headers=control_for(application))
        assert wait_for(lambda: application.extensions["watch"].status()["motion"]["event"] is not None)
        stopping.start()                        # "started" is still on its way when the watch closes
        answer.set()
        stopping.join(30)
        assert [message["type"] for message in Webhook.received] == ["started", "ended"]
    finally:
        answer.set()
        if not stopping.is_alive() and stopping.ident is None:
            stop_services(application)
        server.shutdown()


def test_a_dead_webhook_loses_no_event(settings, control_for, free_port):
    application, source = watch_app(settings, scenes.ObjectEntering(), webhook_url=f"http://127.0.0.1:{free_port}/")
    try:
        assert len(events_after_playback(application, source, control_for(application))) == 1
    finally:
        stop_services(application)


def test_events_are_recorded_with_a_pre_roll(settings, control_for):
    application, source = watch_app(settings, scenes.ObjectEntering(), record_events=True, preroll_s=1.0,
                                    postroll_s=0.5)
    try:
        events = events_after_playback(application, source, control_for(application))
        assert len(events) == 1 and events[0]["clip"]
        clip = Path(settings.media_dir) / events[0]["clip"]
        assert wait_for(lambda: not application.extensions["recorder"].status()["recording"])
        with av.open(str(clip)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames > 30
        entry = application.extensions["catalogue"].get(clip.name)
        assert entry["kind"] == "video" and entry["created"] < events[0]["start"]   # the pre-roll came first
    finally:
        stop_services(application)


def test_the_clip_stops_postroll_s_after_the_event_ended_not_after_the_end_was_noticed(tmp_path):
    class Catalogue:
        def add_event(self, start, **fields):
            return 7

    camera = types.SimpleNamespace(name="fake")     # never read: the test drives the clock itself
    watch = scene_watch.SceneWatch(camera, Catalogue(), tmp_path, writer=CatalogueWriter(Catalogue()), monitor=None,
                                   motion=None, tracker=EventTracker(quiet_s=5.0), postroll_s=2.0)
    watch._clip = "event.mp4"
    last_motion = 103.0
    noticed = last_motion + 5.0               # the quiet time later
    ended = Event("e1", "motion", 100.0, last_motion, last_motion)
    watch._on_event(EventChange(ENDED, ended, noticed), frame=None)
    assert watch._clip_stop_at == last_motion + 2.0


class StillSource(FakeSource):
    """The same picture (of grey ``level``) every time, so nothing moves unless the test changes the level;
    ``hang`` set: read() waits, delivering nothing."""

    def __init__(self):
        super().__init__()
        self.level = 80
        self.hang, self.hanging, self.unhang = threading.Event(), threading.Event(), threading.Event()

    def read(self):
        if self.hang.is_set():
            self.hanging.set()
            self.unhang.wait(30)
        return np.full((self.height, self.width, 3), self.level, np.uint8)


class ClipRecorder:
    """Stands in for the recorder: the event clips started and stopped."""

    def __init__(self):
        self.started, self.stopped, self.stopped_at = [], [], []

    def start(self, preroll=()):
        self.started.append(f"event-{len(self.started) + 1}.mp4")
        return {"file": self.started[-1]}

    def request_stop(self, filename=None):
        self.stopped.append(filename)
        self.stopped_at.append(time.time())


class Messages:
    """A notifier that keeps the messages it is given."""

    def __init__(self):
        self.received = []

    def notify(self, message):
        self.received.append(message)

    def close(self, timeout=None):
        pass


@pytest.fixture
def still_watch_with(tmp_path):
    """make(**options): a SceneWatch over a still camera and a real catalogue (busy timeout 0.2 s) in
    tmp_path, written by a catalogue writer (retry_s: its retry time); with ``real_recorder``, event clips
    are recorded by a Recorder. No detector, the tests hand its results."""
    made = []

    def make(retry_s=5.0, real_recorder=False, **options):
        source = StillSource()
        camera = Camera(source, kind="fake", width=64, height=48, idle_timeout=0.2)
        catalogue = MediaCatalogue(tmp_path / "media.db", tmp_path, busy_timeout=0.2)
        writer = CatalogueWriter(catalogue, retry_s=retry_s).start()
        if real_recorder:
            options["recorder"] = Recorder(camera, tmp_path, catalogue_writer=writer, min_free_mb=0)
        options = {"monitor": SceneMonitor(), "motion": MotionDetector(), "tracker": EventTracker(quiet_s=30.0),
                   **options}
        watch = scene_watch.SceneWatch(camera, catalogue, tmp_path, writer=writer, **options)
        made.append((watch, source, camera, catalogue, writer))
        return watch, source

    yield make
    for watch, source, camera, catalogue, writer in made:
        source.unhang.set()
        if isinstance(watch.recorder, Recorder):
            watch.recorder.shut_down()
        watch.close()
        if isinstance(watch.recorder, Recorder):
            watch.recorder.close()
        writer.close()
        camera.stop()
        catalogue.close()


@pytest.fixture
def still_watch(still_watch_with):
    return still_watch_with()


def tracker_updates(watch, monkeypatch):
    """The watch thread's calls of tracker.update, as they come: True for a frame, False for a tick without one."""
    updates, real_update = [], watch.tracker.update

    def update(timestamp, motion=None, detections=()):
        updates.append(motion is not None)
        return real_update(timestamp, motion, detections)

    monkeypatch.setattr(watch.tracker, "update", update)
    return updates


def new_frame(camera):
    """A frame captured from now on (the newest one may be older than a restart)."""
    now = time.time()
    assert wait_for(lambda: camera.hub.latest is not None and camera.hub.latest.timestamp > now)
    return camera.hub.latest


PERSON = [Detection("person", 0.9, (1, 1, 5, 5))]


@pytest.mark.parametrize("arrives", ["while motion is off", "after it is on again"])
def test_a_detection_from_before_motion_was_switched_off_starts_no_event(still_watch, monkeypatch, arrives):
    watch, _ = still_watch
    watch.start_motion()
    old_frame = watch.camera.current_frame()         # the detector is still busy with it at the stop
    watch.stop_motion()
    if arrives == "while motion is off":
        watch._on_detections(old_frame, PERSON)
    updates = tracker_updates(watch, monkeypatch)
    watch.start_motion()
    if arrives == "after it is on again":
        watch._on_detections(old_frame, PERSON)
    assert wait_for(lambda: updates.count(True) >= 5)      # frames seen since the restart
    assert watch.catalogue.events() == []
    watch._on_detections(new_frame(watch.camera), PERSON)         # a result for a new frame counts
    assert wait_for(lambda: [event["kind"] for event in watch.catalogue.events()] == ["object"])


def test_the_watch_thread_is_started_again_after_closing_an_event_failed(still_watch, monkeypatch):
    watch, source = still_watch
    updates = tracker_updates(watch, monkeypatch)
    watch.start_motion()
    watch._on_detections(new_frame(watch.camera), PERSON)
    assert wait_for(lambda: watch.catalogue.events())            # an event is open
    source.hang.set()                                             # the device hangs: no frame after the stop
    assert source.hanging.wait(10)
    seen = len(updates)
    assert wait_for(lambda: False in updates[seen:])              # the watch is waiting for a frame
    real_update_event = watch.catalogue.update_event

    def database_locked(event_id, /, **fields):
        if "end" in fields:
            raise CatalogueError("database is locked")
        return real_update_event(event_id, **fields)

    monkeypatch.setattr(watch.catalogue, "update_event", database_locked)
    leaving = watch._thread
    watch.stop_motion()
    leaving.join(10)
    assert not leaving.is_alive()
    monkeypatch.setattr(watch.catalogue, "update_event", real_update_event)
    source.hang.clear()
    source.unhang.set()
    watch.start_motion()
    watch._on_detections(new_frame(watch.camera), PERSON)
    assert wait_for(lambda: len(watch.catalogue.events()) == 2)   # watched again: a new event


def test_the_watch_goes_on_while_the_catalogue_holds_a_write_and_notifies_in_order_after_it(still_watch_with,
                                                                                         monkeypatch):
    messages = Messages()
    watch, _ = still_watch_with(recorder=ClipRecorder(), record_events=True, postroll_s=0.2, notifiers=[messages])
    holding, release = threading.Event(), threading.Event()
    real_add_event = watch.catalogue.add_event

    def add_event(start, kind, **fields):          # held as long as the test likes, like another process's lock
        holding.set()
        release.wait(30)
        return real_add_event(start, kind, **fields)

    monkeypatch.setattr(watch.catalogue, "add_event", add_event)
    updates = tracker_updates(watch, monkeypatch)
    try:
        watch.start_motion()
        watch._on_detections(new_frame(watch.camera), PERSON)
        assert holding.wait(10)                                        # the writer waits in add_event
        watch._on_detections(new_frame(watch.camera), [Detection("cat", 0.8, (1, 1, 5, 5))])
        assert wait_for(lambda: "cat" in getattr(watch.tracker.current, "labels", ()))     # "updated"
        watch.tracker.quiet_s = 0.3                                    # from now on the event ends soon
        assert wait_for(lambda: watch.recorder.stopped == ["event-1.mp4"])   # ended, and its clip stopped
        assert watch.status()["motion"]["event"] is None
        seen = updates.count(True)
        assert wait_for(lambda: updates.count(True) >= seen + 10)      # frames still analysed
        assert messages.received == [] and watch.catalogue.events() == []    # nobody told before the write
    finally:
        release.set()
    assert wait_for(lambda: [message["type"] for message in messages.received] == ["started", "updated", "ended"])
    (event,) = watch.catalogue.events()
    assert [message["catalogue_id"] for message in messages.received] == [event["id"]] * 3
    assert event["end"] is not None and (event["kind"], event["labels"]) == ("object", ["cat", "person"])
    assert watch.recorder.stopped_at[0] >= event["end"] + 0.2           # postroll_s after the end
    assert wait_for(lambda: watch.catalogue.get(messages.received[0]["snapshot"]) is not None)


def lock_catalogue(catalogue):
    """Another process's long write: a connection that holds the catalogue's write lock until rolled back."""
    holder = sqlite3.connect(catalogue.db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_an_event_the_locked_catalogue_refused_still_ends_stops_its_clip_and_is_saved_later(still_watch_with):
    messages = Messages()
    watch, _ = still_watch_with(retry_s=0.1, tracker=EventTracker(quiet_s=0.3), recorder=ClipRecorder(),
                                record_events=True, postroll_s=0.2, notifiers=[messages])
    holder = lock_catalogue(watch.catalogue)
    try:
        watch.start_motion()
        watch._on_detections(new_frame(watch.camera), PERSON)
        assert wait_for(lambda: [message["type"] for message in messages.received] == ["started", "ended"])
        assert wait_for(lambda: watch.recorder.stopped == ["event-1.mp4"])     # not max_recording_minutes
        started, ended = messages.received
        assert started["id"] == ended["id"] and started["catalogue_id"] is None
        assert started["clip"] == "event-1.mp4" and (watch.media_dir / started["snapshot"]).is_file()
        assert watch.catalogue.events() == [] and watch.catalogue.get(started["snapshot"]) is None
    finally:
        holder.rollback()
        holder.close()
    assert wait_for(lambda: watch.catalogue.events())                 # saved once the catalogue answers
    (event,) = watch.catalogue.events()
    assert event["end"] is not None and (event["kind"], event["labels"]) == ("object", ["person"])
    assert (event["snapshot"], event["clip"]) == (started["snapshot"], "event-1.mp4")
    watch.catalogue.scan()                                            # what start-up repair does
    assert watch.catalogue.get(started["snapshot"])["kind"] == "motion"
    watch._on_detections(new_frame(watch.camera), PERSON)            # the tracker goes on
    assert wait_for(lambda: len(watch.catalogue.events()) == 2)


def test_scene_changes_are_kept_while_the_catalogue_is_locked_and_listed_at_the_next_start(still_watch_with):
    watch, source = still_watch_with(monitor=SceneMonitor(threshold=100, cooldown_s=0))
    watch.take_baseline()
    holder = lock_catalogue(watch.catalogue)
    try:
        source.level = 200
        watch.start_monitor()
        watch.start_motion()
        assert wait_for(lambda: watch.changes_saved >= 2)
        watch._on_detections(new_frame(watch.camera), PERSON)        # events still start meanwhile
        assert wait_for(lambda: watch.tracker.current is not None)
        watch.close()                                                  # shut down while it is locked
    finally:
        holder.rollback()
        holder.close()
    changes = sorted(path.name for path in watch.media_dir.glob("change_*.jpg"))
    assert len(changes) == watch.changes_saved
    added = watch.catalogue.scan()["added"]
    assert sorted(entry["filename"] for entry in added if entry["kind"] == "change") == changes


def test_an_event_clip_stops_without_waiting_for_its_rewrite_or_a_locked_catalogue(still_watch_with, monkeypatch):
    watch, _ = still_watch_with(retry_s=0.1, tracker=EventTracker(quiet_s=0.3), real_recorder=True,
                                record_events=True, postroll_s=0.2)
    rewriting, release = threading.Event(), threading.Event()
    real_rewrite = recorder_module.rewrite_with_index_in_front

    def slow_rewrite(path, source):                  # a long clip's remux, held as long as the test likes
        rewriting.set()
        release.wait(30)
        return real_rewrite(path, source=source)

    monkeypatch.setattr(recorder_module, "rewrite_with_index_in_front", slow_rewrite)
    updates = tracker_updates(watch, monkeypatch)
    holder = lock_catalogue(watch.catalogue)
    try:
        watch.start_motion()
        watch._on_detections(new_frame(watch.camera), PERSON)
        assert wait_for(lambda: watch.recorder.status()["frames"] >= 10)     # the clip records
        assert rewriting.wait(10)                    # the event ended, and its clip is being finished
        seen = updates.count(True)
        assert wait_for(lambda: updates.count(True) >= seen + 20)           # the watch goes on meanwhile
        clip = watch.recorder.status()["file"]
    finally:
        release.set()
        holder.rollback()
        holder.close()
    assert wait_for(lambda: (watch.catalogue.get(clip) or {}).get("duration"))
    assert watch.catalogue.get(clip)["size"] == (watch.media_dir / clip).stat().st_size
    assert wait_for(lambda: [event["clip"] for event in watch.catalogue.events()] == [clip])


def test_start_up_with_a_locked_catalogue_starts_and_closes_the_events_left_open_later(settings, monkeypatch,
                                                                                      caplog):
    media = Path(settings.media_dir)
    media.mkdir(parents=True)
    with MediaCatalogue(media / "media.db", media) as catalogue:
        interrupted = catalogue.add_event(1700000100.0, "object", labels=["person"])    # a crash left it open
    monkeypatch.setattr(media_catalogue, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(media / "media.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        application = create_app(settings)           # no OperationalError: gunicorn would exit for good
    finally:
        holder.rollback()
        holder.close()
    try:
        assert "start-up repair skipped" in caplog.text
        application.extensions["catalogue_writer"].flush(10)
        (event,) = application.test_client().get("/events").get_json()
        assert event["id"] == interrupted and event["end"] == 1700000100.0
    finally:
        stop_services(application)


def frames_compared(watch, monkeypatch):
    """How many frames the monitor compared with the baseline, counted as they come."""
    compared, real_compare = [], watch.monitor.compare

    def compare(image):
        compared.append(True)
        return real_compare(image)

    monkeypatch.setattr(watch.monitor, "compare", compare)
    return compared


def saving_stopped(watch):
    stopped = watch.status()["monitor"]["saving_stopped"]
    return stopped and stopped["reason"]


def test_the_monitor_saves_at_most_its_changes_per_hour_and_a_new_baseline_starts_again(still_watch_with,
                                                                                        monkeypatch):
    watch, source = still_watch_with(monitor=SceneMonitor(threshold=100, cooldown_s=0, max_changes_per_hour=3))
    compared = frames_compared(watch, monkeypatch)

    def limit_holds(saved):
        assert wait_for(lambda: saving_stopped(watch) == "limit")
        seen = len(compared)
        assert wait_for(lambda: len(compared) >= seen + 10)          # changed frames, none saved
        assert watch.changes_saved == saved and len(list(watch.media_dir.glob("change_*.jpg"))) == saved

    watch.take_baseline()
    source.level = 200
    watch.start_monitor()
    limit_holds(3)
    assert "monitor_max_changes_per_hour" in watch.status()["monitor"]["saving_stopped"]["message"]
    watch.take_baseline()                                             # the scene as it is now
    assert saving_stopped(watch) is None
    source.level = 80
    limit_holds(6)


def test_below_min_free_mb_no_picture_is_saved_and_the_status_says_why(still_watch_with, monkeypatch, caplog):
    watch, source = still_watch_with(monitor=SceneMonitor(threshold=100, cooldown_s=0), min_free_mb=10_000_000)
    compared = frames_compared(watch, monkeypatch)
    watch.take_baseline()
    source.level = 200
    watch.start_monitor()
    watch.start_motion()
    assert wait_for(lambda: saving_stopped(watch) == "low_disk")
    assert "below min_free_mb = 10000000" in watch.status()["monitor"]["saving_stopped"]["message"]
    watch._on_detections(new_frame(watch.camera), PERSON)
    assert wait_for(lambda: watch.catalogue.events())                 # the event, without a picture
    seen = len(compared)
    assert wait_for(lambda: len(compared) >= seen + 10)
    assert watch.catalogue.events()[0]["snapshot"] is None and list(watch.media_dir.glob("*.jpg")) == []
    assert watch.changes_saved == 0 and watch.status()["monitor"]["last_score"] > 100
    warnings = [record for record in caplog.records if "not saved until there is more" in record.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING      # said once, not per frame


def test_a_disk_that_refuses_writes_is_said_once_and_tried_again_later(still_watch_with, monkeypatch, caplog):
    """A read-only disk: the log said it at every change (every 2 s), and the status said nothing."""
    watch, source = still_watch_with(monitor=SceneMonitor(threshold=100, cooldown_s=0))
    compared = frames_compared(watch, monkeypatch)
    tries = []

    def read_only(*args, **kwargs):
        tries.append(args)
        raise OSError(errno.EROFS, "Read-only file system", str(watch.media_dir))
    monkeypatch.setattr(pictures, "write_unique_file", read_only)
    watch.take_baseline()
    source.level = 200
    watch.start_monitor()
    assert wait_for(lambda: saving_stopped(watch) == "cannot_write")
    assert "read-only" in watch.status()["monitor"]["saving_stopped"]["message"]
    seen = len(compared)
    assert wait_for(lambda: len(compared) >= seen + 20)               # changed frames, no new try
    assert len(tries) == 1 and watch.changes_saved == 0
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "tried again every 60 s" in errors[0].getMessage()
    monkeypatch.setattr(scene_watch, "WRITE_RETRY_S", 0.0)
    monkeypatch.setattr(pictures, "write_unique_file", write_unique_file)     # the disk is back
    watch._write_failure = (watch._write_failure[0], 0.0)
    assert wait_for(lambda: watch.changes_saved > 0 and saving_stopped(watch) is None)


def test_status_and_pages_say_the_monitor_is_not_saving_on_a_low_disk(settings):
    application = create_app(settings.replace(min_free_mb=10_000_000))
    client = application.test_client()
    try:
        assert client.post("/monitor/start", headers={"X-Control-Token": application.config["CONTROL_TOKEN"]}
                           ).status_code == 200
        assert wait_for(lambda: (client.get("/status").get_json()["monitor"]["saving_stopped"] or {}).get("reason")
                        == "low_disk")
        for page in ("/", "/watch"):
            assert "Scene changes not saved: only" in client.get(page).get_data(as_text=True)
    finally:
        stop_services(application)


@dataclasses.dataclass
class TwoVisits(scenes.ObjectEntering):
    """A person walks across the room, and again after a pause long enough to end the first event."""
    seconds: float = 26.0
    enter_at: float = 2.0
    leave_at: float = 6.0
    again_at: float = 16.0

    def render(self, image, timestamp):
        visit = timestamp if timestamp < self.again_at else timestamp - self.again_at + self.enter_at
        return super().render(image, visit)


def box_green_pixels(image):
    """Pixels of the boxes' green in a decoded BGR picture (the room and the person are grey)."""
    image = image.astype(np.int16)
    blue, green, red = image[..., 0], image[..., 1], image[..., 2]
    return int(np.count_nonzero((green - red > 50) & (green - blue > 50)))


def test_the_pre_roll_of_a_clip_shows_no_motion_boxes(settings, control_for, monkeypatch):
    """The second event's pre-roll holds frames of the first, streamed with boxes; its clip has none."""
    application, source = watch_app(settings, TwoVisits(), record_events=True, preroll_s=5.0, postroll_s=0.2)
    preroll = application.extensions["watch"].preroll
    added, drained, real_add, real_frames = {}, [], preroll.add, preroll.frames
    monkeypatch.setattr(preroll, "add", lambda frame: (added.update({frame.seq: frame.overlaid}), real_add(frame)))
    monkeypatch.setattr(preroll, "frames", lambda: drained.append(real_frames()) or drained[-1])
    try:
        events = events_after_playback(application, source, control_for(application))
        assert len(events) == 2 and all(event["clip"] for event in events)
        assert any(added[frame.seq] for frame in drained[1])          # boxes were streamed in its pre-roll
        assert wait_for(lambda: not application.extensions["recorder"].status()["recording"])
        with av.open(str(Path(settings.media_dir) / events[0]["clip"])) as container:   # newest first
            greens = [box_green_pixels(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]
        assert len(greens) > len(drained[1]) and max(greens) == 0
    finally:
        stop_services(application)


def test_recorder_writes_the_pre_roll_first(tmp_path, fake_camera):
    demo = DemoSource(64, 48, 30)
    demo.open()
    from camera_server.capture import camera as camera_base
    now = time.time()
    preroll = [EncodedFrame(seq, now - 1.0 + seq / 30, camera_base.encode_jpeg(demo.read(), 80)) for seq in range(30)]
    recorder = Recorder(fake_camera, tmp_path, min_free_mb=0)
    recorder.start(filename="pre.mp4", preroll=preroll)
    time.sleep(0.5)
    result = recorder.stop()
    assert result["frames"] >= 30
    assert result["duration"] >= 1.0


def test_monitor_saves_changes_with_a_cooldown_and_delete_keeps_the_baseline(settings, control_for):
    application, source = watch_app(settings, scenes.ObjectEntering(seconds=20, enter_at=0.5, leave_at=19.5),
                                    monitor_cooldown_s=0.3)
    client = application.test_client()
    control = control_for(application)
    try:
        source.index = 0
        assert client.post("/monitor/baseline", headers=control).status_code == 200
        assert client.get("/monitor/baseline.jpg").data.startswith(b"\xff\xd8")
        assert client.post("/monitor/start", headers=control, data={"threshold": "40"}).get_json()["on"] is True
        watch = application.extensions["watch"]
        assert wait_for(lambda: watch.changes_saved >= 3)
        client.post("/monitor/stop", headers=control)
        changes = client.get("/get_database?kind=change").get_json()
        times = sorted(entry["created"] for entry in changes)
        assert all(later - earlier >= 0.29 for earlier, later in zip(times, times[1:]))   # the cooldown
        assert changes[0]["filename"] in client.get("/shows").get_data(as_text=True)
        assert client.post("/delete", headers=control).get_json() == {"deleted": len(changes)}
        assert client.get("/get_database?kind=change").get_json() == []
        assert client.get("/monitor/baseline.jpg").status_code == 200
    finally:
        stop_services(application)


@pytest.mark.parametrize("route, data, words", [
    ("/monitor/start", {"threshold": "huge"}, "threshold must be a number"),
    ("/monitor/start", {"threshold": "0"}, "at least 0.01"),
    ("/monitor/start", {"threshold": "0.001"}, "at least 0.01"),
    ("/monitor/start", {"threshold": "70000"}, "at most 65025"),
])
def test_monitor_thresholds_are_checked(client, control, route, data, words):
    response = client.post(route, headers=control, data=data)
    assert response.status_code == 400 and words in response.get_json()["error"]


def test_monitor_start_without_a_picture_is_a_503_and_keeps_the_threshold(client, control, app, monkeypatch):
    def no_picture(timeout=5.0):
        raise CameraError("the camera was unplugged")

    monkeypatch.setattr(app.extensions["camera"], "current_frame", no_picture)
    response = client.post("/monitor/start", headers=control, data={"threshold": "40"})
    assert response.status_code == 503 and "unplugged" in response.get_json()["error"]
    monitor = client.get("/status").get_json()["monitor"]
    assert monitor["threshold"] == 300 and monitor["on"] is False


def test_shows_lists_the_newest_changes_and_offers_more(app, client, monkeypatch):
    from camera_server.web import watch_routes
    monkeypatch.setattr(watch_routes, "SHOWS_PER_PAGE", 3)
    media = Path(app.config["MEDIA_DIR"])
    for number in range(5):
        (media / f"change-{number}.jpg").write_bytes(b"\xff\xd8")
        app.extensions["catalogue"].add(f"change-{number}.jpg", "change", created=1700000000.0 + number)
    page = client.get("/shows").get_data(as_text=True)
    assert [f"change-{number}.jpg" in page for number in range(5)] == [False, False, True, True, True]
    assert "Show more" in page and "limit=6" in page
    page = client.get("/shows?limit=5").get_data(as_text=True)
    assert all(f"change-{number}.jpg" in page for number in range(5)) and "Show more" not in page
    assert client.get("/shows?limit=0").status_code == 400


def test_shows_at_the_largest_limit_offers_no_more(app, client, monkeypatch):
    def entries(kind=None, limit=None, **options):       # more changes than the largest limit
        return [{"filename": f"change-{number}.jpg", "created": 1.7e9, "note": None} for number in range(limit)]

    monkeypatch.setattr(app.extensions["catalogue"], "entries", entries)
    assert "limit=10000" in client.get("/shows?limit=6000").get_data(as_text=True)
    page = client.get("/shows?limit=10000").get_data(as_text=True)
    assert "The newest 10000 changes are shown" in page and "Show more" not in page     # no link to itself


def test_watch_routes_need_the_token_and_events_checks_its_limit(client):
    for route in ("/monitor/baseline", "/monitor/start", "/monitor/stop", "/motion/start", "/motion/stop", "/delete"):
        assert client.post(route).status_code == 403
    assert client.get("/events?limit=0").status_code == 400
    assert client.get("/events").get_json() == []
    assert client.get("/monitor/baseline.jpg").status_code == 404
    assert client.get("/watch").status_code == 200 and client.get("/shows").status_code == 200


@pytest.mark.parametrize("limit", ["\u00b2", "\u0661\u0662", "-1", "1.5", "", "1001"])
def test_events_refuses_a_limit_that_is_not_plain_digits(client, limit):
    response = client.get("/events", query_string={"limit": limit})
    assert response.status_code == 400 and "limit must be a whole number" in response.get_json()["error"]


@pytest.mark.parametrize("config, words", [
    ("motion_mask = 1,2,3\n", "mask"),
    ("motion_mask_file = /nonexistent/mask.png\n", "mask.png"),
    ("detector = yolo\n", "detector = 'yolo'"),
    ("detector = dnn\ndetector_model = /nonexistent/model.onnx\n", "model.onnx"),
    ("detector = hog\ndetector_model = model.onnx\n", "detector_model is not used by the hog detector"),
    ("detector = haar\ndetector_labels = labels.txt\n", "detector_labels is not used by the haar detector"),
    ("detector = haar\ndetector_confidence = 0.9\n", "detector_confidence is not used by the haar detector"),
    ("detector_model = /nonexistent/model.onnx\n", "detector_model is set but detector is empty"),
    ("detector_config = model.pbtxt\ndetector_labels = labels.txt\n",
     "detector_config, detector_labels are set but detector is empty"),
    ("detector =\ndetector_confidence = 0.7\n", "detector_confidence is set but detector is empty"),
    ("webhook_url = ftp://example\n", "ftp://example"),
    ("monitor_threshold = 0\n", "monitor_threshold = '0' is out of range; use a value from 0.01"),
    ("event_quiet_s = 0\n", "event_quiet_s = '0' is out of range"),
    ("monitor_max_changes_per_hour = 0\n", "monitor_max_changes_per_hour = '0' is out of range; use a value from 1"),
    ("detector_confidence = 1.5\n", "detector_confidence = '1.5' is out of range"),
])
def test_bad_watch_settings_stop_start_up_with_a_clear_message(tmp_path, monkeypatch, capsys, config, words):
    path = tmp_path / "config.txt"
    path.write_text(f"[SETTINGS]\ncamera = demo\nmedia_dir = {tmp_path}/media\nlog_file = {tmp_path}/log\n"
                    f"[WATCH]\n{config}")
    monkeypatch.setenv("CONFIG_FILE", str(path))
    with pytest.raises(SystemExit):
        main_app()
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("detector, extra, options", [
    ("hog", {"detector_confidence": 0.95}, {"min_confidence": 0.95}),
    ("hog", {}, {"min_confidence": 0.5}),
    ("haar", {"detector_model": "fullbody"}, {"cascade": "fullbody"}),
    ("haar", {"detector_confidence": 0.5}, {}),     # the default (as in config.txt.example) is no setting
    ("dnn", {"detector_model": "m.onnx", "detector_labels": "l.txt", "detector_confidence": 0.95},
     {"model": "m.onnx", "labels": "l.txt", "min_confidence": 0.95}),
    ("", {}, {}),
])
def test_each_detector_gets_the_settings_it_uses(settings, detector, extra, options):
    chosen = settings.replace(detector=detector, **extra)
    assert scene_watch.detector_options(chosen) == options
