"""The camera worker: one producer thread per camera that reads, processes and encodes each frame once.

A ``Source`` is a device adapter (OpenCV, picamera2, the demo pattern): ``open()``, ``read()`` and
``close()``. ``Camera`` runs the source in a thread that starts with the first consumer and stops,
releasing the device, ``idle_timeout`` seconds after the last one leaves. A source that fails to
open or stops delivering gives a "no signal" frame that says why and is reopened with backoff.
"""
import collections
import concurrent.futures
import contextlib
import logging
import threading
import time

import cv2
import numpy as np
import simplejpeg

from camera_server.blocking import call_blocking
from camera_server.capture.hub import Frame, FrameHub

log = logging.getLogger(__name__)

NO_SIGNAL_INTERVAL = 1.0      # seconds between "no signal" frames, so open streams stay alive
# Reopening a source that failed waits 0.25 s, 0.5 s, then 1 s between attempts for as long as it stays
# away, so one that answers again streams within about 1 s plus its own open time (the goal is 2 s;
# 0.5 s doubling to 8 s took 5.5 s after a 10 s outage). A dead device is still tried only once a
# second: a failing open of a missing V4L2 device or a refused connection costs about a millisecond,
# and an open that hangs (a stream URL timing out) blocks this thread, so attempts never pile up. The
# delay starts again from the first only after a frame came: a camera that opens but delivers nothing
# is not reopened four times a second.
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 1.0
CONTROL_TIMEOUT = 10.0        # seconds a device control waits for the producer thread (a hung read)


class CameraError(RuntimeError):
    """The device cannot be opened or read; the message says why."""


class FocusNotSupported(CameraError):
    """This camera has no controllable focus."""


class Source:
    """A device adapter. Subclasses override open/read/close and, when they can, the focus methods."""

    name = "camera"
    frame_interval = None     # seconds between frames when the worker must pace; None: read() blocks

    def open(self):
        pass

    def read(self):
        """The next frame as a BGR (or gray) numpy array; raise CameraError when there is none."""
        raise NotImplementedError

    def close(self):
        pass

    @property
    def supports_focus(self):
        return False

    def set_autofocus(self, enabled):
        raise FocusNotSupported(f"the {self.name} camera has no controllable focus")

    def step_focus(self, steps):
        raise FocusNotSupported(f"the {self.name} camera has no controllable focus")

    def set_focus(self, value):
        raise FocusNotSupported(f"the {self.name} camera has no controllable focus")

    def focus_state(self):
        return None

    def redact(self, text):
        """``text`` as it may be shown and logged: without the secrets of this source's address."""
        return text


def encode_jpeg(image, quality):
    """JPEG bytes; colour with 4:2:0 chroma (simplejpeg's default 4:4:4 is ~45 % larger per frame)."""
    if image.ndim == 2:
        return simplejpeg.encode_jpeg(image[:, :, np.newaxis], quality, colorspace="GRAY", fastdct=True)
    return simplejpeg.encode_jpeg(image, quality, colorspace="BGR", colorsubsampling="420", fastdct=True)


def no_signal_image(width, height, reason):
    """A dark frame that says the camera is not delivering, and why."""
    image = np.full((height, width, 3), 32, np.uint8)
    scale = max(width / 640, 0.4)
    cv2.putText(image, "NO SIGNAL", (int(20 * scale), int(80 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                2 * scale, (0, 0, 255), max(1, int(3 * scale)), cv2.LINE_AA)
    for row, line in enumerate(_wrap(reason, max(20, int(width / (11 * scale))))[:6]):
        cv2.putText(image, line, (int(20 * scale), int((140 + 30 * row) * scale)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (220, 220, 220), 1, cv2.LINE_AA)
    cv2.putText(image, time.strftime("%Y-%m-%d %H:%M:%S"), (int(20 * scale), height - int(20 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (160, 160, 160), 1, cv2.LINE_AA)
    return image


def _wrap(text, width):
    lines, line = [], ""
    for word in str(text).split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line else lines


class FrameRate:
    """Frames per second over the last ``window`` frames."""

    def __init__(self, window=30):
        self._times = collections.deque(maxlen=window)

    def tick(self, timestamp):
        self._times.append(timestamp)

    def reset(self):
        self._times.clear()

    @property
    def value(self):
        times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class Camera:
    """Runs a Source in one producer thread and publishes its frames to a FrameHub."""

    def __init__(self, source, *, kind="demo", name=None, width=640, height=480, jpeg_quality=80,
                 idle_timeout=2.0, hub=None, control_timeout=CONTROL_TIMEOUT):
        self.source = source
        self.kind = kind
        self.name = name or kind        # the server's name for it: /cam/<name>/, the catalogue's camera
        self.width, self.height = width, height
        self.jpeg_quality = jpeg_quality
        self.idle_timeout = idle_timeout
        self.control_timeout = control_timeout
        self.hub = hub or FrameHub()
        self._controls = collections.deque()     # (future, action, args) for the producer thread
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._consumers = 0
        self._viewers = 0         # the consumers that are people watching the stream
        self._idle_since = time.monotonic()
        self._seq = 0
        self._grayscale = False
        self._half_resolution = False
        self._state = "stopped"
        self._last_error = None
        self._frame_rate = FrameRate()
        self._overlays = []
        self.open_count = 0       # how often the device was opened; status and tests read it
        self.outages = 0          # how often the picture went to "no signal" (/metrics)

    # -- consumers -------------------------------------------------------------------------
    @contextlib.contextmanager
    def consumer(self):
        """Hold the camera open while the block runs (a snapshot, a recording, the watch)."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def acquire(self):
        with self._lock:
            self._consumers += 1
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
                self._state = "starting"
                self._thread.start()

    def release(self):
        with self._lock:
            self._consumers -= 1
            if self._consumers == 0:
                self._idle_since = time.monotonic()

    def admit_viewer(self, limit):
        """Take a place for a person watching the stream, unless ``limit`` people watch already.

        Answers the function that gives the place back (only its first call does), or None when the
        camera is full. The check and the count are one step under the lock, so a burst of requests
        cannot get past ``limit`` between them. The place holds the camera open like a consumer.
        """
        with self._lock:
            if self._viewers >= limit:
                return None
            self._viewers += 1
            self.acquire()
        held = [True]

        def leave():
            with self._lock:
                if held:
                    held.clear()
                    self._viewers -= 1
                    self.release()
        return leave

    @property
    def consumers(self):
        return self._consumers

    @property
    def viewers(self):
        return self._viewers

    def frames(self, timeout=5.0, until=None, held=False, idle_ticks=False):
        """Yield each newer frame while the caller consumes; a slow caller skips frames.

        The loop ends when the camera stops or ``until()`` answers true, checked at least every
        ``timeout`` seconds even while a hung device delivers nothing (None: at each frame and when
        the hub is woken, which is cheaper than a timer per wait: the caller that makes ``until()``
        true calls ``hub.wake()``); with ``idle_ticks`` such a wait yields None, so the caller's
        clock runs without frames. The frames hold the camera open while they are read, unless the
        caller ``held`` a place already (admit_viewer).
        """
        with contextlib.nullcontext() if held else self.consumer():
            latest = self.hub.latest
            # After an idle stop the newest frame is old: wait for a fresh one instead.
            seq = latest.seq if latest is not None and self._state != "streaming" else 0
            while not self._stop.is_set() and not (until is not None and until()):
                frame = self.hub.wait_newer(seq, timeout, until)
                if frame is not None:
                    seq = frame.seq
                if frame is not None or idle_ticks:
                    yield frame

    def current_frame(self, timeout=5.0):
        """The newest live frame, starting the camera for it if needed; CameraError when none comes."""
        deadline = time.monotonic() + timeout
        with self.consumer():
            frame = self.hub.latest
            if frame is not None and frame.live and self._state == "streaming":
                return frame
            seq = frame.seq if frame is not None else 0
            while (remaining := deadline - time.monotonic()) > 0:
                frame = self.hub.wait_newer(seq, remaining)
                if frame is None:
                    break
                if frame.live:
                    return frame
                seq = frame.seq
        raise CameraError(f"no picture from the camera: {self._last_error or 'it did not answer in time'}")

    def newest_frame(self, timeout=5.0):
        """The newest frame, a "no signal" picture included, starting the camera for it if needed (a
        grid tile's still); None when none comes within ``timeout``."""
        with self.consumer():
            frame = self.hub.latest
            if frame is not None and self._state in ("streaming", "no_signal"):
                return frame
            return self.hub.wait_newer(frame.seq if frame is not None else 0, timeout)

    # -- controls --------------------------------------------------------------------------
    def set_grayscale(self, enabled):
        with self._lock:
            self._grayscale = bool(enabled)
            return self._grayscale

    def set_half_resolution(self, enabled):
        with self._lock:
            self._half_resolution = bool(enabled)
            return self._half_resolution

    def add_overlay(self, draw):
        """Draw on each streamed frame: ``draw(image)`` paints in place, in the camera thread, and
        answers False when it had nothing to draw.

        Only the JPEG shows it (``Frame.overlaid`` says so); ``Frame.image`` stays clean for analysis
        and recording.
        """
        with self._lock:
            self._overlays = self._overlays + [draw]

    def remove_overlay(self, draw):
        with self._lock:
            self._overlays = [other for other in self._overlays if other is not draw]

    @property
    def grayscale(self):
        return self._grayscale

    @property
    def half_resolution(self):
        return self._half_resolution

    def set_autofocus(self, enabled):
        return self._device_control(self.source.set_autofocus, bool(enabled))

    def step_focus(self, steps):
        return self._device_control(self.source.step_focus, steps)

    def set_focus(self, value):
        return self._device_control(self.source.set_focus, value)

    def _device_control(self, action, *args):
        """Have the producer thread run a device control between two reads; answer its result.

        The device is opened for it if nobody watches. Only the producer thread touches the device,
        so the caller holds no lock while a read blocks; a greenlet waits in the hub's thread pool.
        """
        if not self.source.supports_focus:
            return action(*args)        # raises FocusNotSupported without opening the device
        if self._stop.is_set():
            raise CameraError("the camera is stopped")
        control = concurrent.futures.Future()
        with self.consumer():
            self._controls.append((control, action, args))
            call_blocking(concurrent.futures.wait, [control], self.control_timeout)
        if not control.done():
            control.cancel()    # a control already running finishes on its own in the producer thread
            raise CameraError(f"the camera did not answer within {self.control_timeout:g} s: "
                              f"{self._last_error or 'its device is busy or hangs'}")
        return control.result()     # done: answers at once, never waits on the calling greenlet

    def _run_controls(self):
        """In the producer thread: apply the device controls that came in during the last read."""
        while self._controls:
            control, action, args = self._controls.popleft()
            if control.set_running_or_notify_cancel():
                try:
                    control.set_result(action(*args))
                except Exception as error:  # handed to the caller, whose route turns it into a status
                    control.set_exception(error)

    def _refuse_controls(self, reason):
        """No device to apply them to: the waiting controls fail with the reason."""
        while self._controls:
            control, _, _ = self._controls.popleft()
            if control.set_running_or_notify_cancel():
                control.set_exception(CameraError(f"no picture from the camera: {reason}"))

    def status(self):
        latest = self.hub.latest
        shape = latest.image.shape if latest is not None else None
        return {
            "name": self.name,
            "camera": self.kind,
            "source": self.source.name,
            "state": self._state,
            "fps": round(self._frame_rate.value, 2) if self._state == "streaming" else 0.0,
            "resolution": [shape[1], shape[0]] if shape else [self.width, self.height],
            "viewers": self._viewers,
            "consumers": self._consumers,
            "grayscale": self._grayscale,
            "half_resolution": self._half_resolution,
            "focus": self.source.focus_state(),
            "last_error": self._last_error,
            "opened": self.open_count,
        }

    @property
    def state(self):
        return self._state

    def stop(self, timeout=5.0):
        """Stop the worker thread for good (application shutdown) and release the device; the
        consumers waiting for a frame leave at once."""
        self._stop.set()
        self.hub.close()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- the producer thread ---------------------------------------------------------------
    def _run(self):
        log.info("camera %s: worker started", self.name)
        backoff = BACKOFF_FIRST
        opened = False
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._should_idle(opened):
                    opened = False
                    return
                try:
                    if not opened:
                        self._open()
                        opened = True
                    image = self.source.read()
                    self._publish_image(image, time.time())     # stamped at capture, before the encode
                    backoff = BACKOFF_FIRST
                    self._run_controls()
                    next_due = self._pace(next_due)
                except Exception as error:  # the thread's top level: report, back off, reopen
                    if opened:
                        self._close_source()
                        opened = False
                    self._no_signal(error, backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    next_due = time.monotonic()
        finally:
            if opened:
                self._close_source()
            if self._stop.is_set():
                self._refuse_controls("the camera was stopped")
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread, self._state = None, "stopped"
            log.info("camera %s: worker stopped, device released", self.name)

    def _idle_expired(self):
        return not self._consumers and time.monotonic() - self._idle_since >= self.idle_timeout

    def _should_idle(self, opened):
        """Stop after idle_timeout without consumers; closes under the lock so a restart waits."""
        with self._lock:
            if not self._idle_expired():
                return False
            if opened:
                self._close_source()
            self._thread = None
            self._state = "stopped"
            return True

    def _open(self):
        self._state = "starting"
        self.source.open()
        self.open_count += 1
        self._frame_rate.reset()
        log.info("camera %s: opened %s", self.name, self.source.name)

    def _close_source(self):
        try:
            self.source.close()
        except Exception:
            log.exception("camera %s: error while closing %s", self.name, self.source.name)

    def _process(self, image):
        if self._grayscale and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self._half_resolution:
            height, width = image.shape[:2]
            image = cv2.resize(image, (max(width // 2, 1), max(height // 2, 1)), interpolation=cv2.INTER_AREA)
        return image

    def _publish_image(self, image, timestamp, live=True):
        image = self._process(image) if live else image
        shown = self._draw_overlays(image) if live else image
        jpeg = encode_jpeg(shown, self.jpeg_quality)
        self._seq += 1
        self.hub.publish(Frame.build(self._seq, timestamp, image, jpeg, live, overlaid=shown is not image))
        if live:
            self._frame_rate.tick(time.monotonic())
            if self._state != "streaming":
                self._state, self._last_error = "streaming", None

    def _draw_overlays(self, image):
        """A copy of image with the overlays drawn, or image itself when none drew anything."""
        overlays = self._overlays
        if not overlays:
            return image
        shown = image.copy()
        drew = [draw(shown) is not False for draw in overlays]     # every overlay draws
        return shown if any(drew) else image

    def _pace(self, next_due):
        """Hold a source that does not block (demo, video file) to its frame rate."""
        interval = self.source.frame_interval
        if not interval:
            return time.monotonic()
        next_due += interval
        delay = next_due - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
            return next_due
        return time.monotonic()     # running late: do not try to catch up with a burst

    def _no_signal(self, error, delay):
        """Show why there is no picture, every second, until the next attempt to reopen."""
        reason = self.source.redact(str(error) or type(error).__name__)
        if reason != self._last_error:
            log.warning("camera %s: no signal: %s (retrying)", self.name, reason)
        if self._last_error is None:      # a new outage; set again only by the next live frame
            self.outages += 1
        self._state, self._last_error = "no_signal", reason
        self._refuse_controls(reason)
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            image = no_signal_image(self.width, self.height, reason)
            self._publish_image(image, time.time(), live=False)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._idle_expired():
                return
            self._stop.wait(min(NO_SIGNAL_INTERVAL, remaining))
