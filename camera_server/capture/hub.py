"""FrameHub: one producer publishes encoded frames, any number of consumers wait for a newer one.

A consumer always gets the newest frame: a slow one skips frames, it never slows the others or
builds a queue. The producer is a native thread; consumers are native threads (gthread worker,
development server, recorder, scene watch) and, under the gevent worker, greenlets (the viewers).
A greenlet cannot wait on a native Condition without stalling its hub, and a native thread cannot
wait on a gevent Event, so each waits its own way and the producer wakes both.
"""
import dataclasses
import threading

from camera_server.blocking import in_greenlet
from camera_server.stream import mjpeg


@dataclasses.dataclass(frozen=True)
class Frame:
    seq: int
    timestamp: float          # capture time, Unix seconds (time.time())
    image: object             # the processed numpy image the JPEG was made from
    jpeg: bytes
    part: bytes               # the whole MJPEG part: headers, JPEG, and the next boundary
    live: bool = True         # False for the "no signal" frames
    overlaid: bool = False    # the JPEG shows overlays (motion boxes) that image does not have

    @classmethod
    def build(cls, seq, timestamp, image, jpeg, live=True, overlaid=False):
        """Build the MJPEG part once per frame, so every viewer sends the same bytes."""
        return cls(seq, timestamp, image, jpeg, mjpeg.build_part(jpeg, timestamp), live, overlaid)


class _ThreadWaiter:
    def __init__(self):
        self._condition = threading.Condition()

    def wait(self, is_ready, timeout):
        with self._condition:
            self._condition.wait_for(is_ready, timeout)

    def notify(self):
        with self._condition:
            self._condition.notify_all()


class _GeventWaiter:
    """Wakes greenlets from a native thread: async_().send() is the thread-safe way into the hub."""

    def __init__(self):
        import gevent
        import gevent.event
        hub = gevent.get_hub()
        self._new_event = gevent.event.Event
        self._event = self._new_event()
        self._watcher = hub.loop.async_(ref=False)
        self._watcher.start(self._wake_all)

    def _wake_all(self):
        event, self._event = self._event, self._new_event()
        event.set()

    def wait(self, is_ready, timeout):
        # Runs in the hub's thread like _wake_all, so no wake-up can slip between check and wait.
        if not is_ready():
            self._event.wait(timeout)

    def notify(self):
        self._watcher.send()


class FrameHub:
    def __init__(self):
        self._latest = None
        self._closed = False
        self._threads = _ThreadWaiter()
        self._greenlets = None          # made by the first greenlet that waits, in the hub's thread

    @property
    def latest(self):
        return self._latest

    @property
    def closed(self):
        return self._closed

    def publish(self, frame):
        self._latest = frame
        self.wake()

    def _waiter(self):
        if not in_greenlet():
            return self._threads
        if self._greenlets is None:
            self._greenlets = _GeventWaiter()
        return self._greenlets

    def close(self):
        """No more frames: every consumer waiting in wait_newer() gets None now, and later ones at once."""
        self._closed = True
        self.wake()

    def wake(self):
        """Every consumer waiting in wait_newer() checks its ``until()`` again (one of them should stop)."""
        self._threads.notify()
        if self._greenlets is not None:
            self._greenlets.notify()

    def wait_newer(self, seq, timeout, until=None):
        """The newest frame with a sequence number above ``seq``, or None after ``timeout`` s (None:
        no time limit), at once once the hub is closed, or once ``until()`` answers true after a wake()."""
        def is_ready():
            latest = self._latest
            return self._closed or (latest is not None and latest.seq > seq) or (until is not None and until())
        self._waiter().wait(is_ready, timeout)
        latest = self._latest
        return latest if latest is not None and latest.seq > seq else None
