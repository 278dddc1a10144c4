"""events.py: the synthetic scenes through MotionDetector and EventTracker give exactly the expected
events; the tracker's rules one by one; the pre-roll's bounds."""
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import simplejpeg

import scenes
from camera_server.capture.camera import encode_jpeg
from camera_server.capture.hub import Frame
from camera_server.watch.detection import Detection
from camera_server.watch.events import ENDED, STARTED, UPDATED, EventTracker, PreRoll
from camera_server.watch.motion import MotionDetector, MotionResult, draw_boxes, rectangle


def scene_events(scene, detector=None, quiet_s=5.0):
    """All EventChanges of a scene: (change, event) in order."""
    detector = detector or MotionDetector()
    tracker = EventTracker(quiet_s=quiet_s)
    changes = []
    for timestamp, image in scene.frames():
        changes += tracker.update(timestamp, detector.process(image, timestamp))
    return changes, tracker


# --- the scenes: exactly the expected events ------------------------------------------------

def test_person_entering_gives_exactly_one_motion_event():
    scene = scenes.ObjectEntering(enter_at=2.0, leave_at=6.0, seconds=14.0)
    changes, tracker = scene_events(scene)
    assert [change.change for change in changes] == [STARTED, ENDED]
    started, ended = changes
    assert started.event.id == ended.event.id
    assert started.event.kind == ended.event.kind == "motion"
    assert scene.enter_at <= ended.event.start <= scene.enter_at + 0.3
    assert scene.leave_at - 0.3 <= ended.event.end <= scene.leave_at + 1.0
    assert ended.timestamp == pytest.approx(ended.event.end + 5.0)      # after the quiet time
    assert 0.02 < ended.event.peak_score < 0.2
    assert ended.event.labels == frozenset()
    assert tracker.current is None


def test_light_switch_gives_no_event():
    changes, _ = scene_events(scenes.LightSwitch())
    assert changes == []


def test_slow_light_change_gives_no_event():
    changes, _ = scene_events(scenes.LightSwitch(ramp_frames=40))
    assert changes == []


def test_sensor_noise_gives_no_event():
    changes, _ = scene_events(scenes.SensorNoise())
    assert changes == []


def test_flickering_corner_under_a_mask_gives_no_event():
    scene = scenes.FlickeringCorner()
    changes, _ = scene_events(scene, MotionDetector(masks=[rectangle(*scene.flicker_rect)]))
    assert changes == []


def test_flickering_corner_without_a_mask_gives_one_long_event():
    scene = scenes.FlickeringCorner()
    changes, tracker = scene_events(scene)
    assert [change.change for change in changes] == [STARTED]
    assert changes[0].event.start == pytest.approx(scene.flicker_from)
    (ended,) = tracker.close(scene.seconds)
    assert ended.change == ENDED and ended.event.end == pytest.approx(scene.seconds - 0.1)


# --- the tracker's rules --------------------------------------------------------------------

MOVING = MotionResult(True, 0.1, ((0, 0, 10, 10),))
MOVING_MORE = MotionResult(True, 0.3, ((0, 0, 20, 20),))
STILL = MotionResult(False, 0.0)
PERSON = Detection("person", 0.8, (0, 0, 10, 20))
CAT = Detection("cat", 0.6, (5, 5, 10, 10))


def kinds(changes):
    return [change.change for change in changes]


def test_an_event_starts_on_motion_and_ends_after_the_quiet_time():
    tracker = EventTracker(quiet_s=5.0)
    assert kinds(tracker.update(100.0, MOVING)) == [STARTED]
    assert tracker.update(101.0, MOVING_MORE) == []          # a higher score alone tells nobody
    assert tracker.update(105.9, STILL) == []
    (ended,) = tracker.update(106.0, None)                   # 5.0 s after the last motion
    assert ended.change == ENDED
    assert (ended.event.start, ended.event.end, ended.event.kind) == (100.0, 101.0, "motion")
    assert ended.event.peak_score == 0.3


def test_a_short_pause_keeps_one_event_a_long_one_makes_two():
    tracker = EventTracker(quiet_s=2.0)
    changes = tracker.update(0.0, MOVING) + tracker.update(1.9, MOVING) + tracker.update(3.8, MOVING)
    assert kinds(changes) == [STARTED]
    changes = tracker.update(5.8, MOVING)                    # 2.0 s of quiet before this frame
    assert kinds(changes) == [ENDED, STARTED]
    assert changes[0].event.id != changes[1].event.id
    assert changes[0].event.end == 3.8 and changes[1].event.start == 5.8


def test_a_detection_starts_an_object_event():
    tracker = EventTracker()
    (started,) = tracker.update(10.0, None, [PERSON])
    assert started.event.kind == "object" and started.event.labels == {"person"}
    assert started.event.peak_confidence == 0.8 and started.event.peak_score == 0.0


def test_motion_that_turns_out_to_be_an_object_is_updated():
    tracker = EventTracker()
    tracker.update(10.0, MOVING)
    (updated,) = tracker.update(10.5, MOVING, [PERSON])
    assert updated.change == UPDATED and updated.event.kind == "object"
    assert tracker.update(11.0, MOVING, [PERSON]) == []      # nothing new
    (updated,) = tracker.update(11.5, STILL, [CAT])           # detections alone keep it going
    assert updated.event.labels == {"person", "cat"} and updated.event.peak_confidence == 0.8
    (ended,) = tracker.update(20.0, STILL)
    assert ended.event.kind == "object" and ended.event.end == 11.5
    assert ended.to_dict() == {"type": "ended", "at": 20.0, "id": ended.event.id, "kind": "object", "start": 10.0,
                               "end": 11.5, "peak_score": 0.1, "peak_confidence": 0.8,
                               "labels": ["cat", "person"]}


def test_min_duration_drops_blips_and_delays_the_start():
    tracker = EventTracker(quiet_s=1.0, min_duration_s=0.5)
    assert tracker.update(0.0, MOVING) == [] and tracker.current is None
    assert tracker.update(2.0, STILL) == []                  # a 0 s blip: dropped without a word
    assert tracker.update(3.0, MOVING) == []
    (started,) = tracker.update(3.5, MOVING)
    assert started.event.start == 3.0 and tracker.current.id == started.event.id


def test_event_ids_are_strings_no_other_tracker_repeats():
    """A restart makes a new tracker: its events must not reuse the ids the webhook and MQTT saw."""
    def first_event_id():
        (started,) = EventTracker().update(0.0, MOVING)
        return started.event.id

    ids = [first_event_id() for _ in range(100)]
    assert all(isinstance(event_id, str) and len(event_id) >= 16 for event_id in ids)
    assert len(set(ids)) == len(ids)


def test_recalibration_is_not_activity():
    tracker = EventTracker()
    assert tracker.update(0.0, MotionResult(False, 0.9, (), True)) == []


def test_close_without_an_event_is_quiet():
    assert EventTracker().close(5.0) == []


@pytest.mark.parametrize("options, message", [
    ({"quiet_s": 0}, "quiet time must be above 0"),
    ({"quiet_s": -1}, "between 0 and 3600"),
    ({"quiet_s": "long"}, "number of seconds"),
    ({"min_duration_s": -0.5}, "minimum duration"),
])
def test_bad_tracker_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        EventTracker(**options)


# --- the pre-roll ---------------------------------------------------------------------------

def hub_frame(seq, timestamp, size=1000):
    return Frame.build(seq, timestamp, np.zeros((480, 640, 3), np.uint8), bytes([seq % 256]) * size)


def test_preroll_keeps_the_last_seconds_oldest_first():
    preroll = PreRoll(seconds=2.0)
    for seq in range(1, 51):                                 # 5 s at 10 fps
        preroll.add(hub_frame(seq, seq / 10))
    frames = preroll.frames()
    assert [frame.seq for frame in frames] == list(range(30, 51))     # 3.0 s .. 5.0 s
    assert frames[0].jpeg == bytes([30]) * 1000
    assert len(preroll) == 0 and preroll.nbytes == 0                  # drained


def test_preroll_keeps_jpeg_bytes_not_the_decoded_picture():
    preroll = PreRoll(seconds=1.0)
    preroll.add(hub_frame(1, 0.0))
    (kept,) = preroll.frames()
    assert not hasattr(kept, "image") and (kept.seq, kept.timestamp) == (1, 0.0)


def test_preroll_keeps_clean_pictures_of_frames_that_showed_boxes_and_encodes_no_other():
    clean = np.full((48, 64, 3), 90, np.uint8)
    boxed = draw_boxes(clean.copy(), [(8, 8, 30, 20)])
    preroll = PreRoll(seconds=10.0)
    plain = Frame.build(1, 0.0, clean, encode_jpeg(clean, 80))
    overlaid = Frame.build(2, 0.1, clean, encode_jpeg(boxed, 80), overlaid=True)
    preroll.add(plain)
    preroll.add(overlaid)
    first, second = preroll.frames()
    assert first.jpeg == plain.jpeg                              # kept as it was streamed
    for kept in (first, second):
        picture = simplejpeg.decode_jpeg(kept.jpeg, colorspace="BGR").astype(np.int16)
        assert np.abs(picture - clean).max() < 10                # no green box in either


def test_preroll_is_bounded_by_count_and_bytes():
    by_count = PreRoll(seconds=60, max_frames=5)
    by_bytes = PreRoll(seconds=60, max_bytes=3500)
    for seq in range(1, 21):
        by_count.add(hub_frame(seq, seq / 10))
        by_bytes.add(hub_frame(seq, seq / 10))
        assert len(by_count) <= 5 and by_bytes.nbytes <= 3500
    assert [frame.seq for frame in by_count.frames()] == [16, 17, 18, 19, 20]
    assert [frame.seq for frame in by_bytes.frames()] == [18, 19, 20]


def test_preroll_of_zero_seconds_keeps_nothing():
    preroll = PreRoll(seconds=0)
    preroll.add(hub_frame(1, 0.0))
    assert preroll.frames() == []


def test_preroll_add_and_drain_from_two_threads():
    preroll = PreRoll(seconds=300, max_frames=100000)
    drained = []
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            drained.extend(preroll.frames())
        drained.extend(preroll.frames())

    drainer = threading.Thread(target=drain)
    drainer.start()
    for seq in range(1, 5001):
        preroll.add(SimpleNamespace(seq=seq, timestamp=seq / 1000, jpeg=b"x"))
    stop.set()
    drainer.join()
    assert [frame.seq for frame in drained] == list(range(1, 5001))


@pytest.mark.parametrize("options", [{"seconds": -1}, {"seconds": 301}, {"seconds": 5, "max_bytes": 0},
                                     {"seconds": 5, "max_frames": 0}])
def test_bad_preroll_settings_are_refused(options):
    with pytest.raises(ValueError):
        PreRoll(**options)
