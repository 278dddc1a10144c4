"""motion.py: the synthetic scenes give the known answers; masks, their text and files; drawing."""

import cv2
import numpy as np
import pytest

import scenes
from camera_server.watch.motion import (MaskShape, MotionDetector, MotionResult, draw_boxes, load_mask_file,
                                        parse_masks, rectangle)


def run(scene, detector=None):
    detector = detector or MotionDetector()
    return [(timestamp, detector.process(image, timestamp)) for timestamp, image in scene.frames()]


def motion_times(results):
    return [timestamp for timestamp, result in results if result.motion]


def inside(box, rect, slack=0):
    x, y, width, height = box
    x1, y1, x2, y2 = rect
    return x >= x1 - slack and y >= y1 - slack and x + width <= x2 + 1 + slack and y + height <= y2 + 1 + slack


# --- the scenes -------------------------------------------------------------------------------

def test_empty_room_has_no_motion():
    assert motion_times(run(scenes.EmptyRoom())) == []


def test_sensor_noise_is_not_motion():
    results = run(scenes.SensorNoise())
    assert motion_times(results) == []
    assert max(result.score for _, result in results) == 0.0


def test_person_entering_is_motion_only_while_they_are_there():
    scene = scenes.ObjectEntering()
    results = run(scene)
    times = motion_times(results)
    assert times, "the person was not seen"
    assert scene.enter_at <= times[0] <= scene.enter_at + 0.3
    assert scene.leave_at - 0.3 <= times[-1] <= scene.leave_at + 1.0
    # while the person crosses the middle of the room every frame has motion, in one box round them
    middle = [result for timestamp, result in results if scene.enter_at + 1 <= timestamp <= scene.leave_at - 1]
    assert all(result.motion for result in middle)
    assert all(len(result.boxes) == 1 for result in middle)
    assert all(0.01 < result.score < 0.2 for result in middle)


def test_motion_boxes_are_in_full_image_pixels_around_the_person():
    scene = scenes.ObjectEntering(width=640, height=480, enter_at=0.0, leave_at=4.0, seconds=2.1)
    detector = MotionDetector()
    for timestamp, image in scene.frames():
        result = detector.process(image, timestamp)
    # at 2.0 s the person is half way: the box must hold their silhouette (dark pixels), in full size
    (x, y, width, height), = result.boxes
    person = np.zeros(image.shape[:2], np.uint8)
    scenes.draw_person(person, 320, int(480 * 0.9), int(480 * 0.6), shade=255)
    ys, xs = np.nonzero(person)
    assert x <= xs.min() and xs.max() < x + width
    assert y <= ys.min() + 5 and ys.max() - 5 < y + height
    assert width < 200 and height < 400


@pytest.mark.parametrize("ramp_frames, exposure_compensation", [
    (1, True), (3, True), (10, True), (40, True),
    (1, False), (3, False),         # a slow ramp needs the compensation: see the next test
])
def test_light_switch_recalibrates_instead_of_firing(ramp_frames, exposure_compensation):
    results = run(scenes.LightSwitch(ramp_frames=ramp_frames),
                  MotionDetector(exposure_compensation=exposure_compensation))
    assert motion_times(results) == []
    if ramp_frames <= 3:
        assert any(result.recalibrated for _, result in results)


def test_without_exposure_compensation_a_slow_ramp_looks_like_motion():
    """Why the compensation exists: the background lags a slow ramp and bright parts cross the threshold."""
    results = run(scenes.LightSwitch(ramp_frames=40), MotionDetector(exposure_compensation=False))
    assert motion_times(results)


def test_lightswitch_result_reports_the_score_and_no_boxes():
    results = run(scenes.LightSwitch(ramp_frames=1), MotionDetector(exposure_compensation=False))
    (_, switch), = [(timestamp, result) for timestamp, result in results if result.recalibrated]
    assert switch == MotionResult(False, pytest.approx(1.0, abs=0.05), (), True)


def test_flickering_corner_is_motion_without_a_mask():
    scene = scenes.FlickeringCorner()
    results = run(scene)
    times = motion_times(results)
    assert times and times[0] == pytest.approx(scene.flicker_from)
    assert all(inside(box, scene.flicker_rect, slack=8) for _, result in results for box in result.boxes)


@pytest.mark.parametrize("mask_text", ["{x1},{y1},{x2},{y2}", "0.8333,0.0,1.0,0.1667",
                                       "{x1},{y1},{x2},{y1},{x2},{y2},{x1},{y2}"])
def test_flickering_corner_under_a_mask_is_not_motion(mask_text):
    scene = scenes.FlickeringCorner()
    x1, y1, x2, y2 = scene.flicker_rect
    masks = parse_masks(mask_text.format(x1=x1, y1=y1, x2=x2, y2=y2))
    results = run(scene, MotionDetector(masks=masks))
    assert motion_times(results) == []
    assert max(result.score for _, result in results) == 0.0


def test_a_mask_does_not_hide_motion_elsewhere():
    scene = scenes.ObjectEntering()
    corner = scenes.FlickeringCorner().flicker_rect
    assert motion_times(run(scene, MotionDetector(masks=[rectangle(*corner)])))


def test_mask_image_hides_the_flicker(tmp_path):
    scene = scenes.FlickeringCorner()
    x1, y1, x2, y2 = scene.flicker_rect
    mask = np.zeros((scene.height * 2, scene.width * 2), np.uint8)   # any size: it is scaled
    cv2.rectangle(mask, (2 * x1, 2 * y1), (2 * x2 + 1, 2 * y2 + 1), 255, -1)
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask)
    assert motion_times(run(scene, MotionDetector(masks=[load_mask_file(str(path))]))) == []


def test_set_masks_takes_effect_and_restarts_the_background():
    scene = scenes.FlickeringCorner()
    detector = MotionDetector()
    frames = list(scene.frames())
    assert any(detector.process(image, timestamp).motion for timestamp, image in frames[:40])
    detector.set_masks([rectangle(*scene.flicker_rect)])
    assert not any(detector.process(image, timestamp).motion for timestamp, image in frames[40:])


def test_gray_frames_and_a_size_change_work():
    detector = MotionDetector()
    for timestamp, image in scenes.ObjectEntering(seconds=4.0).frames():
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if timestamp >= 3.0:            # the half-resolution toggle
            gray = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
        result = detector.process(gray, timestamp)
    assert result.motion
    assert all(x + width <= 160 and y + height <= 120 for x, y, width, height in result.boxes)


def test_status_has_the_latest_result():
    detector = MotionDetector()
    assert detector.status()["motion"] is False
    for timestamp, image in scenes.ObjectEntering(seconds=4.0).frames():
        detector.process(image, timestamp)
    status = detector.status()
    assert status["motion"] is True and status["last_motion_at"] == pytest.approx(3.9)
    assert status["boxes"] and 0 < status["score"] < 1


# --- settings -------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("min_area", 0, "min_area must be above 0"),
    ("min_area", 1.5, "at most 1"),
    ("threshold", 0, "threshold must be at least 1"),
    ("threshold", 255, "at most 254"),
    ("alpha", 0, "alpha must be above 0"),
    ("height", 8, "height must be at least 16"),
    ("blur", 4, "odd kernel size"),
    ("lightswitch_fraction", 0, "lightswitch_fraction must be above 0"),
    ("threshold", "high", "must be a number"),
    ("masks", ["0,0,10,10"], "MaskShape or a mask image"),
])
def test_bad_settings_are_refused_with_a_message(option, value, message):
    with pytest.raises(ValueError, match=message):
        MotionDetector(**{option: value})


# --- mask text and files --------------------------------------------------------------------

def test_parse_masks_rectangles_polygons_pixels_and_fractions():
    shapes = parse_masks(" 10,20,110,70 ; 0.5,0.0,1.0,0.25;0,0,50,0,0,50 ; ")
    assert shapes == [
        MaskShape(((10, 20), (110, 20), (110, 70), (10, 70)), False),
        MaskShape(((0.5, 0.0), (1.0, 0.0), (1.0, 0.25), (0.5, 0.25)), True),
        MaskShape(((0, 0), (50, 0), (0, 50)), False),
    ]
    assert shapes[1].pixel_points(200, 100).tolist() == [[100, 0], [200, 0], [200, 25], [100, 25]]
    assert parse_masks("") == [] and parse_masks(None) == []


@pytest.mark.parametrize("text, message", [
    ("10,20,30", "x,y pairs"),
    ("10,20", "x,y pairs"),
    ("a,b,c,d", "numbers separated by commas"),
    ("0.5,0,1,1", "mixes pixels"),
    ("0.5,0.5,1.5,1.0", "between 0.0 and 1.0"),
    ("-5,0,10,10", "cannot be negative"),
    ("0,0,10,10; 1,2", "motion mask 2"),
])
def test_parse_masks_refuses_bad_text_and_says_which_mask(text, message):
    with pytest.raises(ValueError, match=message):
        parse_masks(text)


def test_load_mask_file_white_means_ignore(tmp_path):
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, 10:] = 255
    image[0, 0] = 100                               # grey below the middle counts as black
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), image)
    mask = load_mask_file(str(path))
    assert mask.shape == (10, 20) and mask.dtype == np.uint8
    assert (mask[:, 10:] == 255).all() and (mask[:, :10] == 0).all()


def test_load_mask_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_mask_file(str(tmp_path / "missing.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(ValueError, match="broken.png.*not an image"):
        load_mask_file(str(broken))


# --- drawing --------------------------------------------------------------------------------

def test_draw_boxes_draws_in_place_and_returns_the_image():
    image = np.zeros((100, 100, 3), np.uint8)
    returned = draw_boxes(image, [(10, 10, 30, 20)], labels=["person 87%"])
    assert returned is image
    assert tuple(image[10, 20]) == (0, 255, 0)       # the top edge
    assert tuple(image[20, 20]) == (0, 0, 0)         # the inside stays clear
    assert image[:10].any()                          # the label above the box


def test_draw_boxes_on_gray_draws_white():
    image = np.zeros((50, 50), np.uint8)
    draw_boxes(image, [(5, 5, 10, 10)])
    assert image[5, 10] == 255
