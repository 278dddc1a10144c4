"""gunicorn's workers for the camera server: gevent without monkey-patching, and both of them stopping
the server's services as soon as they are asked to stop.

gunicorn's gevent worker patches the whole standard library (threads, queues, sockets, select,
time) for the whole process. Our blocking work (the camera, the recorder, the scene watch, the
serial board, MQTT and webhooks) runs in native threads, which must keep the real primitives: a
gevent queue or socket shared between native threads fails. So this worker patches nothing: its
listening and client sockets are gevent sockets, each request is a greenlet, and viewers wait for
frames through the FrameHub, which wakes greenlets through the hub's thread-safe async watcher.

On SIGTERM (``systemctl stop``) a worker waits up to graceful_timeout for its open requests before
it exits, and a stream never ends by itself: the master used to kill the worker before worker_exit
finished the recording. So the services stop at once, in a thread of their own: the camera ends the
streams, the recording is finished, and worker_exit only waits for that.
"""
import threading

from gevent import socket
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker


class _StopsServicesAtOnce:
    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        application = getattr(self, "wsgi", None)
        if application is not None:
            from camera_server.web.app import stop_services
            threading.Thread(target=stop_services, args=(application,), name="stop-services",
                             daemon=True).start()


class CameraGeventWorker(_StopsServicesAtOnce, GeventWorker):
    def patch(self):
        # What GeventWorker.patch() does after patch_all(): hand the listening sockets to gevent.
        self.sockets = [socket.socket(listener.FAMILY, socket.SOCK_STREAM, fileno=listener.sock.detach())
                        for listener in self.sockets]


class CameraThreadWorker(_StopsServicesAtOnce, ThreadWorker):
    pass
