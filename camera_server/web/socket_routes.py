"""/ws: the WebSocket stream (flask-sock), one socket per page for any number of cameras.

The wire format and what each connection does are in camera_server/stream/websocket.py, its
control messages in socket_controls.py; here the handshake is checked (the app's Host check and
login first, then the Origin, see auth.py) and the connection is given the right concurrency.
simple-websocket's Server reads in a background ``threading.Thread`` with a ``selectors`` selector
by default: under our gevent worker, which
patches nothing, the client's socket is a gevent socket that only the hub's thread may use, so there
the reader is a greenlet with gevent's Event and selector. Under the gthread worker and the
development server the socket is a plain one, read by a real thread.
"""
import collections.abc
import threading

from flask import Blueprint, current_app, request
from flask_sock import Sock

from camera_server.blocking import in_greenlet
from camera_server.stream.websocket import VERSION, Broadcasts, SerialSocket, Session
from camera_server.web import auth
from camera_server.web.socket_controls import SocketControls

PING_INTERVAL = 10.0            # s; a client that has not answered the last ping by the next is dropped
MAX_MESSAGE_BYTES = 64 * 1024   # simple-websocket closes a socket sending more; up to it, too long is an error answer
RECEIVE_TICK = 1.0              # s between the connection's checks that the server is stopping


class _ServerOptions(collections.abc.Mapping):
    """flask-sock's SOCK_SERVER_OPTIONS, read at each connection: gevent's reader for a greenlet."""

    def _options(self):
        options = {"ping_interval": PING_INTERVAL, "max_message_size": MAX_MESSAGE_BYTES}
        if in_greenlet():
            import gevent
            import gevent.event
            import gevent.selectors
            options.update(thread_class=lambda target: gevent.Greenlet(target), event_class=gevent.event.Event,
                           selector_class=gevent.selectors.GeventSelector)
        return options

    def __getitem__(self, key):
        return self._options()[key]

    def __iter__(self):
        return iter(self._options())

    def __len__(self):
        return len(self._options())


def init_app(app):
    app.config["SOCK_SERVER_OPTIONS"] = _ServerOptions()
    app.extensions["websocket_broadcasts"] = Broadcasts()
    app.register_blueprint(_create_socket_blueprint())


def _before_handshake():
    auth.refuse_foreign_origin()
    # No permessage-deflate: JPEG does not shrink, and deflating each frame once per client would
    # cost more than everything else. simple-websocket accepts it whenever the client offers it
    # (browsers always do), so the offer is taken out of the request it reads.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def _spawn(function):
    """Run ``function`` beside the connection: a greenlet under gevent, else a daemon thread."""
    if in_greenlet():
        import gevent
        return gevent.spawn(function)
    thread = threading.Thread(target=function, name="websocket-writer", daemon=True)
    thread.start()
    return thread


def _new_lock():
    if in_greenlet():
        import gevent.lock
        return gevent.lock.Semaphore()
    return threading.Lock()


def _server_stopping():
    extensions = current_app.extensions
    return extensions.get("stopped") or extensions["stopping"].locked()


def _create_socket_blueprint():
    blueprint = Blueprint("socket", __name__)
    blueprint.before_request(_before_handshake)
    sock = Sock()

    @sock.route("/ws", bp=blueprint)
    def stream_socket(ws):
        out = SerialSocket(ws.sock, _new_lock(), gevent=in_greenlet())
        ws.sock = out                   # simple-websocket's own writes (pings, pongs, close) go through it too
        registry = current_app.extensions["cameras"]

        def camera(name):
            return (registry.default if name is None else registry.get(name)).camera

        def live_h264(camera):
            return registry.get(camera.name).live_h264

        session = Session(camera, out, _spawn, current_app.config["SETTINGS"].max_viewers,
                          current_app.extensions["websocket_broadcasts"],
                          current_app.extensions["metrics"].count_sent, live_h264=live_h264)
        session.control = SocketControls(_spawn, session.send)
        session.send({"op": "hello", "version": VERSION, "cameras": registry.names, "default": registry.default.name})
        try:
            while not session.closed:
                message = ws.receive(timeout=RECEIVE_TICK)
                if message is not None:
                    session.receive(message)
                elif session.stalled():
                    break
                elif _server_stopping():
                    ws.close(reason=1001, message="the server is stopping")
                    break
        finally:
            session.close()

    return blueprint
