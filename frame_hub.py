"""FrameHub: one producer publishes encoded frames, any number of consumers wait for a newer one.

A consumer always gets the newest frame: a slow one skips frames, it never slows the others or
builds a queue. The producer is a native thread; consumers are native threads (gthread worker,
development server, the recorder) and, under the gevent worker, greenlets too. Greenlets cannot
wait on a native Condition without stalling their hub, and native threads cannot wait on a gevent
Event, so each waits its own way: the producer notifies both.
"""
import dataclasses
import threading

BOUNDARY = b"frame"


@dataclasses.dataclass(frozen=True)
class Frame:
    seq: int
    timestamp: float          # capture time, Unix seconds (time.time())
    image: object             # the processed numpy image the JPEG was made from
    jpeg: bytes
    part: bytes               # the whole MJPEG part: headers, JPEG, and the next boundary
    live: bool = True         # False for the "no signal" frames

    @classmethod
    def build(cls, seq, timestamp, image, jpeg, live=True):
        """Build the MJPEG part once per frame, so every viewer sends the same bytes."""
        header = (
            b"Content-Type: image/jpeg\r\n"
            b"Content-Length: %d\r\n"
            b"X-Timestamp: %.6f\r\n\r\n" % (len(jpeg), timestamp)
        )
        return cls(seq, timestamp, image, jpeg, header + jpeg + b"\r\n--" + BOUNDARY + b"\r\n", live)


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
        self.thread_ident = hub.thread_ident     # the native thread all its greenlets run in
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


def gevent_is_active():
    """True inside a gevent worker whose sockets are cooperative."""
    import sys
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("socket"))


class FrameHub:
    def __init__(self, cooperative=None):
        """``cooperative``: also wake greenlets (default: when running in a gevent worker)."""
        self._latest = None
        cooperative = gevent_is_active() if cooperative is None else cooperative
        self._threads = _ThreadWaiter()
        self._greenlets = _GeventWaiter() if cooperative else None

    @property
    def latest(self):
        return self._latest

    def publish(self, frame):
        self._latest = frame
        self._threads.notify()
        if self._greenlets is not None:
            self._greenlets.notify()

    def _waiter(self):
        greenlets = self._greenlets
        if greenlets is not None and threading.get_ident() == greenlets.thread_ident:
            return greenlets
        return self._threads

    def wait_newer(self, seq, timeout):
        """The newest frame with a sequence number above ``seq``, or None after ``timeout`` s."""
        def is_ready():
            latest = self._latest
            return latest is not None and latest.seq > seq
        self._waiter().wait(is_ready, timeout)
        latest = self._latest
        return latest if latest is not None and latest.seq > seq else None
