"""watch/detection.py: detector names and options, model file errors, a real ONNX model, the worker.

The ONNX models are tiny graphs written byte by byte by scenes.write_onnx (ONNX is protobuf; the
onnx package is not needed): global average pool -> Gemm -> Reshape, so the output is a known
function of the picture's mean colour, in the SSD layout (N x 7) or the YOLOv8 layout (4 + classes, N).
"""
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_server.capture.hub import Frame
from camera_server.watch import detection as object_detection
from camera_server.watch.detection import (DETECTORS, Detection, DetectionWorker, DetectorError, create_detector,
                                           find_cascade, load_labels)
from conftest import wait_for
from scenes import write_onnx

WAIT = 5.0   # an upper bound for things that take milliseconds; never a measurement


@pytest.fixture
def labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("background\nperson\ncat\n")
    return str(path)


@pytest.fixture
def ssd_model(tmp_path):
    """One SSD row: class 1, confidence 0.3 * (R + G + B) of the mean colour, box (0.25, 0.25)-(0.75, 0.5)."""
    weights = np.zeros((3, 7), np.float32)
    weights[:, 2] = 0.3
    bias = [0, 1, 0, 0.25, 0.25, 0.75, 0.5]
    return write_onnx(tmp_path / "ssd.onnx", weights, bias, (1, 1, 1, 7))


@pytest.fixture
def yolo_model(tmp_path):
    """YOLOv8 layout (1, 4 + 2 classes, 3 candidates) in 8 x 8 input pixels; scores grow with the red mean.

    Candidates 0 and 1 overlap almost entirely (class 1, scores 0.9 and 0.8 for a red picture): NMS
    keeps 0. Candidate 2 is class 0 elsewhere with score 0.7.
    """
    rows = np.array([[2, 2, 4, 4, 0, 0], [2.1, 2, 4, 4, 0, 0], [6, 6, 2, 2, 0, 0]], np.float32)
    weights = np.zeros((3, 6, 3), np.float32)      # colour x (cx, cy, w, h, class0, class1) x candidate
    weights[2, 5, 0], weights[2, 5, 1], weights[2, 4, 2] = 0.9, 0.8, 0.7   # blobFromImage made R channel 0
    weights = weights[[2, 1, 0]]                    # after swapRB the red mean is the first input
    return write_onnx(tmp_path / "yolo.onnx", weights.reshape(3, -1), rows.T, (1, 6, 3))


# --- names and options ----------------------------------------------------------------------

def test_unknown_detector_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown detector 'yolo': use one of hog, haar, dnn"):
        create_detector("yolo")


def test_unknown_option_names_the_accepted_ones(ssd_model):
    with pytest.raises(ValueError, match="no option colour.*it takes .*min_confidence"):
        create_detector("dnn", model=ssd_model, colour="red")


def test_names_are_case_and_space_insensitive(ssd_model):
    assert isinstance(create_detector(" DNN ", model=ssd_model, input_size=8), object_detection.DnnDetector)


# --- DNN with real tiny ONNX models ---------------------------------------------------------

def test_dnn_ssd_output_gives_labelled_boxes_in_pixels(ssd_model, labels_file):
    detector = create_detector("dnn", model=ssd_model, labels=labels_file, input_size=8, scale=1 / 255)
    white = np.full((480, 640, 3), 255, np.uint8)
    assert detector.detect(white) == [Detection("person", pytest.approx(0.9, abs=1e-3), (160, 120, 320, 120))]
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []          # confidence 0
    assert detector.detect(np.full((480, 640), 128, np.uint8)) == []         # gray works; 0.45 < 0.5


def test_dnn_min_confidence_is_an_option(ssd_model):
    detector = create_detector("dnn", model=ssd_model, input_size=8, scale=1 / 255, min_confidence=0.4)
    (detection,) = detector.detect(np.full((100, 100, 3), 128, np.uint8))
    assert detection.label == "class 1"                                       # no labels file
    assert detection.confidence == pytest.approx(0.45, abs=0.01)


def test_dnn_yolo_output_is_decoded_and_overlaps_suppressed(yolo_model, labels_file):
    two_classes = Path(labels_file).with_name("two.txt")
    two_classes.write_text("car\nperson\n")
    detector = create_detector("dnn", model=yolo_model, labels=str(two_classes), input_size=8, scale=1 / 255)
    red = np.zeros((80, 160, 3), np.uint8)
    red[..., 2] = 255
    detections = sorted(detector.detect(red), key=lambda detection: -detection.confidence)
    # candidate 0: centre (2, 2), 4 x 4 in the 8 x 8 input -> x 0..80, y 0..40 in the 160 x 80 picture
    assert detections == [Detection("person", pytest.approx(0.9, abs=1e-3), (0, 0, 80, 40)),
                          Detection("car", pytest.approx(0.7, abs=1e-3), (100, 50, 40, 20))]
    assert detector.detect(np.zeros((80, 160, 3), np.uint8)) == []


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(DetectorError, match="model file .*missing.onnx.* does not exist"):
        create_detector("dnn", model=str(tmp_path / "missing.onnx"))


def test_model_path_not_set_is_a_clear_error():
    with pytest.raises(DetectorError, match="model file is not set"):
        create_detector("dnn", model="")


def test_broken_onnx_file_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 this is not a protobuf model" * 10)
    with pytest.raises(DetectorError, match="cannot load the model .*broken.onnx"):
        create_detector("dnn", model=str(broken))


def test_broken_tensorflow_graph_is_a_clear_error(tmp_path):
    graph, config = tmp_path / "frozen_inference_graph.pb", tmp_path / "graph.pbtxt"
    graph.write_bytes(b"garbage" * 100)
    config.write_text("this is { not a graph")
    with pytest.raises(DetectorError, match="frozen_inference_graph.pb"):
        create_detector("dnn", model=str(graph), config=str(config))


def test_missing_config_and_labels_are_clear_errors(ssd_model, tmp_path):
    with pytest.raises(DetectorError, match="config file .*graph.pbtxt.* does not exist"):
        create_detector("dnn", model=ssd_model, config=str(tmp_path / "graph.pbtxt"))
    with pytest.raises(DetectorError, match="labels file .*coco.txt.* does not exist"):
        create_detector("dnn", model=ssd_model, labels=str(tmp_path / "coco.txt"))


def test_confidence_out_of_range_is_refused(ssd_model):
    with pytest.raises(ValueError, match="min_confidence must be a number from 0 to 1"):
        create_detector("dnn", model=ssd_model, min_confidence=50)


def test_unknown_output_format_is_refused(ssd_model):
    with pytest.raises(DetectorError, match="auto, ssd or yolo"):
        create_detector("dnn", model=ssd_model, output="retina")


def test_load_labels_plain_numbered_and_tensorflow_label_map(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("background\nperson\n\nbicycle\n\n")
    assert load_labels(str(plain)) == {0: "background", 1: "person", 3: "bicycle"}
    numbered = tmp_path / "coco.txt"
    numbered.write_text("1 person\n2: bicycle\n90 toothbrush\n")
    assert load_labels(str(numbered)) == {1: "person", 2: "bicycle", 90: "toothbrush"}
    label_map = tmp_path / "mscoco_label_map.pbtxt"
    label_map.write_text('item {\n  name: "/m/01g317"\n  id: 1\n  display_name: "person"\n}\n'
                         'item {\n  name: "/m/0199g"\n  id: 2\n  display_name: "bicycle"\n}\n'
                         'item { id: 17 name: "cat" }\n')
    assert load_labels(str(label_map)) == {1: "person", 2: "bicycle", 17: "cat"}
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DetectorError, match="has no labels"):
        load_labels(str(empty))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DetectorError, match="cannot be read"):
        load_labels(str(binary))


# --- HOG and Haar ---------------------------------------------------------------------------

class FakeHog:
    """Stands in for cv2.HOGDescriptor: one person box, in the coordinates of the picture it gets."""

    seen_widths = []

    @staticmethod
    def getDefaultPeopleDetector():
        return np.zeros((3781, 1), np.float32)

    def setSVMDetector(self, detector):
        self.detector = detector

    def detectMultiScale(self, image, winStride, padding, scale):
        FakeHog.seen_widths.append(image.shape[1])
        assert image.ndim == 2
        return np.array([[10, 20, 64, 128], [0, 0, 64, 128]]), np.array([[2.0], [0.1]])


def test_hog_plumbing_scales_boxes_back_and_filters_weak_ones(monkeypatch):
    monkeypatch.setattr(cv2, "HOGDescriptor", FakeHog, raising=False)
    FakeHog.seen_widths.clear()
    detector = create_detector("hog", max_width=640)
    detections = detector.detect(np.zeros((960, 1280, 3), np.uint8))
    assert FakeHog.seen_widths == [640]                 # large frames are searched at half size
    assert detections == [Detection("person", pytest.approx(1 - np.exp(-2.0)), (20, 40, 128, 256))]


def test_hog_missing_from_this_opencv_is_a_clear_error(monkeypatch):
    monkeypatch.delattr(cv2, "HOGDescriptor", raising=False)
    monkeypatch.delattr(cv2, "xobjdetect", raising=False)
    with pytest.raises(DetectorError, match=r"hog detector needs cv2.HOGDescriptor.*opencv-contrib"):
        create_detector("hog")


def draw_pedestrian(image, center_x, feet_y, height, shade=(40, 40, 40)):
    """A walker seen from the front in the proportions of HOG's training windows (96 of 128 px):
    head, neck, shoulders, arms along the body, two legs; in place."""
    unit = height / 96

    def points(*corners):
        return np.array([[int(center_x + x * unit), int(feet_y - (96 - y) * unit)] for x, y in corners], np.int32)

    cv2.ellipse(image, (int(center_x), int(feet_y - 88 * unit)), (int(6 * unit), int(8 * unit)), 0, 0, 360,
                shade, -1, cv2.LINE_AA)
    for part in (points((-3, 14), (3, 14), (3, 18), (-3, 18)),                    # neck
                 points((-13, 18), (13, 18), (11, 52), (-11, 52)),                # body
                 points((-13, 18), (-17, 20), (-18, 54), (-14, 55), (-12, 24)),   # arms
                 points((13, 18), (17, 20), (18, 54), (14, 55), (12, 24)),
                 points((-11, 52), (0, 52), (-2, 96), (-10, 96)),                 # legs
                 points((0, 52), (11, 52), (10, 96), (2, 96))):
        cv2.fillPoly(image, [part], shade, cv2.LINE_AA)
    return image


@pytest.mark.skipif(not hasattr(cv2, "HOGDescriptor"),
                    reason=f"OpenCV {cv2.__version__} has no HOGDescriptor (moved to opencv-contrib in 5.x)")
def test_real_hog_finds_the_person_in_a_room_and_nothing_in_the_empty_room():
    import scenes
    empty = scenes.room(640, 480)
    walker = draw_pedestrian(empty.copy(), 320, 450, 128)
    assert create_detector("hog").detect(empty) == []
    (found,) = create_detector("hog").detect(walker)
    x, y, width, height = found.box
    assert found.label == "person" and found.confidence >= 0.5
    assert x < 320 < x + width and y < 450 - 64 < y + height        # around the walker's middle
    assert 100 <= height <= 250                                     # a person's size, not the room's
    assert create_detector("hog", min_confidence=0.95).detect(walker) == []   # detector_confidence applies


class FakeCascade:
    def __init__(self, path):
        self.path = path

    def empty(self):
        return b"<cascade>" not in Path(self.path).read_bytes()

    def detectMultiScale(self, gray, scaleFactor, minNeighbors, minSize):
        assert gray.ndim == 2
        return np.array([[5, 6, 30, 30]])


def test_haar_plumbing_with_a_cascade_path(monkeypatch, tmp_path):
    monkeypatch.setattr(cv2, "CascadeClassifier", FakeCascade, raising=False)
    cascade = tmp_path / "cat.xml"
    cascade.write_bytes(b"<opencv_storage><cascade></cascade></opencv_storage>")
    detector = create_detector("haar", cascade=str(cascade), label="cat")
    assert detector.detect(np.zeros((60, 80, 3), np.uint8)) == [Detection("cat", 1.0, (5, 6, 30, 30))]
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<html>")
    with pytest.raises(DetectorError, match="broken.xml.*not a cascade"):
        create_detector("haar", cascade=str(broken))


def test_haar_cascade_not_shipped_names_where_it_looked(monkeypatch):
    monkeypatch.setattr(cv2, "CascadeClassifier", FakeCascade, raising=False)
    monkeypatch.setattr(object_detection, "cascade_directories", lambda: ["/nowhere/a", "/nowhere/b"])
    with pytest.raises(DetectorError, match="haarcascade_frontalface_default.xml.*/nowhere/a.*give the path"):
        create_detector("haar")


def test_haar_missing_from_this_opencv_is_a_clear_error(monkeypatch):
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    monkeypatch.delattr(cv2, "xobjdetect", raising=False)
    with pytest.raises(DetectorError, match="haar detector needs cv2.CascadeClassifier"):
        create_detector("haar")


@pytest.mark.skipif(not object_detection.shipped_cascades(),
                    reason=f"OpenCV {cv2.__version__} ships no Haar cascades here (OpenCV 5 moved them to contrib)")
@pytest.mark.parametrize("cascade, label", [(object_detection.DEFAULT_CASCADE, "face"), ("fullbody", "person"),
                                            ("haarcascade_frontalcatface.xml", "cat face"), ("upperbody", "upper body")])
def test_shipped_cascades_load_by_name_with_their_label(cascade, label):
    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip(f"OpenCV {cv2.__version__} has no CascadeClassifier")
    assert Path(find_cascade(cascade)).is_file()
    detector = create_detector("haar", cascade=cascade)
    assert detector.label == label
    assert detector.detect(np.full((120, 160, 3), 128, np.uint8)) == []    # runs; a grey picture has no face


def test_an_unknown_cascade_lists_the_shipped_ones(monkeypatch, tmp_path):
    monkeypatch.setattr(cv2, "CascadeClassifier", FakeCascade, raising=False)
    (tmp_path / "haarcascade_fullbody.xml").write_bytes(b"<cascade>")
    (tmp_path / "haarcascade_smile.xml").write_bytes(b"<cascade>")
    monkeypatch.setattr(object_detection, "cascade_directories", lambda: [str(tmp_path)])
    assert create_detector("haar", cascade="smile").label == "smile"
    with pytest.raises(DetectorError, match="'dog' is not in .*use one of fullbody, smile, or give the path"):
        create_detector("haar", cascade="dog")


@pytest.mark.parametrize("cascade, label", [("haarcascade_frontalface_alt2.xml", "face"),
                                            ("haarcascade_russian_plate_number.xml", "licence plate"),
                                            ("lbpcascade_frontalface.xml", "face"),
                                            ("/models/my_dog_detector.xml", "my dog detector")])
def test_cascade_labels_follow_the_cascade_name(cascade, label):
    assert object_detection.cascade_label(cascade) == label


def test_the_table_has_the_three_detectors():
    assert list(DETECTORS) == ["hog", "haar", "dnn"]


# --- the worker -----------------------------------------------------------------------------

class GatedDetector:
    """Blocks on a gate while detecting, so a test can pile frames up behind it."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.seen = []

    def detect(self, image):
        self.started.set()
        self.seen.append(int(image[0, 0]))
        assert self.gate.wait(WAIT)
        return [Detection("thing", 1.0, (0, 0, 1, 1))]


def frame(number):
    return np.full((2, 2), number, np.uint8)


def test_worker_runs_the_latest_frame_only_and_submit_never_waits():
    detector = GatedDetector()
    results = []
    done = threading.Event()

    def on_detections(submitted, detections):
        results.append((int(submitted[0, 0]), detections))
        if int(submitted[0, 0]) == 5:
            done.set()

    worker = DetectionWorker(detector, on_detections).start()
    try:
        worker.submit(frame(1))
        assert detector.started.wait(WAIT)
        for number in range(2, 6):          # the detector is stuck on frame 1: these must not queue
            worker.submit(frame(number))
        assert worker.skipped == 3 and worker.has_pending
        detector.gate.set()
        assert done.wait(WAIT)
    finally:
        worker.stop()
    assert detector.seen == [1, 5]
    assert [number for number, _ in results] == [1, 5]
    assert worker.runs == 2


def test_worker_takes_frame_hub_frames_and_passes_them_on():
    got = []
    done = threading.Event()
    detector = GatedDetector()
    detector.gate.set()
    worker = DetectionWorker(detector, lambda submitted, detections: (got.append(submitted), done.set())).start()
    hub_frame = Frame.build(7, 123.0, frame(9), b"jpeg")
    worker.submit(hub_frame)
    assert done.wait(WAIT)
    worker.stop()
    assert got == [hub_frame] and detector.seen == [9]


def test_worker_survives_a_failing_detector_and_stops():
    class Failing:
        calls = 0

        def detect(self, image):
            Failing.calls += 1
            if Failing.calls == 1:
                raise RuntimeError("the accelerator went away")
            return []

    done = threading.Event()
    worker = DetectionWorker(Failing(), lambda submitted, detections: done.set(), error_backoff_s=0.01).start()
    worker.submit(frame(1))
    assert wait_for(lambda: worker.errors == 1)
    worker.submit(frame(2))
    assert done.wait(WAIT), "the worker must go on after an error"
    assert worker.last_error == "the accelerator went away"
    worker.stop()
    assert not worker._thread.is_alive()


