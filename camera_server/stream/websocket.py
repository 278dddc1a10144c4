"""The WebSocket wire format and the per-connection sending logic (no Flask: web/socket_routes.py
accepts the connection).

One socket carries any number of cameras. The client sends JSON text messages::

    {"op": "subscribe", "camera": "NAME"}      camera omitted: the default camera
    {"op": "unsubscribe", "camera": "NAME"}
    {"op": "ping"}
    {"op": "subscribe", "camera": "NAME", "ack": true}   then, for each frame drawn:
    {"op": "ack", "camera": "NAME"}
    {"op": "subscribe", "camera": "NAME", "codec": "h264"}   H.264 instead of JPEG (see below)
    {"op": "control", "camera": "NAME", "action": "...", "id": ..., ...}   (web/socket_controls.py)

and the server answers with JSON text (``hello``, ``subscribed``, ``unsubscribed``, ``pong``,
``error``, and ``result`` for a control) and sends each frame of a subscribed camera as one binary
message: a header, then the same JPEG bytes the MJPEG viewers get. The header (all big-endian):

    offset 0     uint8    kind: 1 a JPEG frame, 2 an MP4 initialization segment, 3 an MP4 fragment
    offset 1     uint8    L, the camera name's length in bytes (1-32)
    offset 2     L bytes  the camera name, UTF-8
    offset 2+L   uint64   the frame's sequence number (goes up by one per frame the camera made)
    offset 10+L  float64  the capture time, Unix seconds
    offset 18+L           the JPEG, or the MP4 segment or fragment

With ``"codec": "h264"`` the camera's live H.264 (stream/h264.py, one encoder per camera for every
viewer) comes instead: ``subscribed`` names its MSE type (``mime``), then an initialization
segment (kind 2; again after an encoder restart), then a fragment per frame (kind 3) from the newest
keyframe on, which Media Source Extensions play. A viewer that falls behind skips to the next
keyframe. When the camera has no H.264 encoder the answer is an ``error`` with ``codec``, and the
subscription is JPEG (``subscribed`` says ``"codec": "jpeg"``).

Without ``ack`` a subscription is sent the newest frame each time the socket has taken the one before,
so a client that reads slowly has what the kernel's buffers hold on its way (a few frames). With
``ack`` the server also waits for the client: at most ACK_WINDOW frames of that camera are on their
way unacknowledged, so a page that draws slowly (or a slow network) is sent only what it draws, and
its picture is at most that many frames old; the browser's page acknowledges each frame it drew.

A server's WebSocket frames are not masked (RFC 6455 5.1), so the whole message, WebSocket framing
included, is the same bytes for every client: it is built once per frame per camera and shared,
like the MJPEG part. One loop per camera (``_Broadcast``) hands it to every subscriber whose socket
takes it at once, without a greenlet or thread per viewer; a client that is behind gets a writer of
its own while it catches up: it skips frames and never queues more than the frame being sent, and
the others never wait for it. The writes of one socket
(frames of several cameras, answers, simple-websocket's pings) go out whole, one at a time; a write
that waits for the client for more than ``SEND_TIMEOUT`` drops the client.
"""
import collections
import json
import logging
import socket
import struct
import threading
import time

from camera_server.stream.h264 import EncoderUnavailable

log = logging.getLogger(__name__)

VERSION = 1
KIND_JPEG, KIND_MP4_INIT, KIND_MP4_FRAGMENT = 1, 2, 3
CODECS = ("jpeg", "h264")
MAX_NAME_BYTES = 32
MAX_TEXT_BYTES = 4096           # a control message is a few dozen bytes
ACK_WINDOW = 2                  # frames of one camera a client that acknowledges may have unacknowledged
MAX_SUBSCRIPTIONS = 64          # cameras one socket may watch at once
SEND_TIMEOUT = 10.0             # seconds one message may take to go out before the client is dropped
# A client slower than the camera skips frames only if the kernel does not queue them for it: its send
# buffer holds a few frames (as the MJPEG stream's, see web/live.py), so its picture stays recent.
SEND_BUFFER = 64 * 1024         # bytes; the kernel doubles it
_HEADER_END = struct.Struct(">Qd")


class FrameHeaderError(ValueError):
    """Bytes that are not a frame message of this version."""


def frame_header(camera_name, seq, timestamp, kind=KIND_JPEG):
    """The header of a frame message (see the module's docstring)."""
    name = camera_name.encode()
    if not 0 < len(name) <= MAX_NAME_BYTES:
        raise ValueError(f"a camera name in a frame header has 1-{MAX_NAME_BYTES} bytes, not {len(name)}")
    return bytes((kind, len(name))) + name + _HEADER_END.pack(seq, timestamp)


def parse_frame_header(message):
    """(camera name, seq, capture time, offset of the payload) of a binary message; its kind is message[0]."""
    if len(message) < 2 or message[0] not in (KIND_JPEG, KIND_MP4_INIT, KIND_MP4_FRAGMENT):
        raise FrameHeaderError(f"not a frame message of version {VERSION}")
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


class SerialSocket:
    """A client's socket whose writes go out whole and one at a time.

    simple-websocket's Server writes with ``sock.send()``, which may send part of a message (a
    gevent socket, a socket with a timeout), and its reader writes pings and pongs while our
    subscriptions write frames: given this object as its socket, every write is whole and alone.
    The socket has no timeout, which would cost a timer per write: ``stalled()`` says when a write
    has made no progress for SEND_TIMEOUT, and the connection's loop then drops the client. Reads
    never wait on the socket: simple-websocket reads once its selector says the socket is readable.
    """

    def __init__(self, sock, lock, gevent=False):
        """``lock``: a threading.Lock, or a gevent lock for a gevent socket (``gevent``)."""
        self._sock, self._lock, self._gevent = sock, lock, gevent
        self._writing_since = None      # monotonic time the write under way began
        sock.settimeout(None)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError as error:
            log.debug("could not size the client's send buffer: %s", error)

    def send(self, data):
        with self._lock:
            self._write(data)
        return len(data)

    sendall = send

    def start_write(self, data):
        """Begin writing ``data`` unless another write is under way: answer None when one is (nothing
        was written), else how much of it the socket took at once, without waiting. When it is less
        than all, this write is still under way: finish it with ``finish_write``, which ends it."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            taken = self._send_now(data)
        except BaseException:
            self._lock.release()
            raise
        if taken == len(data):
            self._lock.release()
        return taken

    def finish_write(self, rest, more=None):
        """Write ``rest`` of a message ``start_write`` began, then, while ``more()`` answers one, the
        next message; the write ends (another may start) once they are out or one failed."""
        try:
            while rest is not None:
                self._write(rest)
                rest = more() if more is not None else None
        finally:
            self._lock.release()

    def _send_now(self, data):
        try:
            if self._gevent:            # gevent's send waits for the socket unless its timeout is 0
                return self._sock.send(data, 0, 0.0)
            return self._sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0

    def _write(self, data):
        self._writing_since = time.monotonic()
        try:
            self._sock.sendall(data)
        finally:
            self._writing_since = None

    def stalled(self):
        """Whether a write has waited for the client for more than SEND_TIMEOUT."""
        since = self._writing_since
        return since is not None and time.monotonic() - since > SEND_TIMEOUT

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
    function concurrently (a greenlet under gevent, else a daemon thread); ``max_viewers``: each
    camera's limit, which subscriptions count against; ``broadcasts``: the app's Broadcasts;
    ``control(request)`` acts on a control message and answers it (through ``send``) itself;
    ``live_h264(camera)``: the camera's LiveH264, for subscriptions with ``"codec": "h264"``.
    """

    def __init__(self, cameras, out, spawn, max_viewers, broadcasts, count_sent=None, control=None,
                 live_h264=None):
        self._cameras, self._out, self.spawn = cameras, out, spawn
        self._max_viewers, self._broadcasts = max_viewers, broadcasts
        self._live_h264 = live_h264     # camera -> its LiveH264 (stream/h264.py); None: JPEG only
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
        acknowledges, codec = request.get("ack", False), request.get("codec", "jpeg")
        if not isinstance(acknowledges, bool):
            return self.error("ack must be true or false")
        if codec not in CODECS:
            return self.error(f"codec must be {' or '.join(CODECS)}, not {str(codec)[:40]!r}")
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
        if codec == "h264":
            feed, mime = self._h264_feed(camera)
            if feed is not None:        # mime: None until the encoder's first segment (which tells it too)
                subscription = self._subscriptions[camera.name] = _H264Subscription(
                    self, camera, leave, feed, self._broadcasts.h264_messages)
                self.send({"op": "subscribed", "camera": camera.name, "width": width, "height": height,
                           "codec": "h264", "mime": mime})
                return subscription.start()
        subscription = _Subscription(self, camera, leave, acknowledges)
        self._subscriptions[camera.name] = subscription
        self.send({"op": "subscribed", "camera": camera.name, "width": width, "height": height, "codec": "jpeg"})
        try:
            self._broadcasts.join(camera, subscription, self.spawn)
        except BaseException:
            self._subscriptions.pop(camera.name, None)
            subscription.stop()
            raise

    def _h264_feed(self, camera):
        """(a LiveFeed of the camera's H.264, its MSE type), or (None, None) after an error answer (the
        JPEG stream follows)."""
        try:
            if self._live_h264 is None:
                raise EncoderUnavailable("this server sends no H.264")
            live = self._live_h264(camera)
            return live.join(), live.mime
        except (EncoderUnavailable, KeyError) as error:     # KeyError: the camera was removed meanwhile
            self.error(f"{error}; JPEG frames follow", camera=camera.name, codec="h264")
            return None, None

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

    @property
    def out(self):
        return self._out

    def stalled(self):
        """Drop the client if a write has waited for it for more than SEND_TIMEOUT; answer whether it did."""
        if self._out.stalled():
            self.drop(f"it took nothing for {SEND_TIMEOUT:g} s")
            return True
        return False

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

    def close(self):
        """Stop every subscription and give their viewer places back."""
        self._closed = True
        subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        for subscription in subscriptions:
            subscription.stop()

    @property
    def closed(self):
        return self._closed

    @property
    def cameras(self):
        return list(self._subscriptions)


class Broadcasts:
    """The app's camera broadcasts: one per camera that has socket subscribers; and the messages of
    its cameras' live H.264, each built once for its viewers."""

    def __init__(self):
        self._broadcasts = {}           # camera name -> _Broadcast
        self._lock = threading.Lock()
        self.h264_messages = H264Messages()

    def join(self, camera, subscription, spawn):
        """Send ``subscription`` the camera's frames until it stops; ``spawn`` runs the camera's loop
        when it has none (a greenlet under gevent, else a thread)."""
        with self._lock:
            broadcast = self._broadcasts.get(camera.name)
            if broadcast is None or broadcast.camera is not camera:     # a camera added again under its name
                broadcast = self._broadcasts[camera.name] = _Broadcast(camera)
        broadcast.add(subscription, spawn)


class _Broadcast:
    """One camera's frames to every socket subscribed to it: one loop per camera, not one per viewer.

    For each frame the loop offers its message, built once, to each subscription in turn. A socket
    that takes it whole at once (the usual case: its send buffer has room for a few frames) costs
    one send call and no switch to another greenlet or thread. A socket that takes part of it gets a
    writer of its own (``spawn``) that finishes the message and then sends the newest frame for as
    long as the client is behind; meanwhile the loop skips it. So a slow client skips frames, holds
    no queue, and never holds up the others.
    """

    def __init__(self, camera):
        self.camera = camera
        self._subscriptions = {}        # _Subscription -> None, in the order they came
        self._lock = threading.Lock()
        self._running = False
        self._newest = (None, None)     # (frame, its message)

    def add(self, subscription, spawn):
        subscription.broadcast = self
        with self._lock:
            self._subscriptions[subscription] = None
            start, self._running = not self._running, True
        if start:
            try:
                spawn(lambda: self._run(spawn))
            except BaseException:
                with self._lock:
                    self._running = False
                raise

    def remove(self, subscription):
        with self._lock:
            self._subscriptions.pop(subscription, None)
        self.camera.hub.wake()          # the loop waits for frames without a timer: it ends now if it was the last

    def message(self, frame):
        """The frame's message, built once for every subscriber."""
        newest = self._newest
        if newest[0] is frame:
            return newest[1]
        message = binary_message(frame_header(self.camera.name, frame.seq, frame.timestamp) + frame.jpeg)
        self._newest = (frame, message)     # two builders at once build the same bytes
        return message

    def _idle(self):
        return not self._subscriptions

    def _run(self, spawn):
        while True:
            reason = self._send_frames(spawn)
            with self._lock:
                if reason is None and self._subscriptions:
                    continue            # one came as the last one left: go on
                ended, self._subscriptions, self._running = list(self._subscriptions), {}, False
                break
        for subscription in ended:      # telling a client may wait for its socket: not in this loop
            spawn(lambda subscription=subscription: subscription.end(reason))

    def _send_frames(self, spawn):
        """Offer each frame to the subscriptions until none is left (None) or the camera's frames end
        (answers why)."""
        try:
            for frame in self.camera.frames(timeout=None, until=self._idle, held=True):
                message = self.message(frame)
                for subscription in list(self._subscriptions):
                    subscription.offer(frame, message, spawn)
        except Exception:               # the loop's top level: log it, end the subscriptions
            log.exception("websocket broadcast of camera %s failed", self.camera.name)
            return "an error in the server (see its log)"
        return "the camera stopped" if self.camera.hub.closed else None


class _Subscription:
    """One camera on one socket, holding a viewer place (``leave`` gives it back): what it was sent
    and, with ``ack``, what the client has not acknowledged yet."""

    def __init__(self, session, camera, leave, acknowledges=False):
        self.session, self.camera, self._leave = session, camera, leave
        self.acknowledges = acknowledges
        self.broadcast = None           # set when it joins its camera's broadcast
        self._unacknowledged = 0
        self._count_lock = threading.Lock()
        self._stopped = False
        self._sent = None               # the sequence number of the frame sent last

    def acknowledged(self):
        with self._count_lock:
            self._unacknowledged = max(0, self._unacknowledged - 1)

    def _may_send(self):
        """Whether the client can take another frame now (else the next frame after its ack)."""
        return not self.acknowledges or self._unacknowledged < ACK_WINDOW

    def offer(self, frame, message, spawn):
        """The broadcast's loop: send this frame's message if the client can take it now."""
        if self._stopped or self.session.closed or not self._may_send():
            return
        out = self.session.out
        try:
            taken = out.start_write(message)
        except OSError as error:
            return self._failed(error)
        if taken is None:               # its writer, an answer or a ping is under way: a later frame
            return
        self._sent_one(frame)
        if taken < len(message):
            spawn(lambda: self._finish(memoryview(message)[taken:]))

    def _finish(self, rest):
        """The rest of a message the socket did not take at once, then the newest frames while the
        client is behind."""
        try:
            self.session.out.finish_write(rest, self._next_message)
        except OSError as error:
            self._failed(error)
        except Exception:               # the writer's top level: log it, end the connection
            log.exception("websocket writer of camera %s failed", self.camera.name)
            self.session.drop("an error in the server")

    def _next_message(self):
        """The message of the camera's newest frame if it was not sent yet and the client may have it."""
        frame = self.camera.hub.latest
        if (frame is None or self._stopped or self.session.closed or not self._may_send()
                or (self._sent is not None and frame.seq <= self._sent)):
            return None
        self._sent_one(frame)
        return self.broadcast.message(frame)

    def _sent_one(self, frame):
        if self.acknowledges:
            with self._count_lock:
                self._unacknowledged += 1
        self.session.count_sent(self.camera.name, self._sent, frame.seq)
        self._sent = frame.seq

    def _failed(self, error):
        self.session.drop(f"camera {self.camera.name}: sending failed: {error or type(error).__name__}")

    def stop(self):
        """The client unsubscribed or went: leave the broadcast and give the viewer place back."""
        self._stopped = True
        self._leave()
        if self.broadcast is not None:
            self.broadcast.remove(self)

    def end(self, reason):
        """The camera stopped: tell the client."""
        self._leave()
        self.session.subscription_ended(self, reason)


class _H264Subscription:
    """One camera's H.264 on one socket: a writer (``spawn``) that sends each segment and fragment of
    its LiveFeed as it comes. The feed skips to the next keyframe when the socket falls behind, so
    the writer never queues; each message is built once for every viewer (``H264Messages``)."""

    acknowledges = False

    def __init__(self, session, camera, leave, feed, messages):
        self.session, self.camera, self._leave, self._feed = session, camera, leave, feed
        self._messages = messages       # the app's H264Messages
        self._stopped = False

    def start(self):
        try:
            self.session.spawn(self._run)
        except BaseException:
            self.stop()
            raise

    def _run(self):
        reason = "the camera stopped"
        out, sent = self.session.out, None
        try:
            while not (self._stopped or self.session.closed):
                item = self._feed.next()
                if item is None:
                    break               # the feed ended: the camera or the encoder stopped for good
                out.send(self._messages.message(self.camera.name, item))
                if not item.is_init:
                    self.session.count_sent(self.camera.name, sent, item.seq)
                    sent = item.seq
        except OSError as error:        # the client went, or was dropped for a stalled write
            reason = f"sending failed: {error or type(error).__name__}"
            self.session.drop(f"camera {self.camera.name}: {reason}")
        except Exception:               # the writer's top level: log it, end this subscription alone
            reason = "an error in the server (see its log)"
            log.exception("websocket H.264 of camera %s failed", self.camera.name)
        finally:
            self._feed.close()
            self._leave()
            if not self._stopped:
                self.session.subscription_ended(self, reason)

    def stop(self):
        self._stopped = True
        self._feed.close()              # wakes the writer
        self._leave()


class H264Messages:
    """The message of each initialization segment and fragment, built once for every viewer of its
    camera. Kept by identity (two cameras of one size can make equal segments, which must not share a
    message: it names the camera), for the newest MAX_KEPT: a viewer further behind skips anyway."""

    MAX_KEPT = 128

    def __init__(self):
        self._messages = collections.OrderedDict()     # id(item) -> (item, its message)
        self._lock = threading.Lock()                   # held for a dict operation only, never across a switch

    def message(self, camera_name, item):
        with self._lock:
            cached = self._messages.get(id(item))
        if cached is not None and cached[0] is item:
            return cached[1]
        kind = KIND_MP4_INIT if item.is_init else KIND_MP4_FRAGMENT
        message = binary_message(frame_header(camera_name, item.seq, getattr(item, "timestamp", 0.0), kind) + item.data)
        with self._lock:
            self._messages[id(item)] = (item, message)
            while len(self._messages) > self.MAX_KEPT:
                self._messages.popitem(last=False)
        return message

