"""gunicorn's gevent worker without patching threads.

The camera, serial and timer threads stay native threads, so a blocking device read never stalls
the event loop; only sockets and the like become cooperative. Viewers (greenlets) are woken by the
FrameHub through the hub's thread-safe async watcher.
"""
from gevent import monkey, socket
from gunicorn.workers.ggevent import GeventWorker


class CameraGeventWorker(GeventWorker):
    def patch(self):
        monkey.patch_all(thread=False)
        # As GeventWorker.patch() does: hand the listening sockets to gevent.
        self.sockets = [socket.socket(listener.FAMILY, socket.SOCK_STREAM, fileno=listener.sock.detach())
                        for listener in self.sockets]
