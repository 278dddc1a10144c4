"""What the fake cameras (fake_tapo, fake_onvif) share: an HTTP server on 127.0.0.1 in a thread."""
import http.server
import threading


class QuietServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server that says nothing of a client that gave up (on a slow answer, a handshake)."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class BackgroundServer:
    """A fake camera's server: ``serve(server)`` in __init__, then start() and stop()."""

    def serve(self, server):
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
