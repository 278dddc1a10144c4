"""Events from per-frame results, and the pre-roll of encoded frames kept for the moments before one.

``EventTracker.update()`` takes each frame's motion result and detections and says when an event
starts, changes (a new label, motion that turns out to be an object) and ends (``quiet_s`` seconds
without motion or detections). It keeps no clock of its own: time is the frames' timestamps, so
the same frames always give the same events (only their ids are random).
"""
import collections
import dataclasses
import logging
import threading
import uuid

from camera_server.capture.camera import encode_jpeg

log = logging.getLogger(__name__)

STARTED, UPDATED, ENDED = "started", "updated", "ended"
MOTION, OBJECT = "motion", "object"


@dataclasses.dataclass(frozen=True)
class Event:
    id: str                       # random, unique across restarts; the catalogue has its own numeric ids
    kind: str                     # 'motion', or 'object' once something was detected
    start: float                  # Unix seconds of the first activity
    end: float | None             # None while the event lasts; then the time of the last activity
    last_seen: float              # the latest frame with motion or a detection
    peak_score: float = 0.0       # the highest motion score: fraction of the picture that moved
    peak_confidence: float = 0.0  # the best detection confidence, 0 without detections
    labels: frozenset = frozenset()

    def to_dict(self):
        return {"id": self.id, "kind": self.kind, "start": self.start, "end": self.end,
                "peak_score": round(self.peak_score, 4), "peak_confidence": round(self.peak_confidence, 4),
                "labels": sorted(self.labels)}


@dataclasses.dataclass(frozen=True)
class EventChange:
    change: str                   # 'started', 'updated' or 'ended'
    event: Event
    timestamp: float              # the frame time at which the change was noticed

    def to_dict(self):
        """The notification body: {"type": "started", "at": ..., "id": ..., "kind": ..., ...}."""
        return {"type": self.change, "at": self.timestamp, **self.event.to_dict()}


def _check_seconds(name, value, high):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if not 0.0 <= value <= high:
        raise ValueError(f"{name} must be between 0 and {high:g} seconds, not {value!r}")
    return value


class EventTracker:
    """Motion and detections in, event changes out. Not thread-safe: feed it from one thread."""

    def __init__(self, quiet_s=5.0, min_duration_s=0.0):
        self.quiet_s = _check_seconds("event quiet time", quiet_s, 3600)
        if self.quiet_s == 0:
            raise ValueError("event quiet time must be above 0 seconds")
        self.min_duration_s = _check_seconds("event minimum duration", min_duration_s, 3600)
        self._event = None            # the open Event, confirmed or not
        self._confirmed = False       # False while shorter than min_duration_s: nobody was told yet

    @property
    def current(self):
        """The event that is going on (and was reported as started), or None."""
        return self._event if self._confirmed else None

    def update(self, timestamp, motion=None, detections=()):
        """The EventChanges this frame causes: none, or a few of started/updated/ended."""
        changes = []
        event = self._event
        if event is not None and timestamp - event.last_seen >= self.quiet_s:
            changes += self._finish(timestamp)
        moving = motion is not None and motion.motion
        if not moving and not detections:
            return changes
        score = motion.score if moving else 0.0
        labels = frozenset(detection.label for detection in detections)
        confidence = max((detection.confidence for detection in detections), default=0.0)
        kind = OBJECT if detections else MOTION
        if self._event is None:
            self._event = Event(uuid.uuid4().hex, kind, timestamp, None, timestamp, score, confidence, labels)
            self._confirmed = False
        else:
            event = self._event
            self._event = dataclasses.replace(
                event, kind=OBJECT if detections else event.kind, last_seen=timestamp,
                peak_score=max(event.peak_score, score), peak_confidence=max(event.peak_confidence, confidence),
                labels=event.labels | labels)
            if self._confirmed and (self._event.kind != event.kind or self._event.labels != event.labels):
                changes.append(EventChange(UPDATED, self._event, timestamp))
        if not self._confirmed and timestamp - self._event.start >= self.min_duration_s:
            self._confirmed = True
            changes.append(EventChange(STARTED, self._event, timestamp))
        return changes

    def close(self, timestamp):
        """End the open event now (monitoring stopped, shutting down); its changes, if any."""
        if self._event is None:
            return []
        return self._finish(timestamp)

    def _finish(self, timestamp):
        event, confirmed = self._event, self._confirmed
        self._event, self._confirmed = None, False
        if not confirmed:
            log.debug("event %s lasted less than %.1f s: dropped", event.id, self.min_duration_s)
            return []
        return [EventChange(ENDED, dataclasses.replace(event, end=event.last_seen), timestamp)]


@dataclasses.dataclass(frozen=True)
class EncodedFrame:
    seq: int
    timestamp: float
    jpeg: bytes


class PreRoll:
    """The encoded frames of the last ``seconds``, bounded by count and bytes, for a recorder.

    Only the JPEG bytes are kept (not the decoded picture a capture.hub.Frame also holds, which is
    about 900 KB at 640x480). A frame whose JPEG shows the stream's overlays (motion boxes) is
    encoded again from its clean picture, so the pre-roll looks like the rest of the clip. The
    watch thread adds, a recorder drains with frames(): both may run in different threads.
    """

    def __init__(self, seconds, max_bytes=32 * 1024 * 1024, max_frames=900, jpeg_quality=80):
        self.seconds = _check_seconds("pre-roll", seconds, 300)
        if int(max_bytes) < 1 or int(max_frames) < 1:
            raise ValueError("the pre-roll needs room for at least one frame (max_bytes, max_frames)")
        self.max_bytes, self.max_frames = int(max_bytes), int(max_frames)
        self.jpeg_quality = jpeg_quality
        self._frames = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, frame):
        """Keep frame (anything with seq, timestamp and jpeg; and image, when ``overlaid`` is true);
        drop what falls out of the bounds."""
        if not self.seconds:
            return
        jpeg = encode_jpeg(frame.image, self.jpeg_quality) if getattr(frame, "overlaid", False) else frame.jpeg
        encoded = EncodedFrame(frame.seq, frame.timestamp, bytes(jpeg))
        with self._lock:
            self._frames.append(encoded)
            self._bytes += len(encoded.jpeg)
            oldest_kept = encoded.timestamp - self.seconds
            while self._frames and (len(self._frames) > self.max_frames or self._bytes > self.max_bytes
                                    or self._frames[0].timestamp < oldest_kept):
                self._bytes -= len(self._frames.popleft().jpeg)

    def frames(self):
        """All the frames held, oldest first, and empty the pre-roll."""
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
            self._bytes = 0
        return frames

    def clear(self):
        self.frames()

    def __len__(self):
        return len(self._frames)

    @property
    def nbytes(self):
        return self._bytes
