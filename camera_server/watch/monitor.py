"""Scene-change monitor (seed 003): compare each frame with a baseline snapshot by mean squared error.

The score is the mean over all pixels and channels of the squared difference, so it lies between 0
(identical) and 65025 (255 squared: black against white) whatever the size of the picture and
whether it is colour or gray. The seed summed the three colour channels instead; its threshold of
300 is kept as the default, which makes this monitor a little less eager on colour frames, and the
same threshold now means the same thing when the camera switches to grayscale.

Changes are reported at most one per cooldown and at most ``max_changes_per_hour`` in each hour
counted from the first change after the baseline, so a scene that changed for good (a chair moved)
cannot fill the disk with pictures; a new baseline starts the count again.
"""
import dataclasses
import logging
import threading

import cv2

log = logging.getLogger(__name__)

MAX_SCORE = 255.0 ** 2
MIN_THRESHOLD = 0.01        # the same lowest value as config.txt's monitor_threshold and the watch page
MAX_COOLDOWN_S = 3600.0
MAX_CHANGES_PER_HOUR = 100000
HOUR_S = 3600.0


class NoBaseline(RuntimeError):
    """compare() or check() before set_baseline()."""


@dataclasses.dataclass(frozen=True)
class ChangeResult:
    score: float
    timestamp: float


def validate_threshold(threshold):
    """The threshold as a float; ValueError unless 0.01 <= threshold <= 65025."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"the change threshold must be a number, not {threshold!r}") from None
    if not MIN_THRESHOLD <= value <= MAX_SCORE:
        raise ValueError(f"the change threshold must be at least {MIN_THRESHOLD:g} and at most {MAX_SCORE:.0f} "
                         f"(mean squared difference per pixel), not {threshold!r}")
    return value


def validate_cooldown(cooldown_s):
    try:
        value = float(cooldown_s)
    except (TypeError, ValueError):
        raise ValueError(f"the change cooldown must be a number of seconds, not {cooldown_s!r}") from None
    if not 0.0 <= value <= MAX_COOLDOWN_S:
        raise ValueError(f"the change cooldown must be between 0 and {MAX_COOLDOWN_S:.0f} s, not {cooldown_s!r}")
    return value


def validate_max_changes(max_changes_per_hour):
    try:
        value = int(max_changes_per_hour)
    except (TypeError, ValueError):
        raise ValueError(f"the most changes per hour must be a whole number, not {max_changes_per_hour!r}") from None
    if not 1 <= value <= MAX_CHANGES_PER_HOUR:
        raise ValueError(f"the most changes per hour must be between 1 and {MAX_CHANGES_PER_HOUR}, "
                         f"not {max_changes_per_hour!r}")
    return value


def mean_squared_error(first, second):
    """MSE per pixel and channel of two uint8 images of the same shape, accumulated in double.

    cv2.norm computes the squared differences in a wide type, so 10 - 250 counts as 240 squared
    (numpy's uint8 subtraction would wrap around to 16) and it is several times faster than
    converting both images to float first.
    """
    return cv2.norm(first, second, cv2.NORM_L2SQR) / first.size


def _to_gray(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def match_baseline(baseline, image):
    """The baseline brought to the frame's size and channels, and the frame (gray if either is)."""
    if baseline.ndim != image.ndim or (image.ndim == 3 and baseline.shape[2] != image.shape[2]):
        baseline, image = _to_gray(baseline), _to_gray(image)
    if baseline.shape[:2] != image.shape[:2]:
        height, width = image.shape[:2]
        baseline = cv2.resize(baseline, (width, height), interpolation=cv2.INTER_AREA)
    return baseline, image


class SceneMonitor:
    """Scores frames against a baseline; check() reports changes over the threshold, one per cooldown
    and at most max_changes_per_hour in each hour."""

    def __init__(self, threshold=300.0, cooldown_s=2.0, max_changes_per_hour=120):
        self._threshold = validate_threshold(threshold)
        self._cooldown_s = validate_cooldown(cooldown_s)
        self.max_changes_per_hour = validate_max_changes(max_changes_per_hour)
        self._lock = threading.Lock()
        self._baseline = None
        self._matched = None          # (frame shape, baseline converted to that shape)
        self._last_change = None
        self._hour_started = None     # the first change of the hour being counted
        self._changes_this_hour = 0
        self.last_score = None

    @property
    def threshold(self):
        return self._threshold

    @threshold.setter
    def threshold(self, value):
        self._threshold = validate_threshold(value)

    @property
    def has_baseline(self):
        return self._baseline is not None

    def set_baseline(self, image):
        """Take a copy of image as the picture of the empty scene; starts a new cooldown window and
        a new count of the hour's changes."""
        if image is None or image.size == 0:
            raise ValueError("the baseline needs a picture")
        with self._lock:
            self._baseline = image.copy()
            self._matched = None
            self._last_change = None
            self._hour_started, self._changes_this_hour = None, 0
            self.last_score = None

    def compare(self, image):
        """Mean squared difference per pixel between image and the baseline (0 to 65025)."""
        with self._lock:
            if self._baseline is None:
                raise NoBaseline("no baseline yet: take a baseline snapshot first")
            baseline = self._baseline
            if baseline.shape != image.shape:
                matched = self._matched
                if matched is None or matched[0] != image.shape:
                    matched = (image.shape, match_baseline(baseline, image)[0])
                    self._matched = matched
                baseline = matched[1]
        if baseline.shape != image.shape:
            image = _to_gray(image)
        score = mean_squared_error(baseline, image)
        self.last_score = score
        return score

    def check(self, image, timestamp):
        """A ChangeResult when the score is over the threshold, the cooldown has passed and the hour's
        changes are below the limit; else None."""
        score = self.compare(image)
        if score <= self._threshold:
            return None
        with self._lock:
            last = self._last_change
            # A clock that went backwards (timestamp before the last change) does not hold changes back.
            if last is not None and 0.0 <= timestamp - last < self._cooldown_s:
                return None
            if self._hour_is_full(timestamp):
                return None
            self._last_change = timestamp
            self._count_change(timestamp)
        return ChangeResult(score=score, timestamp=timestamp)

    def held_until(self, now):
        """While the hour counted at ``now`` (Unix seconds) has had max_changes_per_hour changes: when it
        ends, and changes are reported again (unless a new baseline comes first). Else None."""
        with self._lock:
            return self._hour_started + HOUR_S if self._hour_is_full(now) else None

    def _in_counted_hour(self, now):
        return self._hour_started is not None and 0.0 <= now - self._hour_started < HOUR_S

    def _hour_is_full(self, now):
        return self._in_counted_hour(now) and self._changes_this_hour >= self.max_changes_per_hour

    def _count_change(self, now):
        """Count a change (called with the lock held); the first after an hour starts a new hour."""
        if not self._in_counted_hour(now):
            self._hour_started, self._changes_this_hour = now, 0
        self._changes_this_hour += 1
        if self._changes_this_hour == self.max_changes_per_hour:
            log.warning("scene monitor: %d changes saved this hour (monitor_max_changes_per_hour): no more until "
                        "a new baseline is taken or the hour has passed", self.max_changes_per_hour)
