"""Motion detection in the style of Frigate: a running-average background on a small gray copy.

Each frame is turned gray, shrunk by a whole factor to about ``height`` pixels high (480 -> 96,
720 -> 102, 1080 -> 98: whole factors take OpenCV's fast path) and blurred; it is compared with
a background that learns at ``alpha`` per frame (cv2.accumulateWeighted). Pixels that differ by
more than ``threshold`` are dilated into blobs; blobs of at least ``min_area`` (a fraction of the
picture) are motion, reported as boxes in the full image's pixels. When more than
``lightswitch_fraction`` of the picture changes at once (a light switched on, a camera going into
IR mode) the background is reset to the new picture instead of reporting motion.

Masks say where to ignore changes: shapes (rectangles and polygons, in pixels or fractions) or
black and white mask images (white = ignore). The text format for a config value::

    x1,y1,x2,y2 ; x1,y1,x2,y2,x3,y3,...

Shapes are separated by ``;``. Two points are the opposite corners of a rectangle, three or more
a polygon. Whole numbers are pixels of the full image; numbers with a decimal point are fractions
of its width and height (0.0 to 1.0): ``0.75,0.0,1.0,0.25`` is the top right corner. One shape
uses one kind of number.
"""
import dataclasses
import logging
import os
import threading

import cv2
import numpy as np

log = logging.getLogger(__name__)

MAX_GAIN = 1.25     # a bigger jump of the whole picture's brightness is a light switch: recalibrate


@dataclasses.dataclass(frozen=True)
class MotionResult:
    motion: bool
    score: float                  # fraction of the watched (unmasked) picture that changed, 0..1
    boxes: tuple = ()             # (x, y, width, height) in the full image's pixels
    recalibrated: bool = False    # the background was reset (a light switch), motion was not reported

    def to_dict(self):
        return {"motion": self.motion, "score": round(self.score, 4),
                "boxes": [list(box) for box in self.boxes], "recalibrated": self.recalibrated}


@dataclasses.dataclass(frozen=True)
class MaskShape:
    """A region to ignore: a polygon (a rectangle is four points) in pixels or in fractions."""
    points: tuple                 # ((x, y), ...)
    relative: bool = False        # True: fractions of the width and height

    def pixel_points(self, width, height):
        points = np.array(self.points, np.float64)
        if self.relative:
            points = points * (width, height)
        return np.round(points).astype(np.int32)


def rectangle(x1, y1, x2, y2, relative=False):
    """A rectangular MaskShape from two opposite corners."""
    return MaskShape(((x1, y1), (x2, y1), (x2, y2), (x1, y2)), relative)


def parse_masks(text):
    """MaskShapes from the config text format (see the module docstring); '' gives none."""
    shapes = []
    for index, part in enumerate((text or "").split(";"), start=1):
        part = part.strip()
        if part:
            shapes.append(_parse_shape(part, index))
    return shapes


def _parse_shape(part, index):
    where = f"motion mask {index} ({part!r})"
    fields = [field.strip() for field in part.split(",")]
    try:
        numbers = [float(field) for field in fields]
    except ValueError:
        raise ValueError(f"{where}: use numbers separated by commas, like 10,20,200,120") from None
    if len(numbers) % 2 or len(numbers) < 4:
        raise ValueError(f"{where}: needs x,y pairs: two corners of a rectangle or three or more points")
    fractions = ["." in field for field in fields]
    if any(fractions) and not all(fractions):
        raise ValueError(f"{where}: mixes pixels (whole numbers) and fractions (with a decimal point)")
    relative = all(fractions)
    if any(not np.isfinite(value) or value < 0 for value in numbers):
        raise ValueError(f"{where}: coordinates cannot be negative")
    if relative and any(value > 1 for value in numbers):
        raise ValueError(f"{where}: fractions of the picture lie between 0.0 and 1.0")
    if not relative:
        numbers = [int(value) for value in numbers]
    points = tuple(zip(numbers[0::2], numbers[1::2]))
    if len(points) == 2:
        return rectangle(*points[0], *points[1], relative=relative)
    return MaskShape(points, relative)


def load_mask_file(path):
    """A mask image (white = ignore) as a uint8 array with 255 where motion is ignored."""
    if not os.path.isfile(path):
        raise ValueError(f"motion mask file {path!r} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"motion mask file {path!r} is not an image OpenCV can read (use PNG or BMP)")
    return np.where(image >= 128, 255, 0).astype(np.uint8)


def draw_boxes(image, boxes, labels=None, color=(0, 255, 0), thickness=2):
    """Draw boxes (x, y, w, h) and optional labels IN PLACE on image and return it.

    Draw before the frame is encoded; pass a copy if the original must stay clean.
    """
    if image.ndim == 2:
        color = 255
    scale = max(image.shape[1] / 640, 0.4)
    for index, (x, y, width, height) in enumerate(boxes):
        cv2.rectangle(image, (int(x), int(y)), (int(x + width - 1), int(y + height - 1)), color, thickness)
        if labels and index < len(labels) and labels[index]:
            cv2.putText(image, str(labels[index]), (int(x) + 2, max(int(y) - 5, int(14 * scale))),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, color, 1, cv2.LINE_AA)
    return image


def _check_range(name, value, low, high, low_open=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"motion {name} must be a number, not {value!r}") from None
    if not (low < value if low_open else low <= value) or not value <= high:
        bound = "above" if low_open else "at least"
        raise ValueError(f"motion {name} must be {bound} {low} and at most {high}, not {value!r}")
    return value


class MotionDetector:
    """Per-frame motion against a learned background; process() runs on the camera thread."""

    def __init__(self, min_area=0.001, threshold=25, alpha=0.05, height=100, blur=5, dilate=2,
                 lightswitch_fraction=0.5, exposure_compensation=True, masks=()):
        self.min_area = _check_range("min_area", min_area, 0, 1, low_open=True)
        self.threshold = int(_check_range("threshold", threshold, 1, 254))
        self.alpha = _check_range("alpha", alpha, 0, 1, low_open=True)
        self.height = int(_check_range("height", height, 16, 1080))
        blur = int(_check_range("blur", blur, 0, 31))
        if blur and blur % 2 == 0:
            raise ValueError(f"motion blur must be 0 (off) or an odd kernel size, not {blur}")
        self.blur = blur
        self.dilate = int(_check_range("dilate", dilate, 0, 10))
        self.lightswitch_fraction = _check_range("lightswitch_fraction", lightswitch_fraction, 0, 1,
                                                 low_open=True)
        self.exposure_compensation = bool(exposure_compensation)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._masks = self._check_masks(masks)
        self._geometry = None     # see _geometry_for
        self._background = None
        self._lock = threading.Lock()     # set_masks and reset come from other threads than process
        self.last_result = None
        self.last_motion_at = None

    @staticmethod
    def _check_masks(masks):
        masks = tuple(masks or ())
        for mask in masks:
            if not isinstance(mask, (MaskShape, np.ndarray)):
                raise ValueError(f"a motion mask is a MaskShape or a mask image, not {type(mask).__name__}")
        return masks

    def set_masks(self, masks):
        """Replace the masks and start a new background (the old one has the old masks in it)."""
        masks = self._check_masks(masks)
        with self._lock:
            self._masks, self._geometry, self._background = masks, None, None

    def reset(self):
        """Forget the background; the next frame starts a new one."""
        with self._lock:
            self._background = None

    def status(self):
        """The latest result and when motion was last seen, for /status."""
        result = self.last_result
        return {**(result.to_dict() if result else MotionResult(False, 0.0).to_dict()),
                "last_motion_at": self.last_motion_at}

    def process(self, image, timestamp=None):
        """The MotionResult of one frame (BGR or gray); the first frame only starts the background."""
        with self._lock:
            result = self._detect(image)
        self.last_result = result
        if result.motion:
            self.last_motion_at = timestamp
        return result

    def _detect(self, image):
        geometry = self._geometry_for(image)
        _, factor, _, ignore, watched = geometry
        small = self._prepare(image, geometry)
        if self._background is None or self._background.shape != small.shape:
            self._background = small.astype(np.float32)
            return MotionResult(False, 0.0)
        gain = self._exposure_gain(small, ignore) if self.exposure_compensation else 1.0
        reference = cv2.convertScaleAbs(self._background, alpha=gain)
        changed = cv2.threshold(cv2.absdiff(small, reference), self.threshold, 255, cv2.THRESH_BINARY)[1]
        if ignore is not None:
            changed[ignore] = 0
        score = cv2.countNonZero(changed) / watched if watched else 0.0
        if score > self.lightswitch_fraction or not 1 / MAX_GAIN <= gain <= MAX_GAIN:
            log.info("motion: the whole picture changed (%.0f %% of it, brightness x%.2f): "
                     "background recalibrated", score * 100, gain)
            self._background = small.astype(np.float32)
            return MotionResult(False, score, recalibrated=True)
        cv2.accumulateWeighted(small, self._background, self.alpha)
        boxes = self._boxes(changed, image.shape, factor) if score else ()
        return MotionResult(bool(boxes), score, boxes)

    def _exposure_gain(self, small, ignore):
        """How much brighter the whole picture is than the background: the median ratio.

        The median ignores whatever moves in less than half of the picture, so a gradual change of
        exposure or daylight is followed without reporting motion all over the picture.
        """
        frame = small[::2, ::2].astype(np.float32)
        background = self._background[::2, ::2]
        usable = background > 8
        if ignore is not None:
            usable &= ~ignore[::2, ::2]
        if np.count_nonzero(usable) < 16:
            return 1.0
        gain = float(np.median(frame[usable] / background[usable]))
        return 1.0 if abs(gain - 1.0) < 0.01 else gain

    def _prepare(self, image, geometry):
        """Gray, shrunk by a whole factor (OpenCV's fast INTER_AREA path), masked, blurred."""
        _, factor, (small_width, small_height), ignore, _ = geometry
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        gray = gray[: small_height * factor, : small_width * factor]     # a view: the last rows may go
        small = cv2.resize(gray, (small_width, small_height), interpolation=cv2.INTER_AREA)
        if ignore is not None:
            small[ignore] = 0     # a constant: masked changes cannot leak out through the blur
        if self.blur:
            small = cv2.GaussianBlur(small, (self.blur, self.blur), 0)
        return small

    def _boxes(self, changed, full_shape, factor):
        if self.dilate:
            changed = cv2.dilate(changed, self._kernel, iterations=self.dilate)
        contours = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
        min_pixels = self.min_area * changed.size
        boxes = []
        for contour in contours:
            if cv2.contourArea(contour) < min_pixels:
                continue
            x, y, width, height = cv2.boundingRect(contour)
            width = min((x + width) * factor, full_shape[1]) - x * factor
            height = min((y + height) * factor, full_shape[0]) - y * factor
            boxes.append((x * factor, y * factor, width, height))
        return tuple(sorted(boxes))

    def _geometry_for(self, image):
        """(full size, shrink factor, small size, ignored small pixels or None, watched pixel count)."""
        geometry = self._geometry
        if geometry is not None and geometry[0] == image.shape[:2]:
            return geometry
        full_height, full_width = image.shape[:2]
        factor = max(1, round(full_height / self.height))
        small_width, small_height = max(1, full_width // factor), max(1, full_height // factor)
        ignore, watched = None, small_width * small_height
        if self._masks:
            full_mask = np.zeros((full_height, full_width), np.uint8)
            for mask in self._masks:
                if isinstance(mask, MaskShape):
                    cv2.fillPoly(full_mask, [mask.pixel_points(full_width, full_height)], 255)
                else:
                    image_mask = ((mask.max(axis=2) if mask.ndim == 3 else mask) > 0).astype(np.uint8)
                    sized = cv2.resize(image_mask, (full_width, full_height), interpolation=cv2.INTER_NEAREST)
                    full_mask[sized > 0] = 255
            # A small pixel that covers any ignored full pixel is ignored.
            full_mask = full_mask[: small_height * factor, : small_width * factor]
            ignore = cv2.resize(full_mask, (small_width, small_height), interpolation=cv2.INTER_AREA) > 0
            watched = int(np.count_nonzero(~ignore))
            if not watched:
                log.warning("motion: the masks cover the whole picture; no motion can be seen")
        geometry = (image.shape[:2], factor, (small_width, small_height), ignore, watched)
        self._geometry = geometry
        return geometry
