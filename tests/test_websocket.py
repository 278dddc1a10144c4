"""/ws: JPEG frames over one WebSocket per page, against the real server (gunicorn's gevent and gthread
workers, the development server) and a real client (websocket-client, which reads the socket only
when asked, so a test can be a slow client)."""
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest
import websocket
from werkzeug.serving import make_server

from camera_server.stream import websocket as wire
from camera_server.web.app import create_app, stop_services
from conftest import ROOT, wait_for
from fake_onvif import FakeOnvif
from server_process import status, stop_server

USERKEY = "sesame"
CAMERAS = {"front": (320, 240), "back": (160, 120)}


def write_config(folder, port, **settings):
    settings = {"host": "127.0.0.1", "port": port, "media_dir": folder / "media", "log_file": folder / "flask.log",
                "idle_timeout": 0.5, **settings}
    text = "[SETTINGS]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items())
    text += f"[KEYS]\nuserkey = {USERKEY}\n"
    for name, (width, height) in CAMERAS.items():
        text += f"[camera {name}]\ncamera = demo\nwidth = {width}\nheight = {height}\nfps = 30\n"
    (folder / "config.txt").write_text(text)
    return folder / "config.txt"


@contextlib.contextmanager
def gunicorn(folder, port, worker="gevent", **settings):
    environment = dict(os.environ, CONFIG_FILE=str(write_config(folder, port, **settings)), WORKER_CLASS=worker)
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:main_app()"],
                               cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if not wait_for(lambda: _answers(port), timeout=60):
            raise RuntimeError(f"server did not start:\n{stop_server(process)}")
        yield port
    finally:
        output = stop_server(process)
    assert "Traceback" not in output, output
    assert "Traceback" not in (folder / "flask.log").read_text()


def _answers(port):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers={"X-User-Key": USERKEY})
    try:
        with urllib.request.urlopen(request, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ws")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with gunicorn(folder, port, max_viewers=200) as port:
        yield port


def connect(port, **options):
    """A client that has read the server's hello."""
    client = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=10, **options)
    hello = json.loads(client.recv())
    assert hello["op"] == "hello" and hello["version"] == wire.VERSION
    return client


def send(client, **message):
    client.send(json.dumps(message))


def next_text(client):
    """The next text message, skipping frames."""
    while True:
        message = client.recv()
        if isinstance(message, str):
            return json.loads(message)


def next_frame(client):
    """(camera, seq, capture time, jpeg) of the next binary message, skipping text."""
    while True:
        message = client.recv()
        if isinstance(message, bytes):
            name, seq, timestamp, start = wire.parse_frame_header(message)
            return name, seq, timestamp, message[start:]


def control(client, action, **members):
    """Send a control; its answer (the result or error whose id is this control's), skipping the rest."""
    message_id = f"c{time.monotonic_ns()}"
    send(client, op="control", action=action, id=message_id, **members)
    while True:
        answer = next_text(client)
        if answer.get("id") == message_id:
            return answer


def page_token(port):
    """The control token the live page carries."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return re.search(r'name="control-token" content="([^"]+)"', response.read().decode()).group(1)


def subscribe(client, camera=None, **options):
    send(client, op="subscribe", **({"camera": camera} if camera else {}), **options)
    answer = next_text(client)
    assert answer["op"] == "subscribed", answer
    return answer


# -- the wire format, without a server -----------------------------------------------------------

def test_frame_header_round_trip_and_layout():
    header = wire.frame_header("front", 7, 1234.5)
    assert header == bytes([1, 5]) + b"front" + (7).to_bytes(8, "big") + np.array([1234.5], ">f8").tobytes()
    assert wire.parse_frame_header(header + b"JPEG") == ("front", 7, 1234.5, len(header))
    with pytest.raises(ValueError):
        wire.frame_header("x" * 33, 1, 0.0)
    with pytest.raises(wire.FrameHeaderError):
        wire.parse_frame_header(b"\x02\x05front")


def test_a_frame_message_is_built_once_per_frame_and_shared():
    class Frame:
        def __init__(self, seq):
            self.seq, self.timestamp, self.jpeg = seq, 1.0, b"\xff\xd8" + bytes(300) + b"\xff\xd9"
    broadcast = wire._Broadcast(_FakeCamera("front"))
    frame = Frame(1)
    first = broadcast.message(frame)
    assert broadcast.message(frame) is first                                # every client sends these bytes
    assert first[:4] == bytes([0x82, 126]) + (len(first) - 4).to_bytes(2, "big")   # FIN, binary, 16-bit length
    assert first.endswith(frame.jpeg)
    assert broadcast.message(Frame(1)) is not first                         # another frame of the same number


class _FakeCamera:
    def __init__(self, name):
        self.name, self.places = name, 0

    def admit_viewer(self, limit):
        self.places += 1
        return lambda: None

    def status(self):
        return {"resolution": [64, 48]}

    def frames(self, **options):
        return iter(())


class _Answers:
    def __init__(self):
        self.sent = []

    def send(self, data):
        self.sent.append(json.loads(data[2:] if data[1] < 126 else data[4:]))


def test_one_socket_may_watch_at_most_64_cameras():
    cameras = {f"cam{index}": _FakeCamera(f"cam{index}") for index in range(wire.MAX_SUBSCRIPTIONS + 1)}
    answers = _Answers()
    session = wire.Session(lambda name: cameras[name], answers, lambda function: None, 10, wire.Broadcasts())
    for name in cameras:
        session.receive(json.dumps({"op": "subscribe", "camera": name}))
    assert [answer["op"] for answer in answers.sent].count("error") == 1
    assert "at most 64" in answers.sent[-1]["message"]
    assert cameras[f"cam{wire.MAX_SUBSCRIPTIONS}"].places == 0


def test_a_client_that_takes_nothing_is_dropped_once_a_write_waited_send_timeout(monkeypatch):
    monkeypatch.setattr(wire, "SEND_TIMEOUT", 0.2)
    server_end, client_end = socket.socketpair()        # the client never reads
    with server_end, client_end:
        out = wire.SerialSocket(server_end, threading.Lock())
        session = wire.Session(lambda name: None, out, lambda function: None, 10, wire.Broadcasts())
        failed = []

        def write_forever():
            try:
                while True:
                    out.send(wire.binary_message(bytes(64 * 1024)))
            except OSError as error:
                failed.append(error)
        writer = threading.Thread(target=write_forever, daemon=True)
        writer.start()
        assert wait_for(session.stalled, timeout=10)    # the connection's loop asks this every second
        assert session.closed
        writer.join(5)
        assert failed and not writer.is_alive()         # the blocked write ended with the connection


def test_a_camera_without_an_h264_encoder_gets_an_error_and_jpeg_frames():
    from camera_server.stream.h264 import EncoderUnavailable

    class NoEncoder:
        def join(self):
            raise EncoderUnavailable("camera front has no live H.264: no H.264 encoder works")

    camera, answers, started = _FakeCamera("front"), _Answers(), []
    session = wire.Session(lambda name: camera, answers, started.append, 10, wire.Broadcasts(),
                           live_h264=lambda camera: NoEncoder())
    session.receive(json.dumps({"op": "subscribe", "codec": "h264", "ack": True}))
    error, subscribed = answers.sent
    assert error["op"] == "error" and error["codec"] == "h264" and "no H.264 encoder works" in error["message"]
    assert subscribed["op"] == "subscribed" and subscribed["codec"] == "jpeg"
    assert camera.places == 1 and session.cameras == ["front"]
    session.receive(json.dumps({"op": "subscribe", "camera": "back", "codec": "vp9"}))
    assert answers.sent[-1]["op"] == "error" and "codec must be jpeg or h264" in answers.sent[-1]["message"]


def test_equal_h264_segments_of_two_cameras_each_get_a_message_that_names_their_camera():
    from camera_server.stream.h264 import InitSegment
    segments = [InitSegment(1, 1, b"ftyp-moov", 'video/mp4; codecs="avc1.4D4015"', 160, 120, "libx264")
                for _ in range(2)]
    assert segments[0] == segments[1]                   # two cameras of one size and settings
    cache = wire.H264Messages()
    messages = [cache.message(name, segment) for name, segment in zip(("cam0", "cam4"), segments)]
    assert [wire.parse_frame_header(message[2:])[0] for message in messages] == ["cam0", "cam4"]
    assert cache.message("cam0", segments[0]) is messages[0]                   # built once


# -- the real server (gevent) --------------------------------------------------------------------

def test_frames_carry_the_header_and_the_jpeg_the_stream_sends(server):
    client = connect(server)
    try:
        assert subscribe(client) == {"op": "subscribed", "camera": "front", "width": 320, "height": 240, "codec": "jpeg"}
        frames = [next_frame(client) for _ in range(10)]
    finally:
        client.close()
    seqs = [seq for _, seq, _, _ in frames]
    assert seqs == sorted(set(seqs))
    for name, _, timestamp, jpeg in frames:
        assert name == "front" and abs(time.time() - timestamp) < 10
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)


def test_one_socket_carries_two_cameras_and_unsubscribe_stops_one(server):
    client = connect(server)
    try:
        subscribe(client, "front")
        assert subscribe(client, "back")["width"] == 160
        seen = {next_frame(client)[0] for _ in range(20)}
        assert seen == {"front", "back"}
        send(client, op="unsubscribe", camera="back")
        assert next_text(client) == {"op": "unsubscribed", "camera": "back"}
        after = [next_frame(client)[0] for _ in range(20)]
        assert set(after) == {"front"}
        send(client, op="ping")
        assert next_text(client)["op"] == "pong"
    finally:
        client.close()


def test_socket_viewers_count_in_status_and_leave_with_their_socket(server):
    clients = [connect(server) for _ in range(3)]
    try:
        for client in clients:
            subscribe(client, "back")
            next_frame(client)
        assert status(server)["cameras"]["back"]["camera"]["viewers"] == 3
        send(clients[0], op="unsubscribe", camera="back")
        assert wait_for(lambda: status(server)["cameras"]["back"]["camera"]["viewers"] == 2)
    finally:
        for client in clients:
            client.close()
    assert wait_for(lambda: status(server)["cameras"]["back"]["camera"]["viewers"] == 0)


def test_fifty_clients_at_once_each_get_frames(server):
    received, failures = [], []

    def viewer():
        try:
            client = connect(server)
            try:
                subscribe(client, "back")
                received.append([next_frame(client)[1] for _ in range(15)])
            finally:
                client.close()
        except Exception as error:          # reported below with the others
            failures.append(repr(error))

    threads = [threading.Thread(target=viewer) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and len(received) == 50
    assert all(seqs == sorted(set(seqs)) for seqs in received)


def test_a_slow_client_that_acknowledges_skips_frames_while_a_fast_one_gets_them_all(server):
    fast = connect(server)
    slow = connect(server)
    try:
        subscribe(fast, "front")
        subscribe(slow, "front", ack=True)
        counts, slow_seqs = {"fast": 0}, []
        stop = time.monotonic() + 4

        def read_fast():
            while time.monotonic() < stop:
                next_frame(fast)
                counts["fast"] += 1

        reader = threading.Thread(target=read_fast)
        reader.start()
        while time.monotonic() < stop:
            slow_seqs.append(next_frame(slow)[1])
            time.sleep(0.5)                     # draws two frames a second
            send(slow, op="ack", camera="front")
        reader.join(10)
    finally:
        fast.close()
        slow.close()
    assert counts["fast"] >= 5 * len(slow_seqs)
    # It skipped: at most ACK_WINDOW frames were on their way, so each one it reads is recent.
    assert min(b - a for a, b in zip(slow_seqs[wire.ACK_WINDOW:], slow_seqs[wire.ACK_WINDOW + 1:])) > 3


def test_a_client_that_reads_slowly_only_slows_itself(server):
    """Without acks the socket's own pace holds it back; the fast client keeps its frames."""
    fast = connect(server)
    slow = connect(server, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    try:
        subscribe(fast, "front")
        subscribe(slow, "front")
        time.sleep(3)                           # the slow client reads nothing; the server's sends wait
        started = next_frame(fast)[1]
        fast_seqs = [next_frame(fast)[1] for _ in range(30)]
        assert fast_seqs[-1] - started <= 40    # about one second of frames, all in turn
        assert status(server)["cameras"]["front"]["camera"]["viewers"] == 2
    finally:
        fast.close()
        slow.close()


def test_bad_messages_get_an_error_and_the_socket_and_the_others_go_on(server):
    other = connect(server)
    client = connect(server)
    try:
        subscribe(other, "back")
        bad = [b"\x00binary", "x" * 5000, "not json", "[1, 2]", json.dumps({"op": "dance"}), json.dumps({"op": 5}),
               json.dumps({"op": "subscribe", "camera": "nowhere"}), json.dumps({"op": "subscribe", "camera": 7}),
               json.dumps({"op": "unsubscribe", "camera": "front"})]
        for message in bad:
            if isinstance(message, bytes):
                client.send_binary(message)
            else:
                client.send(message)
            answer = next_text(client)
            assert answer["op"] == "error" and answer["message"], message
        assert "front" in next_text_of_unknown(client)
        subscribe(client, "front")
        send(client, op="subscribe", camera="front")          # twice
        assert next_text(client)["op"] == "error"
        assert next_frame(client)[0] == "front"
        assert next_frame(other)[0] == "back"                   # the other client never noticed
    finally:
        other.close()
        client.close()


def next_text_of_unknown(client):
    """The error an unknown camera gets: it lists the cameras."""
    send(client, op="subscribe", camera="nowhere")
    return next_text(client)["message"]


def test_another_sites_origin_is_refused_before_the_upgrade(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{server}/ws", timeout=5, origin="http://evil.example")
    assert refused.value.status_code == 403
    for origin in (f"http://127.0.0.1:{server + 1}", f"https://127.0.0.1:{server}", "null"):
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(f"ws://127.0.0.1:{server}/ws", timeout=5, origin=origin)
    connect(server, origin=f"http://127.0.0.1:{server}").close()         # the server's own page
    with pytest.raises(websocket.WebSocketBadStatusException) as foreign_host:
        websocket.create_connection(f"ws://127.0.0.1:{server}/ws", timeout=5, host="evil.example")
    assert foreign_host.value.status_code == 400


def test_no_compression_is_negotiated(server):
    client = websocket.create_connection(f"ws://127.0.0.1:{server}/ws", timeout=5,
                                         header=["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
    try:
        assert "sec-websocket-extensions" not in {name.lower() for name in client.getheaders()}
    finally:
        client.close()


# -- login, the other workers ---------------------------------------------------------------------

def test_with_require_login_the_socket_needs_a_login_or_the_userkey(tmp_path, free_port):
    with gunicorn(tmp_path, free_port, require_login="true") as port:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5)
        assert refused.value.status_code == 401
        client = connect(port, header=[f"X-User-Key: {USERKEY}"])
        try:
            subscribe(client)
            assert next_frame(client)[0] == "front"
        finally:
            client.close()
        with pytest.raises(websocket.WebSocketBadStatusException) as cross_site:
            websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5, header=[f"X-User-Key: {USERKEY}"],
                                        origin="http://evil.example")
        assert cross_site.value.status_code == 403


def test_the_gthread_worker_streams_over_the_socket(tmp_path, free_port):
    with gunicorn(tmp_path, free_port, worker="gthread") as port:
        client = connect(port)
        try:
            subscribe(client, "back")
            seqs = [next_frame(client)[1] for _ in range(10)]
        finally:
            client.close()
        assert seqs == sorted(set(seqs))
        assert wait_for(lambda: status(port)["cameras"]["back"]["camera"]["viewers"] == 0)


def test_the_development_server_streams_over_the_socket(settings, free_port):
    app = create_app(settings)
    server = make_server("127.0.0.1", free_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        client = connect(free_port)
        try:
            subscribe(client)
            name, _, _, jpeg = next_frame(client)
            assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
            assert app.extensions["camera"].viewers == 1
        finally:
            client.close()
        assert wait_for(lambda: app.extensions["camera"].viewers == 0)
    finally:
        server.shutdown()
        thread.join(5)
        stop_services(app)


# -- controls over the socket ----------------------------------------------------------------------

def test_a_control_needs_the_pages_token_and_a_refused_one_never_reaches_the_camera(server):
    token = page_token(server)
    client = connect(server)
    try:
        for members in ({}, {"token": "wrong"}, {"token": ""}, {"token": 7}):
            answer = control(client, "grayscale", camera="back", state="on", **members)
            assert answer["op"] == "error" and answer["status"] == 403, members
            assert "control token" in answer["message"]
        assert control(client, "grayscale", camera="nowhere")["status"] == 403     # the right comes first
        assert not status(server)["cameras"]["back"]["camera"]["grayscale"]

        answer = control(client, "grayscale", camera="back", state="on", token=token)
        assert answer["op"] == "result" and answer["status"] == 200 and answer["body"] == {"grayscale": True}
        assert status(server)["cameras"]["back"]["camera"]["grayscale"]
        assert control(client, "grayscale", camera="back", token=token)["body"] == {"grayscale": False}  # toggles

        unknown = control(client, "dance", camera="back", token=token)
        assert unknown["op"] == "error" and unknown["status"] == 400 and "ptz/move" in unknown["message"]
        nowhere = control(client, "grayscale", camera="nowhere", token=token)
        assert nowhere["status"] == 404 and "front" in nowhere["message"]
        assert control(client, "grayscale", camera="back", state="sideways", token=token)["status"] == 400
        assert control(client, "ptz/move", camera="back", direction="up", token=token)["status"] == 409  # no ptz
        send(client, op="control", action="grayscale", id=[1], token=token)
        assert next_text(client)["status"] == 400
        send(client, op="control", action="grayscale", camera="back", id=12, token=token, state="off")
        assert next_text(client) == {"op": "result", "id": 12, "status": 200, "body": {"grayscale": False}}
    finally:
        client.close()


def test_a_socket_opened_with_the_userkey_controls_without_the_token(server):
    client = connect(server, header=[f"X-User-Key: {USERKEY}"])
    stranger = connect(server, header=["X-User-Key: not-the-key"])
    try:
        assert control(stranger, "resolution", camera="back", state="on")["status"] == 403
        assert not status(server)["cameras"]["back"]["camera"]["half_resolution"]
        assert control(client, "resolution", camera="back", state="on")["body"] == {"half_resolution": True}
        assert control(client, "resolution", camera="back", state="off")["body"] == {"half_resolution": False}
    finally:
        client.close()
        stranger.close()


def test_record_snapshot_and_motion_over_the_socket_while_the_frames_go_on(server):
    token = page_token(server)
    client = connect(server)
    try:
        subscribe(client, "back", ack=True)
        started = control(client, "record/start", camera="back", filename="socket-clip", token=token)
        assert started["status"] == 200 and started["body"]["file"] == "socket-clip.mp4", started
        assert control(client, "record/start", camera="back", token=token)["status"] == 409     # one runs
        assert status(server)["cameras"]["back"]["recording"]["recording"]
        seqs = []
        for _ in range(20):                     # frames keep coming while the camera records
            seqs.append(next_frame(client)[1])
            send(client, op="ack", camera="back")
        stopped = control(client, "record/stop", camera="back", token=token)
        assert stopped["status"] == 200 and stopped["body"]["file"] == "socket-clip.mp4" and stopped["body"]["frames"] > 0
        assert control(client, "record/stop", camera="back", token=token)["status"] == 409     # none runs

        snapshot = control(client, "snapshot", camera="back", filename="socket-still", token=token)
        assert snapshot["body"]["file"] == "socket-still.jpg"
        assert control(client, "snapshot", camera="back", filename="../up", token=token)["status"] == 400
        with urllib.request.urlopen(f"http://127.0.0.1:{server}/get_database?camera=back", timeout=5) as response:
            files = {entry["filename"] for entry in json.load(response)}
        assert {"socket-clip.mp4", "socket-still.jpg"} <= files

        assert control(client, "motion/start", camera="back", token=token)["body"]["on"] is True
        assert status(server)["cameras"]["back"]["motion"]["on"]
        assert control(client, "motion/stop", camera="back", token=token)["body"]["on"] is False
        assert not status(server)["cameras"]["back"]["motion"]["on"]
    finally:
        client.close()


@pytest.fixture
def onvif_server(tmp_path, free_port):
    """The development server with one demo camera whose PTZ is a fake ONVIF camera; (port, camera)."""
    camera = FakeOnvif(password="onvif-secret").start()
    config = tmp_path / "config.txt"
    config.write_text(f"[SETTINGS]\nmedia_dir = {tmp_path / 'media'}\nlog_file = {tmp_path / 'flask.log'}\n"
                      f"idle_timeout = 0.5\n[KEYS]\nuserkey = {USERKEY}\n[camera gate]\ncamera = demo\nptz = onvif\n"
                      f"ptz_host = 127.0.0.1\nptz_port = {camera.port}\nptz_username = operator\n"
                      "ptz_password = onvif-secret\n")
    from camera_server.settings import load_settings
    app = create_app(load_settings(config, environ={}))
    http_server = make_server("127.0.0.1", free_port, app, threaded=True)
    thread = threading.Thread(target=http_server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield free_port, camera
    http_server.shutdown()
    thread.join(5)
    stop_services(app)
    camera.stop()


def test_pan_tilt_zoom_over_the_socket_reaches_the_camera_as_the_routes_do(onvif_server):
    port, camera = onvif_server
    client = connect(port, header=[f"X-User-Key: {USERKEY}"])
    try:
        assert control(client, "ptz/move", direction="down-left", speed=0.5)["body"] == {"moving": True}
        assert control(client, "ptz/stop")["status"] == 200
        assert control(client, "ptz/zoom", direction="out")["status"] == 200
        assert control(client, "ptz/home")["body"] == {"home": True}
        assert control(client, "ptz/preset/goto", preset="gate")["status"] == 200
        for bad in ({"direction": "sideways"}, {"direction": "up", "pan": 1}, {"pan": 2}, {"pan": True},
                    {"pan": 0.5, "speed": -1}, {}):
            answer = control(client, "ptz/move", **bad)
            assert answer["op"] == "error" and answer["status"] == 400, bad
        assert control(client, "ptz/preset/goto", preset="")["status"] == 400
        saved = control(client, "ptz/preset/save", name="drive way")
        assert saved["status"] == 200, saved
        names = [preset["name"] for preset in control(client, "ptz/presets")["body"]["presets"]]
        assert "drive way" in names and "drive way" in camera.presets.values()
        assert control(client, "ptz/preset/delete", preset="drive way")["status"] == 200
        assert "drive way" not in camera.presets.values()
        for bad in ({"name": ""}, {"name": "x" * 200}, {"name": 5}, {}):
            assert control(client, "ptz/preset/save", **bad)["status"] == 400, bad
        assert control(client, "ptz/privacy", state="on")["status"] == 409        # ONVIF has no privacy mode
        assert control(client, "ptz/privacy")["status"] == 400
        assert camera.moves == [("continuous", -0.5, -0.5, 0.0), ("stop",), ("continuous", 0.0, 0.0, -1.0),
                                ("home",), ("preset", "2")]
    finally:
        client.close()

    # Seed 004's page of this camera has the pad beside the socket's picture.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cam/gate/remote", timeout=5) as response:
        page = response.read().decode()
    assert 'id="ptz-pad"' in page and 'id="stream-canvas"' in page and "remote.js" in page


def _h264_messages(client, count):
    """The kinds and payloads of the next ``count`` binary messages (H.264 segments and fragments)."""
    messages = []
    while len(messages) < count:
        message = client.recv()
        if isinstance(message, bytes):
            name, seq, timestamp, start = wire.parse_frame_header(message)
            messages.append((message[0], seq, timestamp, message[start:]))
    return messages


def test_h264_over_the_socket_decodes_and_a_late_joiner_starts_at_a_keyframe(server):
    import io

    import av
    first = connect(server)
    late = None
    try:
        answer = subscribe(first, "front", codec="h264")
        assert answer["codec"] == "h264"
        messages = _h264_messages(first, 45)
        assert [kind for kind, *_ in messages[:2]] == [wire.KIND_MP4_INIT, wire.KIND_MP4_FRAGMENT]
        assert all(kind == wire.KIND_MP4_FRAGMENT for kind, *_ in messages[1:])
        seqs = [seq for _, seq, _, _ in messages[1:]]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))            # each fragment, in order
        assert all(abs(timestamp - time.time()) < 10 for _, _, timestamp, _ in messages[1:])
        with av.open(io.BytesIO(b"".join(payload for *_, payload in messages))) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 44 and (frames[0].width, frames[0].height) == CAMERAS["front"]

        late = connect(server)                          # one encoder for both: the late one starts at a keyframe
        assert subscribe(late, "front", codec="h264")["mime"].startswith('video/mp4; codecs="avc1.')
        init, fragment = _h264_messages(late, 2)
        assert init[0] == wire.KIND_MP4_INIT and init[3] == messages[0][3]       # the same run's segment
        with av.open(io.BytesIO(init[3] + fragment[3])) as container:
            packet = next(container.demux(video=0))
            assert packet.is_keyframe
        assert status(server)["cameras"]["front"]["camera"]["viewers"] == 2
    finally:
        first.close()
        if late is not None:
            late.close()
    assert wait_for(lambda: status(server)["cameras"]["front"]["camera"]["viewers"] == 0)
