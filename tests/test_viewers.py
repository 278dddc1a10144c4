"""max_viewers: a viewer's place is taken when its stream is accepted and given back when it closes."""
import socket
import threading

import pytest

from camera_server.web.app import create_app, stop_services
from conftest import wait_for
from server_process import start_server, status, stop_server


@pytest.fixture
def three_viewer_app(settings):
    application = create_app(settings.replace(max_viewers=3))
    yield application
    stop_services(application)


def test_admit_viewer_counts_up_to_the_limit_and_each_place_is_given_back_once(fake_camera):
    places = [fake_camera.admit_viewer(3) for _ in range(4)]
    assert all(places[:3]) and places[3] is None
    assert (fake_camera.viewers, fake_camera.consumers) == (3, 3)
    places[0]()
    places[0]()                                  # a second call gives back nothing more
    assert (fake_camera.viewers, fake_camera.consumers) == (2, 2)
    assert fake_camera.admit_viewer(3) is not None and fake_camera.admit_viewer(3) is None


def test_a_burst_of_viewers_gets_exactly_the_limit(fake_camera):
    start = threading.Barrier(20)
    admitted = []

    def viewer():
        start.wait()
        admitted.append(fake_camera.admit_viewer(5))

    threads = [threading.Thread(target=viewer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sum(place is not None for place in admitted) == 5 and fake_camera.viewers == 5


def test_streams_count_when_accepted_even_if_never_read(three_viewer_app):
    client = three_viewer_app.test_client()
    camera = three_viewer_app.extensions["camera"]
    streams = [client.get("/video_feed", buffered=False) for _ in range(5)]     # none of them read
    try:
        assert sorted(stream.status_code for stream in streams) == [200, 200, 200, 503, 503]
        assert camera.viewers == 3
    finally:
        for stream in streams:
            stream.close()
    assert camera.viewers == 0
    again = [client.get("/video_feed", buffered=False) for _ in range(3)]
    try:
        assert [stream.status_code for stream in again] == [200, 200, 200]
    finally:
        for stream in again:
            stream.close()
    assert camera.viewers == 0 and camera.consumers == 0


def test_a_stream_read_and_closed_gives_its_place_back_once(three_viewer_app):
    client = three_viewer_app.test_client()
    camera = three_viewer_app.extensions["camera"]
    stream = client.get("/video_feed", buffered=False)
    chunks = iter(stream.response)
    next(chunks), next(chunks)                    # the boundary, then a frame
    stream.close()
    stream.close()
    assert camera.viewers == 0 and camera.consumers == 0
    head = client.head("/video_feed")                 # no body, but closed as a stream is
    assert head.status_code == 200 and camera.viewers == 1
    head.close()
    assert camera.viewers == 0


def open_stream(port):
    """A client that asks for the stream and never reads past the status line."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(b"GET /video_feed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return connection


def status_code(connection):
    line = b""
    while not line.endswith(b"\r\n"):
        line += connection.recv(1)
    return int(line.split()[1])


@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_a_burst_of_streams_on_the_real_server_gets_max_viewers(tmp_path, free_port, monkeypatch, worker):
    monkeypatch.setenv("WORKER_CLASS", worker)
    process = start_server(tmp_path, free_port, max_viewers=3)
    try:
        burst = [open_stream(free_port) for _ in range(5)]             # all sent before any answer is read
        assert sorted(status_code(connection) for connection in burst) == [200, 200, 200, 503, 503]
        assert status(free_port)["camera"]["viewers"] == 3
        for connection in burst:
            connection.close()
        assert wait_for(lambda: status(free_port)["camera"]["viewers"] == 0)
        again = [open_stream(free_port) for _ in range(3)]
        assert [status_code(connection) for connection in again] == [200, 200, 200]
        for connection in again:
            connection.close()
    finally:
        stop_server(process)


class RecordingSocket:
    def __init__(self):
        self.options = {}

    def setsockopt(self, level, name, value):
        self.options[(level, name)] = value


def test_a_viewer_s_send_buffer_holds_a_few_frames_not_megabytes(client):
    """A viewer slower than the camera then skips frames instead of reading seconds-old ones out of
    the kernel's buffer (bench/bench_slow_viewer.py measures it on the real server)."""
    connection = RecordingSocket()
    response = client.get("/video_feed", buffered=False, environ_base={"gunicorn.socket": connection})
    response.close()
    size = connection.options[(socket.SOL_SOCKET, socket.SO_SNDBUF)]
    assert 64 * 1024 <= size <= 256 * 1024
