"""Object detection (seed 002) with OpenCV alone: HOG people, Haar cascades, or a DNN model file.

``create_detector(name, **options)`` builds one of DETECTORS and loads everything it needs at
once, so a missing or broken model is a clear DetectorError at start-up, not on the first frame.
``DetectionWorker`` runs a detector in its own thread on the newest submitted frame only, so the
camera thread never waits for it.

OpenCV 5 moved HOGDescriptor, CascadeClassifier and the Haar cascade files out of the main
package into opencv-contrib (module xobjdetect). With plain opencv-python(-headless) 5 only the
``dnn`` detector is available; ``hog`` and ``haar`` need OpenCV 4.x or the contrib package.
"""
import dataclasses
import inspect
import logging
import os
import re
import threading

import cv2
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


class DetectorError(RuntimeError):
    """A detector cannot be made: missing or broken model files, or an OpenCV without it."""


@dataclasses.dataclass(frozen=True)
class Detection:
    label: str
    confidence: float             # 0..1 (HOG's SVM margin, squashed into 0..1)
    box: tuple                    # (x, y, width, height) in the image's pixels

    def to_dict(self):
        return {"label": self.label, "confidence": round(self.confidence, 4), "box": list(self.box)}


def _opencv_class(name):
    """cv2.<name>, or its OpenCV 5 contrib home cv2.xobjdetect.<name>, or None."""
    found = getattr(cv2, name, None)
    if found is None:
        found = getattr(getattr(cv2, "xobjdetect", None), name, None)
    return found


def _missing_from_opencv(detector, name):
    return DetectorError(
        f"the {detector} detector needs cv2.{name}, which OpenCV {cv2.__version__} does not include "
        f"(OpenCV 5 moved HOG and Haar cascades to opencv-contrib): install opencv-python-headless<5 "
        f"or opencv-contrib-python-headless, or use the dnn detector")


def _readable_file(path, what):
    if not path:
        raise DetectorError(f"the {what} is not set")
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise DetectorError(f"the {what} {path!r} does not exist")
    if not os.access(path, os.R_OK):
        raise DetectorError(f"the {what} {path!r} cannot be read (permissions)")
    return path


def _fraction(name, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"detector {name} must be a number from 0 to 1, not {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"detector {name} must be a number from 0 to 1, not {value!r}")
    return number


def _to_gray(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def _to_bgr(image):
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


class HogPeopleDetector:
    """OpenCV's HOG + linear SVM people detector (Dalal-Triggs); needs no model file."""

    name = "hog"

    def __init__(self, min_confidence=0.5, win_stride=8, scale=1.05, max_width=640):
        hog_class = _opencv_class("HOGDescriptor")
        if hog_class is None:
            raise _missing_from_opencv("hog", "HOGDescriptor")
        people = getattr(hog_class, "getDefaultPeopleDetector", None) or cv2.HOGDescriptor_getDefaultPeopleDetector
        self._hog = hog_class()
        self._hog.setSVMDetector(people())
        self.min_confidence = _fraction("min_confidence", min_confidence)
        self.win_stride = (int(win_stride), int(win_stride))
        self.scale = float(scale)
        self.max_width = int(max_width)

    def detect(self, image):
        factor = min(1.0, self.max_width / image.shape[1])
        if factor < 1.0:
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        rects, weights = self._hog.detectMultiScale(_to_gray(image), winStride=self.win_stride,
                                                    padding=(8, 8), scale=self.scale)
        detections = []
        for (x, y, width, height), weight in zip(rects, np.ravel(weights)):
            confidence = float(1.0 - np.exp(-max(float(weight), 0.0)))    # SVM margin into 0..1
            if confidence >= self.min_confidence:
                box = tuple(int(round(value / factor)) for value in (x, y, width, height))
                detections.append(Detection("person", confidence, box))
        return detections


def cascade_directories():
    """Where OpenCV's Haar cascade files may be: the wheel's cv2.data, the cv2 package, Debian's."""
    directories = []
    data = getattr(cv2, "data", None)
    if getattr(data, "haarcascades", None):
        directories.append(data.haarcascades)
    package = os.path.dirname(getattr(cv2, "__file__", "") or "")
    if package:
        directories += [os.path.join(package, "data"), os.path.join(package, "data", "haarcascades")]
    directories += ["/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades"]
    return directories


def shipped_cascades():
    """The short names of the cascades this OpenCV ships (fullbody for haarcascade_fullbody.xml)."""
    names = set()
    for directory in cascade_directories():
        if os.path.isdir(directory):
            names.update(re.sub(r"^haarcascade_|\.xml$", "", name) for name in os.listdir(directory)
                         if name.startswith("haarcascade_") and name.endswith(".xml"))
    return sorted(names)


def find_cascade(name):
    """The path of a cascade: name itself when it is a path, else a file (or a short name such as
    fullbody for haarcascade_fullbody.xml) looked up in cascade_directories()."""
    if os.path.dirname(name):
        return _readable_file(name, "Haar cascade file")
    file_name = name if name.endswith(".xml") else f"haarcascade_{name}.xml"
    for directory in cascade_directories():
        path = os.path.join(directory, file_name)
        if os.path.isfile(path):
            return path
    shipped = shipped_cascades()
    choices = f"use one of {', '.join(shipped)}, or" if shipped else "this OpenCV does not ship it:"
    raise DetectorError(f"the Haar cascade {name!r} is not in {', '.join(cascade_directories())}; "
                        f"{choices} give the path of an .xml file (OpenCV {cv2.__version__})")


# What OpenCV's shipped cascades find, by a pattern of their names; other cascades: their name.
CASCADE_LABELS = ((r"frontalcatface", "cat face"), (r"face", "face"), (r"eye", "eye"), (r"fullbody", "person"),
                  (r"upperbody", "upper body"), (r"lowerbody", "lower body"), (r"smile", "smile"),
                  (r"plate", "licence plate"))


def cascade_label(cascade):
    """The label of a cascade's detections: face for haarcascade_frontalface_default.xml."""
    stem = re.sub(r"^(haar|lbp)cascade_|\.xml$", "", os.path.basename(str(cascade)))
    return next((label for pattern, label in CASCADE_LABELS if re.search(pattern, stem)),
                stem.replace("_", " ") or "object")


class HaarDetector:
    """A Haar (or LBP) cascade, by default OpenCV's frontal face cascade; the label follows the cascade."""

    name = "haar"

    def __init__(self, cascade=DEFAULT_CASCADE, label=None, scale_factor=1.1, min_neighbors=5, min_size=30):
        cascade_class = _opencv_class("CascadeClassifier")
        if cascade_class is None:
            raise _missing_from_opencv("haar", "CascadeClassifier")
        path = find_cascade(cascade)
        try:
            self._cascade = cascade_class(path)
        except cv2.error as error:
            raise DetectorError(f"the Haar cascade {path!r} cannot be loaded: {error}") from error
        if self._cascade.empty():
            raise DetectorError(f"the Haar cascade {path!r} cannot be loaded: not a cascade XML file")
        self.label = label or cascade_label(cascade)
        self.scale_factor, self.min_neighbors = float(scale_factor), int(min_neighbors)
        self.min_size = (int(min_size), int(min_size))

    def detect(self, image):
        gray = cv2.equalizeHist(_to_gray(image))
        rects = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor,
                                               minNeighbors=self.min_neighbors, minSize=self.min_size)
        return [Detection(self.label, 1.0, tuple(int(value) for value in rect)) for rect in rects]


def load_labels(path):
    """Class labels by class id from a text file.

    Three forms: one label per line (line N, from 0, is class N: a list for a model whose class 0
    is the background starts with "background"); lines "ID label" or "ID: label"; or a TensorFlow
    label map (mscoco_label_map.pbtxt: item { id: 1 display_name: "person" }) as seed 002 used.
    """
    path = _readable_file(path, "labels file")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise DetectorError(f"the labels file {path!r} cannot be read: {error}") from error
    items = re.findall(r"item\s*\{(.*?)\}", text, re.S)
    labels = dict(filter(None, map(_label_map_item, items))) if items else _label_lines(text.splitlines())
    if not labels:
        raise DetectorError(f"the labels file {path!r} has no labels")
    return labels


def _label_map_item(item):
    number = re.search(r"\bid\s*:\s*(\d+)", item)
    name = re.search(r'\bdisplay_name\s*:\s*"([^"]*)"', item) or re.search(r'\bname\s*:\s*"([^"]*)"', item)
    return (int(number.group(1)), name.group(1)) if number and name else None


def _label_lines(lines):
    lines = [line.strip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    labels = {}
    for index, line in enumerate(lines):
        match = re.fullmatch(r"(\d+)\s*[:\s]\s*(.+)", line)
        if match:
            labels[int(match.group(1))] = match.group(2).strip()
        elif line:
            labels[index] = line
    return labels


# Input defaults by model format: TensorFlow SSD graphs (seed 002) do their own scaling; YOLO-style
# ONNX exports want RGB scaled to 0..1 at 640x640.
DNN_PRESETS = {
    "tensorflow": {"input_size": 300, "scale": 1.0, "mean": 0.0},
    "onnx": {"input_size": 640, "scale": 1 / 255, "mean": 0.0},
    "other": {"input_size": 300, "scale": 1.0, "mean": 0.0},
}


class DnnDetector:
    """A cv2.dnn model: SSD-style output (N x 7 rows) or YOLO-style (boxes and class scores)."""

    name = "dnn"

    def __init__(self, model, config=None, labels=None, min_confidence=0.5, input_size=None, scale=None,
                 mean=None, swap_rb=True, nms_threshold=0.45, output="auto"):
        model = _readable_file(model, "detector model file")
        config = _readable_file(config, "detector config file") if config else ""
        self.labels = load_labels(labels) if labels else {}
        if output not in ("auto", "ssd", "yolo"):
            raise DetectorError(f"the detector output format must be auto, ssd or yolo, not {output!r}")
        self.output = output
        preset = DNN_PRESETS["tensorflow" if model.endswith(".pb") else
                             "onnx" if model.endswith(".onnx") else "other"]
        size = preset["input_size"] if input_size is None else input_size
        self.input_size = (int(size), int(size)) if np.isscalar(size) else tuple(int(v) for v in size)
        self.scale = float(preset["scale"] if scale is None else scale)
        self.mean = preset["mean"] if mean is None else mean
        self.swap_rb = bool(swap_rb)
        self.min_confidence = _fraction("min_confidence", min_confidence)
        self.nms_threshold = _fraction("nms_threshold", nms_threshold)
        try:
            self._net = cv2.dnn.readNet(model, config)
        except cv2.error as error:
            raise DetectorError(f"OpenCV cannot load the model {model!r}: {_first_line(error)}") from error
        if self._net.empty():
            raise DetectorError(f"OpenCV cannot load the model {model!r}: the network is empty")
        self._lock = threading.Lock()       # one cv2.dnn.Net must not run in two threads at once
        self._check_runs(model)

    def _check_runs(self, model):
        """Run the model once on a gray picture, so a model OpenCV cannot execute fails at start-up."""
        try:
            self.detect(np.full((self.input_size[1], self.input_size[0], 3), 128, np.uint8))
        except (cv2.error, ValueError) as error:
            raise DetectorError(f"the model {model!r} loads but does not run in OpenCV "
                                f"{cv2.__version__}: {_first_line(error)}") from error

    def label_for(self, class_id):
        return self.labels.get(int(class_id), f"class {int(class_id)}")

    def detect(self, image):
        image = _to_bgr(image)
        blob = cv2.dnn.blobFromImage(image, self.scale, self.input_size, self.mean, self.swap_rb, crop=False)
        with self._lock:
            self._net.setInput(blob)
            output = self._net.forward()
        output = np.asarray(output, np.float32)
        if self.output == "ssd" or (self.output == "auto" and output.shape[-1] == 7):
            return self._ssd(output, image.shape)
        return self._yolo(output, image.shape)

    def _ssd(self, output, shape):
        """Rows of [image, class, confidence, x1, y1, x2, y2] with corners in fractions of the picture."""
        height, width = shape[:2]
        detections = []
        for _, class_id, confidence, x1, y1, x2, y2 in output.reshape(-1, 7):
            if confidence < self.min_confidence:
                continue
            left, top = int(np.clip(x1, 0, 1) * width), int(np.clip(y1, 0, 1) * height)
            right, bottom = int(np.clip(x2, 0, 1) * width), int(np.clip(y2, 0, 1) * height)
            if right > left and bottom > top:
                detections.append(Detection(self.label_for(class_id), float(confidence),
                                            (left, top, right - left, bottom - top)))
        return detections

    def _yolo(self, output, shape):
        """YOLOv8 (1, 4 + classes, N) or YOLOv5 (1, N, 5 + classes): centre boxes in input pixels."""
        rows = output.reshape(output.shape[-2], output.shape[-1]) if output.ndim >= 2 else output[None]
        classes = max(self.labels) + 1 if self.labels else None
        widths = (classes + 4, classes + 5) if classes else ()
        if rows.shape[1] not in widths and (rows.shape[0] in widths or rows.shape[0] < rows.shape[1]):
            rows = rows.T                                        # v8 puts the boxes in columns
        if rows.shape[1] < 5:
            raise ValueError(f"cannot read detections from an output of shape {output.shape}")
        with_objectness = classes is not None and rows.shape[1] == classes + 5
        scores = rows[:, 5:] * rows[:, 4:5] if with_objectness else rows[:, 4:]
        class_ids = scores.argmax(axis=1)
        confidences = scores[np.arange(len(rows)), class_ids]
        keep = confidences >= self.min_confidence
        if not keep.any():
            return []
        scale_x, scale_y = shape[1] / self.input_size[0], shape[0] / self.input_size[1]
        centre_x, centre_y, box_w, box_h = (rows[keep, :4] * (scale_x, scale_y, scale_x, scale_y)).T
        boxes = np.stack([centre_x - box_w / 2, centre_y - box_h / 2, box_w, box_h], axis=1)
        confidences, class_ids = confidences[keep], class_ids[keep]
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), confidences.tolist(), self.min_confidence, self.nms_threshold)
        detections = []
        for index in np.ravel(chosen):
            x, y, box_width, box_height = boxes[index]
            left, top = max(int(x), 0), max(int(y), 0)
            right, bottom = min(int(x + box_width), shape[1]), min(int(y + box_height), shape[0])
            if right > left and bottom > top:
                detections.append(Detection(self.label_for(class_ids[index]), float(confidences[index]),
                                            (left, top, right - left, bottom - top)))
        return detections


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


DETECTORS = {"hog": HogPeopleDetector, "haar": HaarDetector, "dnn": DnnDetector}


def create_detector(name, **options):
    """A detector by name (hog, haar, dnn) with its options; ValueError for unknown names or options."""
    key = str(name or "").strip().lower()
    if key not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}: use one of {', '.join(DETECTORS)}")
    detector_class = DETECTORS[key]
    accepted = set(inspect.signature(detector_class).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"the {key} detector has no option {', '.join(unknown)}: "
                         f"it takes {', '.join(sorted(accepted))}")
    return detector_class(**options)


class DetectionWorker:
    """Runs detector.detect on the newest submitted frame in its own daemon thread.

    submit() replaces any frame still waiting (it never queues and never blocks); each result goes
    to on_detections(frame, detections) in the worker's thread. start() starts the thread, stop()
    ends it and joins.
    """

    def __init__(self, detector, on_detections, name="detection", error_backoff_s=1.0):
        self.detector = detector
        self.on_detections = on_detections
        self.error_backoff_s = error_backoff_s
        self._lock = threading.Lock()
        self._pending = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.runs = 0
        self.skipped = 0              # frames replaced before the detector got to them
        self.errors = 0
        self.last_error = None

    def start(self):
        self._thread.start()
        return self

    def submit(self, frame):
        """Hand over the newest frame (a capture.hub.Frame or a numpy image)."""
        with self._lock:
            if self._pending is not None:
                self.skipped += 1
            self._pending = frame
        self._wake.set()

    @property
    def has_pending(self):
        return self._pending is not None

    def stop(self, timeout=5.0):
        self._stop.set()
        self._wake.set()
        self.join(timeout)

    def join(self, timeout=None):
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _take(self):
        with self._lock:
            frame, self._pending = self._pending, None
            self._wake.clear()
        return frame

    def _run(self):
        while not self._stop.is_set():
            self._wake.wait()
            frame = self._take()
            if frame is None or self._stop.is_set():
                continue
            try:
                detections = self.detector.detect(getattr(frame, "image", frame))
                self.runs += 1
                self.on_detections(frame, detections)
            except Exception as error:  # the thread's top level: log, count, back off, go on
                self.errors += 1
                self.last_error = str(error) or type(error).__name__
                log.exception("object detection failed")
                self._stop.wait(self.error_backoff_s)
