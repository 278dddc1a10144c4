"""Live H.264 of one camera: one encoder shared by every viewer, as fragmented MP4.

While a camera has H.264 consumers, one native thread encodes its frames once (``LiveMp4Writer``)
and keeps the fragments from the newest keyframe on (bounded in bytes and count). Each consumer
reads with a ``LiveFeed``: the initialization segment, then the fragments in order from the newest
keyframe. A consumer that falls behind skips to the next keyframe instead of queueing, so nobody's
lag grows and nothing is held per consumer; a consumer holds no copy, every fragment's bytes are
built once. Consumers are native threads or greenlets: they wait through a FrameHub, which the
encoder thread wakes both ways.

The encoder stops, giving the camera back, when its last consumer leaves. An encoder error ends
the run; after a back-off a new run starts, with a new initialization segment that every feed
gets before its next fragment.
"""
import collections
import contextlib
import dataclasses
import logging
import threading
import time

from camera_server.capture.hub import FrameHub
from camera_server.media.video_file import EncoderQuality, VideoFileError, pick_encoder
from camera_server.stream.fmp4 import LiveMp4Writer

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 0.25, 8.0      # seconds before an encoder that failed starts again
FRAME_WAIT_S = 1.0          # how often the encoder checks for consumers while the camera gives nothing
MAX_BUFFER_BYTES = 4 * 1024 * 1024
MAX_BUFFER_FRAGMENTS = 600                  # 10 s at 60 fps: one group of pictures at the longest interval
KEPT_BEFORE_KEYFRAME = 15   # fragments before the newest keyframe, so a consumer a little behind goes on
MAX_LAG_S = 1.0             # a consumer further behind the newest fragment skips to the next keyframe


class EncoderUnavailable(RuntimeError):
    """No H.264 encoder can start for this camera; the message says why. The JPEG stream still works."""


class StreamChanged(RuntimeError):
    """The encoder started again with another initialization segment (a new picture size), which one
    MP4 stream (a file, an HTTP body) cannot take: its reader ends the stream."""


@dataclasses.dataclass(frozen=True)
class InitSegment:
    """The ftyp and moov of one encoder run: what a player needs before that run's fragments."""
    run: int                # which encoder run; a new one after a restart or a change of picture size
    seq: int                # taken from the same counter as the fragments
    data: bytes
    mime: str               # for MediaSource.isTypeSupported / addSourceBuffer: video/mp4; codecs="avc1..."
    width: int
    height: int
    encoder: str
    is_init = True


@dataclasses.dataclass(frozen=True)
class Fragment:
    """One frame's moof and mdat."""
    run: int
    seq: int                # increases by one per fragment within a run, and across runs
    keyframe: bool          # it begins with a keyframe: a player may start here
    timestamp: float        # the frame's capture time, Unix seconds
    data: bytes
    is_init = False


class LiveH264:
    """The shared live encoder of one camera. ``join()`` gives a LiveFeed; ``stop()`` at shutdown.

    Where its settings equal a recording's (the encoder, crf and bit rate cap, and a keyframe every
    second: the defaults apart from the cap), a recording could write these same packets instead of
    encoding again; the recorder does not yet.
    """

    def __init__(self, camera, encoders=("libx264",), quality=EncoderQuality(), profile="main",
                 keyframe_interval_s=1.0, max_buffer_bytes=MAX_BUFFER_BYTES,
                 max_buffer_fragments=MAX_BUFFER_FRAGMENTS, max_lag_s=MAX_LAG_S):
        self.camera = camera
        self.encoders, self.quality, self.profile = tuple(encoders), quality, profile
        self.keyframe_interval_s = keyframe_interval_s
        self.max_buffer_bytes, self.max_buffer_fragments = max_buffer_bytes, max_buffer_fragments
        self.max_lag_s = max_lag_s
        self.restarts = 0               # encoder errors that ended a run
        self._hub = FrameHub()          # each new segment and fragment is published here, to wake the feeds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._consumers = 0
        self._checked = False           # an encoder opened once: a camera's encoders do not go away
        self._origin = None             # capture time of the media timeline's 0, kept across runs
        self._seq = self._runs = 0
        self._init = None               # the current run's InitSegment; None while no run is on
        self._writer = None             # the LiveMp4Writer of that run
        self._buffer = collections.deque()
        self._buffered_bytes = 0
        self._keyframe_seq = None       # the newest keyframe in the buffer
        self._last_error = None

    # -- consumers -------------------------------------------------------------------------
    def join(self):
        """A LiveFeed of this camera's H.264, starting the encoder if it is not running;
        EncoderUnavailable when no encoder can start."""
        self._check_encoder()
        with self._lock:
            self._consumers += 1
            if self._thread is None and not self.closed:
                self._thread = threading.Thread(target=self._encode, name=f"h264-{self.camera.name}", daemon=True)
                self._thread.start()
        return LiveFeed(self)

    def _leave(self):
        with self._lock:
            self._consumers -= 1
            last = self._consumers == 0
        if last:
            self.camera.hub.wake()      # the encoder's wait for a frame checks at once that nobody is left

    def _check_encoder(self):
        if self._checked:
            return
        width, height = _even(self.camera.width), _even(self.camera.height)
        try:
            pick_encoder(self.encoders, width, height, self.quality, self.profile)
        except VideoFileError as error:
            raise EncoderUnavailable(f"camera {self.camera.name} has no live H.264: {error}") from error
        self._checked = True

    @property
    def consumers(self):
        return self._consumers

    @property
    def running(self):
        return self._thread is not None

    @property
    def closed(self):
        """Stopped for good (shutdown, or its camera was stopped): feeds end."""
        return self._hub.closed or self.camera.hub.closed

    @property
    def mime(self):
        """The MSE type of the current run (``video/mp4; codecs="avc1.4D401E"``); None while none runs."""
        init = self._init
        return init.mime if init is not None else None

    def status(self):
        """What /status shows: whether it runs, for how many consumers (H.264 viewers, a recording),
        with which encoder and type, and how often an encoder error started it again."""
        init = self._init
        return {"running": self.running, "consumers": self._consumers, "encoder": init.encoder if init else None,
                "mime": init.mime if init else None, "restarts": self.restarts}

    @property
    def buffered_bytes(self):
        return self._buffered_bytes

    @property
    def buffered_fragments(self):
        return len(self._buffer)

    def wait_stopped(self, timeout=None):
        """Wait until the encoder thread has ended (its last consumer left); answer whether it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._thread is None

    def stop(self, timeout=5.0):
        """Stop for good (shutdown, a removed camera): the thread ends and every feed ends."""
        self._stop.set()
        self._hub.close()
        self.wait_stopped(timeout)

    # -- what a feed reads, under the lock ---------------------------------------------------
    def _next_for(self, feed):
        """The next segment or fragment for ``feed``, or None; and the newest seq it has seen."""
        with self._lock:
            return self._choose(feed), self._seq

    def _choose(self, feed):
        init, buffer = self._init, self._buffer
        if init is None:
            return None
        if feed.run != init.run:
            feed.run, feed.next_seq, feed.after_seq = init.run, None, -1
            return init
        if feed.next_seq is not None and buffer:
            index = feed.next_seq - buffer[0].seq
            if index >= len(buffer):
                return None                         # up to date
            if index >= 0 and buffer[-1].timestamp - buffer[index].timestamp <= self.max_lag_s:
                feed.next_seq += 1
                return buffer[index]
            feed.after_seq, feed.next_seq = feed.next_seq - 1, None     # behind: the next keyframe
            feed.skips += 1
        if feed.next_seq is None and self._keyframe_seq is not None and self._keyframe_seq > feed.after_seq:
            feed.next_seq = self._keyframe_seq + 1
            return buffer[self._keyframe_seq - buffer[0].seq]
        return None

    # -- the encoder thread ------------------------------------------------------------------
    def _wanted(self):
        return self._consumers > 0 and not self._stop.is_set()

    def _still_wanted(self):
        """Whether to go on; if not, the thread is gone from here on (a new consumer starts another)."""
        with self._lock:
            if self._wanted() and not self.closed:
                return True
            self._thread = None
        if self.camera.hub.closed:
            self._hub.close()                   # the camera stopped for good: so do the feeds
        return False

    def _encode(self):
        log.info("camera %s: live H.264 started", self.camera.name)
        writer, backoff = None, BACKOFF_FIRST
        try:
            while self._still_wanted():
                try:
                    frames = self.camera.frames(timeout=FRAME_WAIT_S, until=lambda: not self._wanted())
                    with contextlib.closing(frames):
                        for frame in frames:
                            writer = self._write(writer, frame)
                            backoff, self._last_error = BACKOFF_FIRST, None
                except Exception as error:      # the thread's top level: log once, back off, start again
                    self.restarts += 1
                    if str(error) != self._last_error:
                        log.exception("camera %s: live H.264 encoder failed; it starts again", self.camera.name)
                    self._last_error = str(error)
                    writer = self._end_run(writer)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            self._end_run(writer)
            log.info("camera %s: live H.264 stopped", self.camera.name)

    def _write(self, writer, frame):
        height, width = (_even(size) for size in frame.image.shape[:2])
        if writer is not None and (writer.width, writer.height) != (width, height):
            writer = self._end_run(writer)      # half resolution, or "no signal" at another size
        if writer is None:
            writer = self._start_run(width, height, frame.timestamp)
        try:
            fragments = writer.write(frame.image, frame.timestamp)
        except Exception:
            self._end_run(writer)       # also a writer that failed at its first picture, unknown to _encode
            raise
        if writer.init_segment is not None and self._writer is not writer:
            self._publish_init(writer)
        for data, keyframe, captured in fragments:
            if self._keep(data, keyframe, captured):
                writer.force_keyframe()
        return writer

    def _start_run(self, width, height, timestamp):
        encoder = pick_encoder(self.encoders, width, height, self.quality, self.profile)
        if self._origin is None:
            self._origin = timestamp
        writer = LiveMp4Writer(encoder, width, height, self.quality, self.profile, self.keyframe_interval_s,
                               origin=self._origin)
        log.info("camera %s: live H.264 %dx%d with %s (%s)", self.camera.name, width, height, encoder, writer.mime)
        return writer

    def _end_run(self, writer):
        """Close the writer; its segments are no longer offered. Answers None (no writer now)."""
        if writer is None:
            return None
        with self._lock:
            if self._writer is writer:
                self._init = self._writer = None
                self._buffer.clear()
                self._buffered_bytes, self._keyframe_seq = 0, None
        writer.close()
        return None

    def _publish_init(self, writer):
        with self._lock:
            self._runs += 1
            self._seq += 1
            init = InitSegment(self._runs, self._seq, writer.init_segment, writer.mime, writer.width,
                               writer.height, writer.encoder)
            self._init, self._writer = init, writer
        self._hub.publish(init)

    def _keep(self, data, keyframe, captured):
        """Add a fragment to the buffer and trim it; answers True when the buffer lost its keyframe,
        so the encoder must make the next frame one."""
        with self._lock:
            self._seq += 1
            fragment = Fragment(self._init.run, self._seq, keyframe, captured, data)
            buffer = self._buffer
            buffer.append(fragment)
            self._buffered_bytes += len(data)
            if keyframe:
                self._keyframe_seq = fragment.seq
            keep_from = self._keyframe_seq - KEPT_BEFORE_KEYFRAME if self._keyframe_seq is not None else 0
            while buffer and (buffer[0].seq < keep_from or self._buffered_bytes > self.max_buffer_bytes
                              or len(buffer) > self.max_buffer_fragments):
                dropped = buffer.popleft()
                self._buffered_bytes -= len(dropped.data)
                if dropped.seq == self._keyframe_seq:
                    self._keyframe_seq = None
            lost_keyframe = self._keyframe_seq is None
        self._hub.publish(fragment)
        return lost_keyframe


class LiveFeed:
    """One consumer of a LiveH264: ``next(timeout)`` in a loop, ``close()`` when done (or a with block)."""

    def __init__(self, encoder):
        self._encoder = encoder
        self._open = True
        self.run = None             # the run whose initialization segment this feed got
        self.next_seq = None        # the fragment it reads next; None: the next keyframe after after_seq
        self.after_seq = -1
        self.skips = 0              # how often it fell behind and skipped to a keyframe
        self._stream_init = None    # the initialization segment next_in_stream() gave

    def next(self, timeout=None):
        """The next InitSegment or Fragment; None after ``timeout`` s (None: no limit) without one,
        or at once when the feed has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended:
            item, seen = self._encoder._next_for(self)
            if item is not None:
                return item
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._encoder._hub.wait_newer(seen, remaining, until=lambda: self.ended)
        return None

    def next_in_stream(self, timeout=None):
        """As next(), for a reader that writes one MP4 stream: after the first initialization segment,
        one equal to it (the encoder started again at the same size) is left out, and another one
        raises StreamChanged."""
        while True:
            item = self.next(timeout)
            if item is None or not item.is_init:
                return item
            if self._stream_init is None:
                self._stream_init = item.data
                return item
            if item.data != self._stream_init:
                raise StreamChanged("the live encoder started again with another picture size")

    @property
    def ended(self):
        return not self._open or self._encoder.closed

    def close(self):
        """Leave: the encoder stops when its last feed has left. Only the first call counts."""
        if self._open:
            self._open = False
            self._encoder._leave()
            self._encoder._hub.wake()           # a next() waiting in another thread or greenlet ends now

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _even(size):
    return max(size - size % 2, 2)
