"""light_routes.py on a small app of its own, with the Led talking to the board emulator."""
import json
import queue
import subprocess
import sys
import threading
import types

import pytest
from flask import Flask, abort, current_app, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from camera_server.board.emulator import BoardEmulator
from camera_server.board.light_model import Color
from camera_server.board.trinket import Led
from camera_server.web.light_routes import create_light_blueprint
from conftest import CHROMIUM_FLAGS, ROOT, chromium_path, wait_for

WAIT = 5.0
TOKEN = {"X-Control-Token": "t"}


def contract_auth_module():
    """auth's contract (X-Control-Token header or control_token field), if auth.py is not there."""
    module = types.ModuleType("auth")

    def require_control(view):
        def wrapper(*args, **kwargs):
            given = request.headers.get("X-Control-Token") or request.form.get("control_token")
            if given != current_app.config["CONTROL_TOKEN"]:
                abort(403, description="controls need the control token")
            return view(*args, **kwargs)
        wrapper.__name__ = view.__name__
        return wrapper

    module.require_control = require_control
    return module


@pytest.fixture(autouse=True)
def auth_available(monkeypatch):
    try:
        from camera_server.web import auth  # noqa: F401  the real one
    except ImportError:
        monkeypatch.setitem(sys.modules, "camera_server.web.auth", contract_auth_module())


def json_error(error):
    response = jsonify(error=error.description)
    response.status_code = error.code
    return response


def make_client(get_led, keepalive_seconds=15.0, **options):
    app = Flask(__name__)
    app.config.update(CONTROL_TOKEN="t", USERKEY="")
    app.register_error_handler(HTTPException, json_error)
    app.register_blueprint(create_light_blueprint(get_led, keepalive_seconds=keepalive_seconds, **options))
    return app.test_client()


@pytest.fixture
def led(emulator, tmp_path):
    light = Led(emulator.port, by_id_dir=str(tmp_path)).start()
    assert emulator.wait_for_lines(1, WAIT)  # the state sent on connecting
    yield light
    light.stop()


@pytest.fixture
def client(led):
    return make_client(lambda: led)


def test_light_on_and_off(client, emulator):
    response = client.post("/light", data={"state": "on"}, headers=TOKEN)
    assert response.status_code == 200 and response.get_json()["on"] is True
    assert emulator.wait_for_lines(2, WAIT) and emulator.state.message.brightness == 128
    response = client.post("/light", data={"state": "off"}, headers=TOKEN)
    assert response.get_json()["on"] is False
    assert emulator.wait_for_lines(3, WAIT) and emulator.state.pixel == (0, 0, 0, 0)


def test_set_brightness_and_color(client, emulator):
    client.post("/light", data={"state": "on"}, headers=TOKEN)
    response = client.post("/set_brightness", data={"value": "40"}, headers=TOKEN)
    assert response.status_code == 200 and response.get_json()["brightness"] == 40
    response = client.post("/set_color", data={"color": "#00ff00"}, headers=TOKEN)
    assert response.status_code == 200 and response.get_json()["color"] == "00FF00"
    assert emulator.wait_for(lambda s: s.pixel == (0, 255, 0, 0) and s.message.brightness == 40, WAIT)
    response = client.post("/set_color", data={"color": "0A0B0C0D"}, headers=TOKEN)
    assert response.get_json()["color"] == "0A0B0C0D"
    assert emulator.wait_for(lambda s: s.pixel == (10, 11, 12, 13), WAIT)


def test_the_token_may_come_as_a_form_field(client):
    response = client.post("/light", data={"state": "on", "control_token": "t"})
    assert response.status_code == 200


def test_controls_without_the_token_are_refused_and_change_nothing(client, led):
    for path, data in (("/light", {"state": "on"}), ("/set_brightness", {"value": "9"}),
                       ("/set_color", {"color": "FF0000"})):
        response = client.post(path, data=data)
        assert response.status_code in (401, 403), path
        assert response.get_json()["error"]
        response = client.post(path, data=data, headers={"X-Control-Token": "wrong"})
        assert response.status_code in (401, 403), path
    assert not led.is_on and led.brightness == 128 and led.color.to_hex() == "FFFFFF"


@pytest.mark.parametrize("path, data, message", [
    ("/light", {"state": "maybe"}, "state must be 'on' or 'off'"),
    ("/light", {}, "missing parameter 'state'"),
    ("/light", {"state": " "}, "missing parameter 'state'"),
    ("/set_brightness", {"value": "256"}, "0 to 255"),
    ("/set_brightness", {"value": "-1"}, "0 to 255"),
    ("/set_brightness", {"value": "bright"}, "0 to 255"),
    ("/set_brightness", {"value": "²"}, "0 to 255"),
    ("/set_color", {"color": "#12345"}, "RRGGBB"),
    ("/set_color", {"color": "banana"}, "unknown colour"),
    ("/set_color", {}, "missing parameter 'color'"),
])
def test_bad_input_is_a_400_with_a_message(client, led, path, data, message):
    response = client.post(path, data=data, headers=TOKEN)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert not led.is_on and led.brightness == 128


@pytest.mark.parametrize("path, data, message", [
    ("/light", {"state": "x" * 10_000}, "state must be 'on' or 'off'"),
    ("/set_brightness", {"value": "9" * 10_000}, "0 to 255"),
    ("/set_color", {"color": "F" * 10_000}, "RRGGBB"),
    ("/set_color", {"color": "x" * 10_000}, "unknown colour"),
])
def test_a_huge_bad_input_is_not_echoed_back_whole(client, path, data, message):
    response = client.post(path, data=data, headers=TOKEN)
    error = response.get_json()["error"]
    assert response.status_code == 400 and message in error
    assert len(error) < 400 and "..." in error


def test_changes_are_post_only(client):
    assert client.get("/light?state=on").status_code == 405
    assert client.get("/set_color?color=FF0000").status_code == 405


def test_controller_data_has_the_light_and_the_heart_rate(client, led, emulator):
    data = client.get("/get_controller_data").get_json()
    assert data["connected"] is True and data["heart_rate"] is None and data["heart_rate_age_s"] is None
    assert data["color"] == "FFFFFF" and data["brightness"] == 128 and data["on"] is False
    emulator.send_line("66")
    assert led.wait_for_heart_rate(0, WAIT) == 1
    data = client.get("/get_controller_data").get_json()
    assert data["heart_rate"] == 66 and 0 <= data["heart_rate_age_s"] < 60


def test_controller_data_has_a_version_that_goes_up_with_each_change(client, led, emulator):
    """The page drops a control's answer that is older than a streamed event it already shows."""
    def version():
        return client.get("/get_controller_data").get_json()["version"]

    before = version()
    assert version() == before  # reading changes nothing
    after_power = client.post("/light", data={"state": "on"}, headers=TOKEN).get_json()["version"]
    assert after_power > before
    emulator.send_line("70")
    assert led.wait_for_heart_rate(0, WAIT) == 1
    assert version() > after_power


def test_heart_rate_history_has_the_last_minute(client, led, emulator):
    for sequence, bpm in enumerate((70, 71, 72), start=1):
        emulator.send_line(str(bpm))
        assert led.wait_for_heart_rate(sequence - 1, WAIT) == sequence
    body = client.get("/heart_rate_history").get_json()
    assert body["seconds"] == 60 and [s["bpm"] for s in body["samples"]] == [70, 71, 72]
    assert all(s["age_s"] >= 0 and s["t"] > 0 for s in body["samples"])
    assert client.get("/heart_rate_history?seconds=0").status_code == 400
    assert client.get("/heart_rate_history?seconds=61").status_code == 400


def parse_event(chunk):
    """The payload of one server-sent event, skipping retry lines."""
    text = chunk.decode()
    data = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    assert data, text
    return json.loads(data[0])


def read_event(chunks):
    return parse_event(next(chunks))


def test_heart_rate_stream_sends_new_heart_rates(led, emulator):
    client = make_client(lambda: led, keepalive_seconds=0.05)
    response = client.get("/heart_rate_stream", buffered=False)
    try:
        assert response.mimetype == "text/event-stream"
        chunks = iter(response.response)
        assert read_event(chunks)["heart_rate"] is None
        emulator.send_line("93")
        for _ in range(int(WAIT / 0.05) + 10):  # keepalive events until the new value shows
            if read_event(chunks)["heart_rate"] == 93:
                break
        else:
            pytest.fail("the heart rate never reached the stream")
    finally:
        response.close()


class EventStream:
    """/heart_rate_stream read in a thread, so a test can wait for an event with a time limit.

    The stream's keepalive is an hour: every event it sends is there because something changed.
    """

    def __init__(self, led):
        self._led = led
        self._events = queue.Queue()
        self._response = make_client(lambda: led, keepalive_seconds=3600).get("/heart_rate_stream",
                                                                               buffered=False)
        self._reader = threading.Thread(target=self._read, args=(iter(self._response.response),), daemon=True)
        self._reader.start()

    def _read(self, chunks):
        for chunk in chunks:  # ends when the Led stops
            self._events.put(parse_event(chunk))

    def next_where(self, predicate):
        """The first event (each within WAIT of the one before) for which predicate holds."""
        while True:
            try:
                event = self._events.get(timeout=WAIT)
            except queue.Empty:
                pytest.fail("the stream sent nothing after the change")
            if predicate(event):
                return event

    def close(self):
        self._led.stop()  # wakes and ends the stream, so it can be closed from here
        self._reader.join(WAIT)
        if not self._reader.is_alive():  # (a stream still waiting cannot be closed from here)
            self._response.close()


def test_heart_rate_stream_sends_light_changes_at_once(led):
    stream = EventStream(led)
    try:
        assert stream.next_where(lambda e: True)["on"] is False  # the first event, at once
        client = make_client(lambda: led)
        client.post("/light", data={"state": "on"}, headers=TOKEN)
        stream.next_where(lambda e: e["on"] is True)
        client.post("/set_brightness", data={"value": "40"}, headers=TOKEN)
        stream.next_where(lambda e: e["brightness"] == 40)
        client.post("/set_color", data={"color": "00FF00"}, headers=TOKEN)
        stream.next_where(lambda e: e["color"] == "00FF00")
    finally:
        stream.close()


def test_heart_rate_stream_tells_at_once_when_the_board_goes_and_comes_back(tmp_path):
    first = BoardEmulator(heart_rate=None).start()
    second = None
    tty = tmp_path / "ttyACM0"
    tty.symlink_to(first.port)
    led = Led(str(tty), by_id_dir=str(tmp_path / "no-by-id"), reconnect_initial=0.02, reconnect_max=0.05).start()
    stream = EventStream(led)
    try:
        assert stream.next_where(lambda e: True)["connected"] is True
        first.stop()  # unplugged
        stream.next_where(lambda e: e["connected"] is False)
        second = BoardEmulator(heart_rate=None).start()
        tty.unlink()
        tty.symlink_to(second.port)  # plugged in again
        stream.next_where(lambda e: e["connected"] is True)
    finally:
        stream.close()
        first.stop()
        if second is not None:
            second.stop()


def test_heart_rate_stream_refuses_clients_past_its_limit_until_one_leaves(led):
    client = make_client(lambda: led, keepalive_seconds=3600, max_streams=2)
    first, second = (client.get("/heart_rate_stream", buffered=False) for _ in range(2))
    try:
        assert read_event(iter(first.response))["version"] >= 0
        refused = client.get("/heart_rate_stream", buffered=False)      # (a stream would never end)
        assert refused.status_code == 503
        assert "poll /get_controller_data" in refused.get_json()["error"]
        assert client.get("/get_controller_data").status_code == 200
        second.close()                      # never read: it counts until closed all the same
        third = client.get("/heart_rate_stream", buffered=False)
        assert third.status_code == 200
        third.close()
    finally:
        first.close()
        second.close()


def test_no_light_configured_is_503_everywhere():
    client = make_client(lambda: None)
    for method, path, data in (("post", "/light", {"state": "on"}), ("post", "/set_brightness", {"value": "1"}),
                               ("post", "/set_color", {"color": "FF0000"}), ("get", "/get_controller_data", None),
                               ("get", "/heart_rate_history", None), ("get", "/heart_rate_stream", None)):
        response = getattr(client, method)(path, data=data, headers=TOKEN)
        assert response.status_code == 503, path
        assert "no light is configured" in response.get_json()["error"]


def test_unplugged_board_is_503_for_controls_but_readable(tmp_path):
    led = Led(str(tmp_path / "ttyACM0"), by_id_dir=str(tmp_path), reconnect_initial=60).start()
    try:
        client = make_client(lambda: led)
        response = client.post("/light", data={"state": "on"}, headers=TOKEN)
        assert response.status_code == 503
        assert "not connected" in response.get_json()["error"]
        data = client.get("/get_controller_data").get_json()
        assert data["connected"] is False and "ttyACM0" in data["error"]
    finally:
        led.stop()


def test_json_body_works_like_a_form(client, led):
    response = client.post("/set_brightness", json={"value": 12}, headers=TOKEN)
    assert response.status_code == 200 and led.brightness == 12
    response = client.post("/light", json={"state": "on"}, headers=TOKEN)
    assert response.status_code == 200 and led.is_on
    response = client.post("/set_color", json={"color": "00FF00"}, headers=TOKEN)
    assert response.status_code == 200 and led.color == Color(0, 255, 0)
    response = client.post("/set_color", json={}, headers=TOKEN)
    assert response.status_code == 400 and "missing parameter 'color'" in response.get_json()["error"]


# --- the page's controls in a real browser ------------------------------------------------

PAGE = """<!doctype html><html><head><meta name="control-token" content="{{ token }}"></head>
<body>{% include "_light_controls.html" %}
<script src="{{ url_for('static', filename='common.js') }}"></script></body></html>"""


@pytest.fixture
def live_page(led):
    """A page with only the light controls (and common.js), served for real, as base.html has them.

    The page carries the control token given as ?token= (default: the right one).
    """
    from playwright.sync_api import sync_playwright
    executable = chromium_path()
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config.update(CONTROL_TOKEN="t", USERKEY="")
    app.register_error_handler(HTTPException, json_error)
    app.register_blueprint(create_light_blueprint(lambda: led))
    app.add_url_rule("/", "index", lambda: render_template_string(PAGE, token=request.args.get("token", "t")))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.set_default_timeout(WAIT * 1000)
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        try:
            yield page, f"http://127.0.0.1:{server.server_port}"
        finally:
            browser.close()
            server.shutdown()
            thread.join(WAIT)


def test_the_page_turns_the_light_on_sets_it_and_shows_the_heart_rate(live_page, emulator):
    page, _ = live_page
    page.click("#light-power")
    page.wait_for_function("document.querySelector('#light-power').getAttribute('aria-pressed') === 'true'")
    page.eval_on_selector("#light-brightness", "el => { el.value = '40'; el.dispatchEvent(new Event('input')); }")
    page.eval_on_selector("#light-color", "el => { el.value = '#ff0000'; el.dispatchEvent(new Event('input')); }")
    assert emulator.wait_for(lambda s: s.pixel == (255, 0, 0, 0) and s.message.brightness == 40, WAIT)
    emulator.send_line("77")  # arrives through the page's poll, no reload
    page.wait_for_function("document.querySelector('#heart-rate').textContent === '77'")
    assert page.get_attribute("#heart-rate-line", "points") != ""


def test_the_page_shows_the_servers_error_when_a_control_is_refused(live_page, led):
    page, base = live_page
    page.goto(base + "/?token=wrong")
    page.wait_for_function("document.querySelector('#light-power').textContent === 'Light off'")
    page.click("#light-power")
    shown = page.wait_for_function("(n => !n.hidden && n.textContent)(document.querySelector('#light-note'))")
    refused = make_client(lambda: led).post("/light", data={"state": "on"}, headers={"X-Control-Token": "wrong"})
    assert shown.json_value() == refused.get_json()["error"] and not led.is_on


def test_the_real_page_under_gunicorn_drives_the_light(tmp_path, free_port, browser_page):
    """index.html from the real server (gunicorn, gevent worker) with `tty = emulator`."""
    from server_process import start_server, status, stop_server
    process = start_server(tmp_path, free_port, light="true", tty="emulator")
    try:
        page = browser_page
        page.set_default_timeout(WAIT * 1000)
        page.goto(f"http://127.0.0.1:{free_port}/")
        page.wait_for_function("/^[0-9]+$/.test(document.querySelector('#heart-rate').textContent)")
        page.click("#light-power")
        page.wait_for_function("document.querySelector('#light-power').getAttribute('aria-pressed') === 'true'")
        page.eval_on_selector("#light-brightness", "el => { el.value = '40'; el.dispatchEvent(new Event('input')); }")
        page.eval_on_selector("#light-color", "el => { el.value = '#ff0000'; el.dispatchEvent(new Event('input')); }")

        def light_is_set():
            light = status(free_port)["light"]
            return light["on"] and light["color"] == "FF0000" and light["brightness"] == 40
        assert wait_for(light_is_set, WAIT), status(free_port)["light"]
        assert status(free_port)["light"]["connected"] is True
    finally:
        stop_server(process)


GEVENT_SCRIPT = r"""
from gevent import monkey
monkey.patch_socket()  # for this script's urllib clients (greenlets); like gunicorn_workers, nothing else
import tempfile, urllib.request
import gevent
from gevent.pywsgi import WSGIServer
from flask import Flask
from camera_server.board.emulator import BoardEmulator
from camera_server.board.trinket import Led
from camera_server.web.light_routes import create_light_blueprint
board = BoardEmulator(heart_rate=None).start()
led = Led(board.port, by_id_dir=tempfile.mkdtemp()).start()
app = Flask("gevent_check")
app.config.update(CONTROL_TOKEN="t", USERKEY="")
app.register_blueprint(create_light_blueprint(lambda: led, keepalive_seconds=15))
server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
base = f"http://127.0.0.1:{server.server_port}"

def stream_until(bpm):
    with urllib.request.urlopen(base + "/heart_rate_stream") as response:
        for line in response:
            if line.startswith(b"data:") and f'"heart_rate": {bpm},'.encode() in line:
                return True

streams = [gevent.spawn(stream_until, 64) for _ in range(3)]
gevent.sleep(0.3)  # the streams are now waiting for a heart rate
with gevent.Timeout(10):  # a stalled hub would hold this for the 15 s keepalive, per stream
    urllib.request.urlopen(base + "/get_controller_data").read()
    board.send_line("64")
    assert all(stream.get() for stream in streams)
print("ok")
server.stop(); led.stop(); board.stop()
"""


def test_the_stream_does_not_stall_a_gevent_worker():
    """Waiting streams must leave the event loop free (gevent with native threads)."""
    pytest.importorskip("gevent")
    result = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
