"""gunicorn's gevent worker without monkey-patching.

gunicorn's gevent worker patches the whole standard library (threads, queues, sockets, select,
time) for the whole process. Our blocking work (the camera, the recorder, the scene watch, the
serial board, MQTT and webhooks) runs in native threads, which must keep the real primitives: a
gevent queue or socket shared between native threads fails. So this worker patches nothing: its
listening and client sockets are gevent sockets, each request is a greenlet, and viewers wait for
frames through the FrameHub, which wakes greenlets through the hub's thread-safe async watcher.
"""
from gevent import socket
from gunicorn.workers.ggevent import GeventWorker


class CameraGeventWorker(GeventWorker):
    def patch(self):
        # What GeventWorker.patch() does after patch_all(): hand the listening sockets to gevent.
        self.sockets = [socket.socket(listener.FAMILY, socket.SOCK_STREAM, fileno=listener.sock.detach())
                        for listener in self.sockets]
