"""The WebSocket wire format and the per-connection sending logic (no Flask: web/socket_routes.py
accepts the connection).

One socket carries any number of cameras. The client sends JSON text messages::

    {"op": "subscribe", "camera": "NAME"}      camera omitted: the default camera
    {"op": "unsubscribe", "camera": "NAME"}
    {"op": "ping"}
    {"op": "subscribe", "camera": "NAME", "ack": true}   then, for each frame drawn:
    {"op": "ack", "camera": "NAME"}
    {"op": "control", "camera": "NAME", "action": "...", "id": ..., ...}   (web/socket_controls.py)

and the server answers with JSON text (``hello``, ``subscribed``, ``unsubscribed``, ``pong``,
``error``, and ``result`` for a control) and sends each frame of a subscribed camera as one binary
message: a header, then the same JPEG bytes the MJPEG viewers get. The header (all big-endian):

    offset 0     uint8    version (1)
    offset 1     uint8    L, the camera name's length in bytes (1-32)
    offset 2     L bytes  the camera name, UTF-8
    offset 2+L   uint64   the frame's sequence number (goes up by one per frame the camera made)
    offset 10+L  float64  the capture time, Unix seconds
    offset 18+L           the JPEG

Without ``ack`` a subscription is sent the newest frame each time the socket has taken the one before,
so a client that reads slowly has what the kernel's buffers hold on its way (a few frames). With
``ack`` the server also waits for the client: at most ACK_WINDOW frames of that camera are on their
way unacknowledged, so a page that draws slowly (or a slow network) is sent only what it draws, and
its picture is at most that many frames old; the browser's page acknowledges each frame it drew.

A server's WebSocket frames are not masked (RFC 6455 5.1), so the whole message, WebSocket framing
included, is the same bytes for every client: it is built once per frame per camera and shared,
like the MJPEG part. Each subscription sends the newest frame once the socket took the one before: a
slow client skips frames and never queues more than the frame being sent. The writes of one socket
(frames of several cameras, answers, simple-websocket's pings) go out whole, one at a time; a write
that makes no progress for ``SEND_TIMEOUT`` drops the client.
"""
import json
import logging
import socket
import struct
import threading
import time

log = logging.getLogger(__name__)

VERSION = 1
MAX_NAME_BYTES = 32
MAX_TEXT_BYTES = 4096           # a control message is a few dozen bytes
ACK_WINDOW = 2                  # frames of one camera a client that acknowledges may have unacknowledged
MAX_SUBSCRIPTIONS = 64          # cameras one socket may watch at once
SEND_TIMEOUT = 10.0             # seconds one message may take to go out before the client is dropped
# A client slower than the camera skips frames only if the kernel does not queue them for it: its send
# buffer holds a few frames (as the MJPEG stream's, see web/live.py), so its picture stays recent.
SEND_BUFFER = 64 * 1024         # bytes; the kernel doubles it
WAIT_TICK = 1.0                 # seconds between a subscription's checks that it should end
_HEADER_END = struct.Struct(">Qd")


class FrameHeaderError(ValueError):
    """Bytes that are not a frame message of this version."""


def frame_header(camera_name, seq, timestamp):
    """The header of a frame message (see the module's docstring)."""
    name = camera_name.encode()
    if not 0 < len(name) <= MAX_NAME_BYTES:
        raise ValueError(f"a camera name in a frame header has 1-{MAX_NAME_BYTES} bytes, not {len(name)}")
    return bytes((VERSION, len(name))) + name + _HEADER_END.pack(seq, timestamp)


def parse_frame_header(message):
    """(camera name, seq, capture time, offset of the JPEG) of a binary frame message."""
    if len(message) < 2 or message[0] != VERSION:
        raise FrameHeaderError(f"not a version {VERSION} frame message")
    end = 2 + message[1] + _HEADER_END.size
    if message[1] == 0 or len(message) < end:
        raise FrameHeaderError("frame message shorter than its header")
    seq, timestamp = _HEADER_END.unpack_from(message, 2 + message[1])
    return message[2:2 + message[1]].decode(), seq, timestamp, end


def _websocket_frame(opcode, payload):
    """One unmasked, unfragmented WebSocket frame (FIN set) as a server sends it."""
    size = len(payload)
    if size < 126:
        head = struct.pack(">BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack(">BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, size)
    return head + payload


def binary_message(payload):
    return _websocket_frame(0x2, payload)


def text_message(answer):
    """A JSON answer as a WebSocket text frame."""
    return _websocket_frame(0x1, json.dumps(answer, separators=(",", ":")).encode())


class FrameMessages:
    """Each camera's newest frame as a whole binary WebSocket message, built once and sent to every
    subscriber. Keyed by the Frame itself, so a camera removed and added again under its name (whose
    numbers start again) never gets another camera's message."""

    def __init__(self):
        self._newest = {}       # camera name -> (frame, message)

    def message(self, camera_name, frame):
        cached = self._newest.get(camera_name)
        if cached is not None and cached[0] is frame:
            return cached[1]
        message = binary_message(frame_header(camera_name, frame.seq, frame.timestamp) + frame.jpeg)
        self._newest[camera_name] = (frame, message)     # two builders at once build the same bytes
        return message

    def forget(self, camera_name):
        self._newest.pop(camera_name, None)


class SerialSocket:
    """A client's socket whose writes go out whole and one at a time, within SEND_TIMEOUT each.

    simple-websocket's Server writes with ``sock.send()``, which may send part of a message (a
    gevent socket, a socket with a timeout), and its reader writes pings and pongs while our
    subscriptions write frames: given this object as its socket, every write is whole and alone.
    The timeout is the socket's own, which also bounds reads: the reader only reads once its selector
    says the socket is readable (simple-websocket does so when ``ping_interval`` is set).
    """

    def __init__(self, sock, lock):
        self._sock, self._lock = sock, lock
        sock.settimeout(SEND_TIMEOUT)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError as error:
            log.debug("could not size the client's send buffer: %s", error)

    def send(self, data):
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    sendall = send

    def send_built(self, build):
        """Send what ``build()`` answers once it is this write's turn (nothing for None), so what is
        sent is chosen as late as possible: a frame waiting for the socket becomes the newest one."""
        with self._lock:
            data = build()
            if data is not None:
                self._sock.sendall(data)
        return data

    def recv(self, size):
        return self._sock.recv(size)

    def fileno(self):
        return self._sock.fileno()

    def shutdown(self, how):
        self._sock.shutdown(how)

    def close(self):
        self._sock.close()


class Session:
    """One client's socket: its subscriptions, the answers to its messages, and its frames.

    ``cameras(name)`` answers the Camera of a name (KeyError, whose str() lists the cameras, for an
    unknown one; None: the default camera); ``out``: a SerialSocket; ``spawn(function)`` runs a
    function concurrently (a greenlet under gevent, else a daemon thread) and answers something with
    ``join(timeout)``; ``max_viewers``: each camera's limit, which subscriptions count against;
    ``control(request)`` acts on a control message and answers it (through ``send``) itself.
    """

    def __init__(self, cameras, out, spawn, max_viewers, messages, count_sent=None, control=None):
        self._cameras, self._out, self._spawn = cameras, out, spawn
        self._max_viewers, self._messages = max_viewers, messages
        self.count_sent = count_sent or (lambda name, previous_seq, seq: None)
        self.control = control
        self._subscriptions = {}        # camera name -> _Subscription
        self._closed = False

    def send(self, answer):
        try:
            self._out.send(text_message(answer))
        except OSError as error:
            self.drop(f"sending an answer failed: {error}")

    def error(self, message, **members):
        self.send({"op": "error", "message": message, **members})

    def receive(self, message):
        """Act on one message from the client; anything wrong gets an error answer, never an exception."""
        if not isinstance(message, str):
            return self.error("binary messages are not understood; send JSON text such as "
                              '{"op": "subscribe", "camera": "NAME"}')
        if len(message.encode(errors="replace")) > MAX_TEXT_BYTES:
            return self.error(f"a message may have at most {MAX_TEXT_BYTES} bytes")
        try:
            request = json.loads(message)
        except ValueError:
            return self.error("a message must be a JSON object such as {\"op\": \"subscribe\", \"camera\": \"NAME\"}")
        if not isinstance(request, dict):
            return self.error("a message must be a JSON object such as {\"op\": \"subscribe\", \"camera\": \"NAME\"}")
        action = {"subscribe": self._subscribe, "unsubscribe": self._unsubscribe, "ack": self._ack,
                  "ping": self._ping, "control": self._control}.get(
                      request.get("op") if isinstance(request.get("op"), str) else None)
        if action is None:
            return self.error(f"unknown op {str(request.get('op'))[:40]!r}; the ops are subscribe, unsubscribe, "
                              "ack, ping and control")
        action(request)

    def _control(self, request):
        if self.control is None:
            return self.error("this socket takes no controls", id=request.get("id"), status=501)
        self.control(request)

    def _camera(self, request):
        """The camera a message names (the default when it names none), or None after an error answer."""
        name = request.get("camera")
        if name is not None and not isinstance(name, str):
            self.error("camera must be a camera's name (a string)")
            return None
        try:
            return self._cameras(name)
        except KeyError as error:       # UnknownCamera: its message lists the cameras
            self.error(str(error), camera=name[:64])
            return None

    def _subscribe(self, request):
        acknowledges = request.get("ack", False)
        if not isinstance(acknowledges, bool):
            return self.error("ack must be true or false")
        camera = self._camera(request)
        if camera is None:
            return
        if camera.name in self._subscriptions:
            return self.error(f"already subscribed to camera {camera.name}", camera=camera.name)
        if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            return self.error(f"one socket may watch at most {MAX_SUBSCRIPTIONS} cameras", camera=camera.name)
        leave = camera.admit_viewer(self._max_viewers)
        if leave is None:
            return self.error(f"camera {camera.name} already has {self._max_viewers} viewers (max_viewers); "
                              "try again later", camera=camera.name)
        width, height = camera.status()["resolution"]
        subscription = _Subscription(self, camera, leave, acknowledges)
        self._subscriptions[camera.name] = subscription
        self.send({"op": "subscribed", "camera": camera.name, "width": width, "height": height})
        subscription.start(self._spawn)

    def _unsubscribe(self, request):
        camera = self._camera(request)
        if camera is None:
            return
        subscription = self._subscriptions.pop(camera.name, None)
        if subscription is None:
            return self.error(f"not subscribed to camera {camera.name}", camera=camera.name)
        subscription.stop()
        self.send({"op": "unsubscribed", "camera": camera.name})

    def _ack(self, request):
        camera = self._camera(request)
        if camera is None:
            return
        subscription = self._subscriptions.get(camera.name)
        if subscription is None or not subscription.acknowledges:
            return self.error(f"camera {camera.name} is not subscribed with ack", camera=camera.name)
        subscription.acknowledged()

    def _ping(self, request):
        self.send({"op": "pong", "time": time.time()})

    def subscription_ended(self, subscription, reason):
        """A subscription's camera stopped, or its frames could not be sent."""
        if self._subscriptions.get(subscription.camera.name) is subscription:
            del self._subscriptions[subscription.camera.name]
            if not self._closed:
                self.send({"op": "unsubscribed", "camera": subscription.camera.name, "reason": reason})

    def send_frame(self, camera, frame, after_seq, stopped):
        """Send the camera's newest frame (``frame`` or a newer one that came while this waited for the
        socket) unless it is not after ``after_seq`` or ``stopped()``; answer the frame sent or None."""
        chosen = []

        def build():
            newest = camera.hub.latest
            picked = newest if newest is not None and newest.seq > frame.seq else frame
            if stopped() or self._closed or (after_seq is not None and picked.seq <= after_seq):
                return None
            chosen.append(picked)
            return self._messages.message(camera.name, picked)

        self._out.send_built(build)
        return chosen[0] if chosen else None

    def drop(self, reason):
        """The client cannot be written to: end the connection (the reader sees the end and the route
        closes the session)."""
        if not self._closed:
            log.info("websocket client dropped: %s", reason)
        self._closed = True
        try:
            self._out.shutdown(2)       # socket.SHUT_RDWR
        except OSError:
            pass

    def close(self, join_timeout=2.0):
        """Stop every subscription and give their viewer places back."""
        self._closed = True
        subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        for subscription in subscriptions:
            subscription.stop()
        for subscription in subscriptions:
            subscription.join(join_timeout)

    @property
    def closed(self):
        return self._closed

    @property
    def cameras(self):
        return list(self._subscriptions)


class _Subscription:
    """One camera on one socket: a loop that sends the camera's newest frame each time the socket has
    taken the previous one, holding a viewer place (``leave`` gives it back)."""

    def __init__(self, session, camera, leave, acknowledges=False):
        self.session, self.camera, self._leave = session, camera, leave
        self.acknowledges = acknowledges
        self._unacknowledged = 0
        self._count_lock = threading.Lock()
        self._stopped = threading.Event()
        self._worker = None

    def acknowledged(self):
        with self._count_lock:
            self._unacknowledged = max(0, self._unacknowledged - 1)

    def _may_send(self):
        """Whether the client can take another frame now (else the next frame after its ack)."""
        return not self.acknowledges or self._unacknowledged < ACK_WINDOW

    def _sent_one(self):
        if self.acknowledges:
            with self._count_lock:
                self._unacknowledged += 1

    def start(self, spawn):
        try:
            self._worker = spawn(self._run)
        except BaseException:
            self._leave()
            raise

    def stop(self):
        self._stopped.set()
        self._leave()

    def join(self, timeout):
        if self._worker is not None:
            self._worker.join(timeout)

    def _run(self):
        sent = None
        reason = "the camera stopped"
        try:
            for frame in self.camera.frames(timeout=WAIT_TICK, until=self._stopped.is_set, held=True):
                if self.session.closed:
                    break
                if not self._may_send():
                    continue
                frame = self.session.send_frame(self.camera, frame, sent, self._stopped.is_set)
                if frame is not None:
                    self._sent_one()
                    self.session.count_sent(self.camera.name, sent, frame.seq)
                    sent = frame.seq
        except OSError as error:        # a timeout too: the client took nothing for SEND_TIMEOUT
            reason = f"sending failed: {error or type(error).__name__}"
            self.session.drop(f"camera {self.camera.name}: {reason}")
        except Exception:               # the worker's top level: log it, end this subscription alone
            reason = "an error in the server (see its log)"
            log.exception("websocket subscription to camera %s failed", self.camera.name)
        finally:
            self._leave()
            if not self._stopped.is_set():
                self.session.subscription_ended(self, reason)
