"""watch/monitor.py: MSE against the baseline, no uint8 wrap, size/channel mismatch, threshold, cooldown."""

import cv2
import numpy as np
import pytest

import scenes
from camera_server.watch.monitor import ChangeResult, NoBaseline, SceneMonitor, validate_threshold


def reference_mse(first, second):
    """The seed's formula per pixel and channel, in float64: the answer cv2.norm must give."""
    return float(np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2))


def test_the_same_frame_scores_zero():
    image = scenes.room()
    monitor = SceneMonitor()
    monitor.set_baseline(image)
    assert monitor.compare(image) == 0.0
    assert monitor.check(image, 1.0) is None


def test_uint8_subtraction_does_not_wrap():
    monitor = SceneMonitor()
    monitor.set_baseline(np.full((4, 4, 3), 10, np.uint8))
    score = monitor.compare(np.full((4, 4, 3), 250, np.uint8))
    assert score == 240.0 ** 2           # wrapping uint8 arithmetic would give (10 - 250) % 256 = 16


def test_score_matches_float_reference_on_a_real_scene():
    frames = [image for _, image in scenes.ObjectEntering().frames()]
    monitor = SceneMonitor()
    monitor.set_baseline(frames[0])
    for image in frames[25:28]:
        assert monitor.compare(image) == pytest.approx(reference_mse(frames[0], image), rel=1e-9)


def test_black_against_white_is_the_maximum():
    monitor = SceneMonitor()
    monitor.set_baseline(np.zeros((8, 8), np.uint8))
    assert monitor.compare(np.full((8, 8), 255, np.uint8)) == 65025.0


def test_gray_frame_against_colour_baseline_is_compared_in_gray():
    colour = scenes.room()
    monitor = SceneMonitor()
    monitor.set_baseline(colour)
    gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    assert monitor.compare(gray) == 0.0
    assert monitor.compare(255 - gray) == pytest.approx(reference_mse(gray, 255 - gray))


def test_half_resolution_frame_against_full_size_baseline():
    image = scenes.room(320, 240)
    monitor = SceneMonitor()
    monitor.set_baseline(image)
    half = cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA)
    assert monitor.compare(half) < 1.0                    # the same scene, only smaller
    dark = np.zeros_like(half)
    assert monitor.compare(dark) == pytest.approx(reference_mse(half, dark), rel=0.01)


def test_compare_before_a_baseline_says_what_to_do():
    with pytest.raises(NoBaseline, match="baseline"):
        SceneMonitor().compare(scenes.room())


@pytest.mark.parametrize("threshold", [0, 0.001, -1, 65026, float("nan")])
def test_thresholds_out_of_range_are_refused_with_the_range(threshold):
    with pytest.raises(ValueError, match="at least 0.01 and at most 65025"):
        SceneMonitor(threshold=threshold)


@pytest.mark.parametrize("threshold", ["lots", None, ""])
def test_thresholds_that_are_not_numbers_are_refused(threshold):
    with pytest.raises(ValueError, match="must be a number"):
        SceneMonitor(threshold=threshold)


@pytest.mark.parametrize("threshold", [0.01, 300, "300", 65025])
def test_thresholds_in_range_are_taken(threshold):
    assert validate_threshold(threshold) == float(threshold)


def test_setting_a_bad_threshold_keeps_the_old_one():
    monitor = SceneMonitor(threshold=100)
    with pytest.raises(ValueError):
        monitor.threshold = 0
    assert monitor.threshold == 100


@pytest.mark.parametrize("cooldown", [-1, 3601, "soon"])
def test_bad_cooldowns_are_refused(cooldown):
    with pytest.raises(ValueError, match="cooldown"):
        SceneMonitor(cooldown_s=cooldown)


def test_change_over_threshold_is_reported_with_score_and_time():
    monitor = SceneMonitor(threshold=300)
    empty = scenes.room()
    monitor.set_baseline(empty)
    changed = empty.copy()
    changed[:, : changed.shape[1] // 2] = 0
    result = monitor.check(changed, 12.5)
    assert result == ChangeResult(score=pytest.approx(reference_mse(empty, changed)), timestamp=12.5)
    assert result.score > 300


def test_a_person_walking_by_is_saved_once_per_cooldown_window():
    """Every frame from 2.0 s to 6.0 s differs from the baseline; the cooldown allows one per 2 s."""
    scene = scenes.ObjectEntering(enter_at=2.0, leave_at=6.0, seconds=8.0)
    monitor = SceneMonitor(threshold=100, cooldown_s=2.0)
    saved, over = [], []
    for timestamp, image in scene.frames():
        if timestamp == 0:
            monitor.set_baseline(image)
        if monitor.compare(image) > monitor.threshold:
            over.append(timestamp)
        result = monitor.check(image, timestamp)
        if result is not None:
            saved.append(result.timestamp)
    assert len(over) > 20, "the person must make many frames differ, or the test proves nothing"
    expected = []
    for timestamp in over:
        if not expected or timestamp - expected[-1] >= 2.0:
            expected.append(timestamp)
    assert saved == expected
    assert 2 <= len(saved) <= 3, f"about 4 s of change with a 2 s cooldown, saved at {saved}"


def test_noise_and_empty_room_never_pass_the_default_threshold():
    monitor = SceneMonitor()
    for timestamp, image in scenes.Scene("noise", seconds=3.0).frames():
        if timestamp == 0:
            monitor.set_baseline(image)
        assert monitor.check(image, timestamp) is None


def test_a_new_baseline_starts_a_new_cooldown_window():
    monitor = SceneMonitor(threshold=1, cooldown_s=60)
    monitor.set_baseline(np.zeros((4, 4), np.uint8))
    white = np.full((4, 4), 255, np.uint8)
    assert monitor.check(white, 0.0) is not None
    assert monitor.check(white, 1.0) is None
    monitor.set_baseline(np.zeros((4, 4), np.uint8))
    assert monitor.check(white, 2.0) is not None


def test_at_most_max_changes_per_hour_until_the_hour_is_over_or_a_new_baseline():
    monitor = SceneMonitor(threshold=1, cooldown_s=0, max_changes_per_hour=3)
    black, white = np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)
    monitor.set_baseline(black)
    assert [monitor.check(white, 100.0 + second) is not None for second in range(6)] == [True] * 3 + [False] * 3
    assert monitor.last_score == 65025.0                   # still scored while held back
    assert monitor.held_until(200.0) == 3700.0             # an hour after the first change it counted
    assert monitor.check(white, 3700.0) is not None        # the next hour
    assert monitor.held_until(3700.0) is None
    assert [monitor.check(white, 3701.0 + second) is not None for second in range(3)] == [True, True, False]
    monitor.set_baseline(black)                            # a new baseline: counted from 0 again
    assert monitor.held_until(3705.0) is None
    assert [monitor.check(white, 3705.0 + second) is not None for second in range(4)] == [True] * 3 + [False]


@pytest.mark.parametrize("value", [0, -1, 100001, "many", None])
def test_bad_max_changes_per_hour_are_refused_with_the_range(value):
    with pytest.raises(ValueError, match="most changes per hour"):
        SceneMonitor(max_changes_per_hour=value)


def test_baseline_is_a_copy():
    image = np.zeros((4, 4), np.uint8)
    monitor = SceneMonitor()
    monitor.set_baseline(image)
    image[:] = 255                     # the camera reuses its buffer
    assert monitor.compare(np.zeros((4, 4), np.uint8)) == 0.0
