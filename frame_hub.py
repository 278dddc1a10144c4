"""FrameHub: one producer publishes encoded frames, any number of consumers wait for a newer one.

A consumer always gets the newest frame: a slow one skips frames, it never slows the others or
builds a queue. The producer is a native thread; consumers are native threads (gthread worker,
development server) or greenlets (gevent worker). Greenlets cannot wait on a native Condition
without stalling their hub, so under gevent the producer wakes them through the hub's thread-safe
async watcher instead.
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
        self._new_event = gevent.event.Event
        self._event = self._new_event()
        self._watcher = gevent.get_hub().loop.async_(ref=False)
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
        self._latest = None
        cooperative = gevent_is_active() if cooperative is None else cooperative
        self._waiter = _GeventWaiter() if cooperative else _ThreadWaiter()

    @property
    def latest(self):
        return self._latest

    def publish(self, frame):
        self._latest = frame
        self._waiter.notify()

    def wait_newer(self, seq, timeout):
        """The newest frame with a sequence number above ``seq``, or None after ``timeout`` s."""
        def is_ready():
            latest = self._latest
            return latest is not None and latest.seq > seq
        self._waiter.wait(is_ready, timeout)
        latest = self._latest
        return latest if latest is not None and latest.seq > seq else None
