"""Pan, tilt and zoom through the routes, with the real pytapo and onvif-zeep against fake cameras on
127.0.0.1 (tests/fake_tapo.py: HTTPS, login, stok, multipleRequest; tests/fake_onvif.py: the SOAP device,
media and PTZ services). Moves, stops, presets, privacy; a wrong password, a camera gone, a camera that
answers slowly; bad input that never reaches the camera; no credentials in /status, the page or the log.
"""
import logging
import socket
import threading
import time

import pytest

from camera_server.ptz.base import Capabilities, PtzBackend
from camera_server.ptz.controller import PtzController, ptz_address
from camera_server.settings import Settings, load_settings
from camera_server.web.app import create_app, stop_services
from conftest import read_one_part, wait_for
from fake_onvif import FakeOnvif
from fake_tapo import FakeTapo

TAPO_PASSWORD = "cloud-secret"
ONVIF_PASSWORD = "onvif-secret"
USERKEY = "sesame"


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def tapo(tmp_path):
    camera = FakeTapo(tmp_path, password=TAPO_PASSWORD).start()
    yield camera
    camera.stop()


@pytest.fixture
def onvif():
    camera = FakeOnvif(password=ONVIF_PASSWORD).start()
    yield camera
    camera.stop()


def build_app(tmp_path, sections):
    """The app of a config.txt with these ``[camera NAME]`` sections (name -> text)."""
    config = tmp_path / "config.txt"
    text = (f"[SETTINGS]\nmedia_dir = {tmp_path / 'media'}\nlog_file = {tmp_path / 'flask.log'}\n"
            f"idle_timeout = 0.5\nmin_free_mb = 0\n[KEYS]\nuserkey = {USERKEY}\n")
    text += "".join(f"[camera {name}]\ncamera = demo\n{body}\n" for name, body in sections.items())
    config.write_text(text)
    return create_app(load_settings(config, environ={}))


@pytest.fixture
def cameras_app(tmp_path, tapo, onvif):
    application = build_app(tmp_path, {
        "door": f"ptz = tapo\nptz_host = 127.0.0.1\nptz_port = {tapo.port}\nptz_password = {TAPO_PASSWORD}",
        # The ONVIF login comes from the source URL.
        "gate": f"ptz = onvif\nsource = rtsp://operator:{ONVIF_PASSWORD}@127.0.0.1:8554/stream1\n"
                f"ptz_port = {onvif.port}",
        "plain": "",
    })
    yield application
    stop_services(application)


@pytest.fixture
def client(cameras_app):
    return cameras_app.test_client()


@pytest.fixture
def control(cameras_app):
    return {"X-Control-Token": cameras_app.config["CONTROL_TOKEN"]}


# Tapo

def test_a_held_tapo_move_repeats_steps_until_stop(client, control, tapo):
    answer = client.post("/ptz/move", headers=control, data={"direction": "right"})
    assert answer.status_code == 200, answer.json
    assert wait_for(lambda: len(tapo.moves) >= 3)       # the default camera is door: steps while held
    assert client.post("/ptz/stop", headers=control).json == {"moving": False}
    count = len(tapo.moves)
    time.sleep(0.8)
    assert len(tapo.moves) == count
    assert set(tapo.moves) == {(10, 0)}
    client.post("/cam/door/ptz/move", headers=control, json={"pan": -0.5, "tilt": 0.5, "speed": 0.4})
    client.post("/cam/door/ptz/stop", headers=control)
    assert tapo.moves[count] == (-2, 2)


def test_tapo_presets_round_trip(client, control, tapo):
    assert client.get("/cam/door/ptz/presets").json["presets"] == [{"id": "1", "name": "door"},
                                                                 {"id": "2", "name": "gate"}]
    saved = client.post("/cam/door/ptz/preset/save", headers=control, data={"name": "porch"})
    assert saved.status_code == 200 and saved.json["preset"] == "3"
    assert tapo.presets["3"] == "porch"
    assert client.post("/cam/door/ptz/preset/goto", headers=control, data={"preset": "porch"}).json == {"preset": "3"}
    assert tapo.moves[-1] == ("preset", "3")
    deleted = client.post("/cam/door/ptz/preset/delete", headers=control, data={"preset": "3"})
    assert deleted.json["deleted"] == "3" and "3" not in tapo.presets
    missing = client.post("/cam/door/ptz/preset/goto", headers=control, data={"preset": "attic"})
    assert missing.status_code == 400 and "door" in missing.json["error"]


def test_tapo_privacy_mode_and_what_tapo_cannot_do(client, control, tapo):
    assert client.post("/cam/door/ptz/privacy", headers=control, data={"state": "on"}).json == {"privacy": True}
    assert tapo.privacy is True
    refused = client.post("/cam/door/ptz/move", headers=control, data={"direction": "up"})
    assert refused.status_code == 409 and "privacy mode is on" in refused.json["error"]
    assert client.post("/cam/door/ptz/privacy", headers=control, data={"state": "off"}).json == {"privacy": False}
    zoom = client.post("/cam/door/ptz/zoom", headers=control, data={"direction": "in"})
    assert zoom.status_code == 409 and "zoom" in zoom.json["error"]
    home = client.post("/cam/door/ptz/home", headers=control)
    assert home.status_code == 409 and "home" in home.json["error"]
    client.post("/cam/door/ptz/preset/save", headers=control, data={"name": "Home"})
    assert client.post("/cam/door/ptz/home", headers=control).status_code == 200
    assert tapo.moves[-1] == ("preset", "3")


def test_a_wrong_tapo_password_says_what_tapo_wants(tmp_path, tapo):
    application = build_app(tmp_path, {"door": f"ptz = tapo\nptz_host = 127.0.0.1\nptz_port = {tapo.port}\n"
                                               "ptz_password = not-it"})
    try:
        answer = application.test_client().post("/ptz/stop", headers={"X-User-Key": USERKEY})
        assert answer.status_code == 502
        assert "admin" in answer.json["error"] and "Third-Party Compatibility" in answer.json["error"]
        assert "not-it" not in answer.get_data(as_text=True)
    finally:
        stop_services(application)


# ONVIF

def test_onvif_continuous_move_stop_zoom_and_home(client, control, onvif):
    assert client.post("/cam/gate/ptz/move", headers=control, data={"direction": "down-left", "speed": "0.5"}).json \
        == {"moving": True}
    assert client.post("/cam/gate/ptz/stop", headers=control).status_code == 200
    assert client.post("/cam/gate/ptz/zoom", headers=control, data={"direction": "out"}).status_code == 200
    assert client.post("/cam/gate/ptz/home", headers=control).json == {"home": True}
    assert onvif.moves == [("continuous", -0.5, -0.5, 0.0), ("stop",), ("continuous", 0.0, 0.0, -1.0), ("home",)]
    status = client.get("/cam/gate/ptz/status").json
    assert status["capabilities"] == {"continuous_move": True, "step_move": True, "zoom": True, "presets": True,
                                      "home": True, "privacy": False}
    privacy = client.post("/cam/gate/ptz/privacy", headers=control, data={"state": "on"})
    assert privacy.status_code == 409 and "privacy" in privacy.json["error"]


def test_onvif_presets_round_trip(client, control, onvif):
    saved = client.post("/cam/gate/ptz/preset/save", headers=control, json={"name": "driveway"})
    assert saved.json["preset"] == "3" and onvif.presets["3"] == "driveway"
    assert client.post("/cam/gate/ptz/preset/goto", headers=control, json={"preset": "3"}).status_code == 200
    assert onvif.moves[-1] == ("preset", "3")
    assert client.post("/cam/gate/ptz/preset/delete", headers=control, json={"preset": "driveway"}).json["deleted"] == "3"
    assert [preset["id"] for preset in client.get("/cam/gate/ptz/presets").json["presets"]] == ["1", "2"]


def test_an_onvif_camera_without_continuous_move_steps(tmp_path):
    camera = FakeOnvif(password=ONVIF_PASSWORD, continuous=False, zoom=False).start()
    application = build_app(tmp_path, {"gate": f"ptz = onvif\nptz_host = 127.0.0.1\nptz_port = {camera.port}\n"
                                               f"ptz_username = operator\nptz_password = {ONVIF_PASSWORD}"})
    try:
        client, key = application.test_client(), {"X-User-Key": USERKEY}
        assert client.post("/ptz/move", headers=key, data={"direction": "left"}).status_code == 200
        assert wait_for(lambda: len(camera.moves) >= 2)
        client.post("/ptz/stop", headers=key)
        assert set(camera.moves) == {("relative", -0.1, 0.0, 0.0)}
        assert client.post("/ptz/zoom", headers=key, data={"zoom": "0.5"}).status_code == 409
    finally:
        stop_services(application)
        camera.stop()


def test_a_wrong_onvif_password_is_a_502_that_says_so(tmp_path, onvif):
    application = build_app(tmp_path, {"gate": f"ptz = onvif\nsource = rtsp://operator:nope@127.0.0.1/s\n"
                                               f"ptz_port = {onvif.port}"})
    try:
        answer = application.test_client().get("/ptz/presets")
        assert answer.status_code == 502 and "user name or password" in answer.json["error"]
        assert "nope" not in answer.get_data(as_text=True)
    finally:
        stop_services(application)


# Cameras that are gone or slow, and what keeps answering meanwhile

@pytest.mark.parametrize("kind", ["tapo", "onvif"])
def test_a_camera_that_is_gone_is_a_503_within_seconds(tmp_path, kind):
    application = build_app(tmp_path, {"gone": f"ptz = {kind}\nptz_host = 127.0.0.1\nptz_port = {closed_port()}\n"
                                               "ptz_password = secret-word"})
    try:
        started = time.monotonic()
        answer = application.test_client().post("/ptz/move", headers={"X-User-Key": USERKEY},
                                                data={"direction": "up"})
        assert answer.status_code == 503 and "connection refused" in answer.json["error"]
        assert time.monotonic() - started < 5
        status = application.test_client().get("/status").json
        assert "connection refused" in status["ptz"]["last_error"] and status["ptz"]["connected"] is False
    finally:
        stop_services(application)


@pytest.mark.parametrize("kind", ["tapo", "onvif"])
def test_a_slow_camera_is_a_504_within_its_timeout_and_the_rest_keeps_answering(tmp_path, kind):
    camera = (FakeTapo(tmp_path, password=TAPO_PASSWORD, delay=20) if kind == "tapo"
              else FakeOnvif(password=ONVIF_PASSWORD, delay=20)).start()
    application = build_app(tmp_path, {"slow": f"ptz = {kind}\nptz_host = 127.0.0.1\nptz_port = {camera.port}\n"
                                               f"ptz_username = {camera.username}\nptz_password = {camera.password}\n"
                                               "ptz_timeout_s = 2"})
    answers = {}

    def press():
        started = time.monotonic()
        answers["move"] = application.test_client().post("/ptz/move", headers={"X-User-Key": USERKEY},
                                                         data={"direction": "left"})
        answers["took"] = time.monotonic() - started
    try:
        pressing = threading.Thread(target=press)
        pressing.start()
        time.sleep(0.3)
        client = application.test_client()
        assert client.get("/status").status_code == 200
        headers, jpeg = read_one_part(client)
        assert jpeg.startswith(b"\xff\xd8")
        pressing.join(10)
        assert answers["move"].status_code == 504 and "did not answer within 2 s" in answers["move"].json["error"]
        assert answers["took"] < 4
        started = time.monotonic()      # still stuck on the camera: the next request says so at once
        again = client.post("/ptz/stop", headers={"X-User-Key": USERKEY})
        assert again.status_code == 504 and "has not answered" in again.json["error"]
        assert time.monotonic() - started < 1
    finally:
        stop_services(application)
        camera.stop()


# Bad input never reaches the camera

@pytest.mark.parametrize("path, fields, words", [
    ("/cam/door/ptz/fly", {}, ["unknown PTZ action", "move"]),
    ("/cam/door/ptz/move", {"direction": "sideways"}, ["direction", "up-left"]),
    ("/cam/door/ptz/move", {}, ["direction"]),
    ("/cam/door/ptz/move", {"direction": "up", "pan": "1"}, ["not both"]),
    ("/cam/door/ptz/move", {"pan": "1.5", "tilt": "0"}, ["pan", "-1 to 1"]),
    ("/cam/door/ptz/move", {"direction": "up", "speed": "2"}, ["speed", "0 to 1"]),
    ("/cam/door/ptz/move", {"direction": "up", "speed": "nan"}, ["speed"]),
    ("/cam/door/ptz/zoom", {"direction": "sideways"}, ["in or out"]),
    ("/cam/door/ptz/preset/save", {"name": "x" * 33}, ["1-32"]),
    ("/cam/door/ptz/preset/save", {"name": ""}, ["name"]),
    ("/cam/door/ptz/preset/save", {"name": "bell\x07"}, ["printable"]),
    ("/cam/door/ptz/preset/goto", {}, ["preset"]),
    ("/cam/door/ptz/preset/delete", {"preset": "p" * 65}, ["preset"]),
    ("/cam/door/ptz/privacy", {"state": "maybe"}, ["state"]),
])
def test_bad_input_is_a_400_and_never_reaches_the_camera(client, control, tapo, path, fields, words):
    answer = client.post(path, headers=control, data=fields)
    assert answer.status_code == 400, answer.json
    for word in words:
        assert word in answer.json["error"]
    assert tapo.calls == [] and tapo.logins == 0


def test_a_camera_without_ptz_says_how_to_get_it(client, control):
    answer = client.post("/cam/plain/ptz/move", headers=control, data={"direction": "up"})
    assert answer.status_code == 409 and "set ptz = tapo or onvif" in answer.json["error"]
    assert client.get("/cam/plain/ptz/status").status_code == 409
    assert "ptz" not in client.get("/cam/plain/status").json      # the original shape


def test_moves_need_the_control_right(client, tapo):
    assert client.post("/ptz/move", data={"direction": "up"}).status_code == 403
    assert tapo.calls == []


def test_credentials_are_not_in_status_the_page_or_the_log(client, control, tapo, onvif, caplog):
    caplog.set_level(logging.INFO)      # the server's level (logging_setup); urllib3's DEBUG lines show URLs
    client.post("/cam/door/ptz/move", headers=control, data={"direction": "up"})
    client.post("/cam/door/ptz/stop", headers=control)
    client.post("/cam/gate/ptz/move", headers=control, data={"direction": "up"})
    client.post("/cam/gate/ptz/stop", headers=control)
    status = client.get("/status").get_data(as_text=True)
    page = client.get("/cam/gate/").get_data(as_text=True)
    assert '"ptz"' in status and 'id="ptz-controls"' in page
    for secret in (TAPO_PASSWORD, ONVIF_PASSWORD, tapo.stok):
        assert secret not in status and secret not in page and secret not in caplog.text
    assert client.get("/status").json["cameras"]["door"]["ptz"]["capabilities"]["step_move"] is True


# The controller: latest move wins, a forgotten move stops by itself

class SlowBackend(PtzBackend):
    kind, host, port = "fake", "127.0.0.1", 1
    expected = Capabilities(continuous_move=True, zoom=True)

    def __init__(self, move_takes=0.0):
        self.sent, self.move_takes = [], move_takes

    def connect(self):
        return self.expected

    def continuous_move(self, pan, tilt, zoom):
        self.sent.append((pan, tilt, zoom))
        threading.Event().wait(self.move_takes)

    def stop(self):
        self.sent.append("stop")


def test_moves_sent_while_one_is_in_flight_are_replaced_by_the_latest():
    backend = SlowBackend(move_takes=0.5)
    controller = PtzController(backend, timeout=3)
    try:
        answers = []
        pressing = [threading.Thread(target=lambda: answers.append(controller.move(1, 0)))]
        pressing[0].start()
        time.sleep(0.1)
        for pan in (0.2, 0.4, 0.6, 0.8):
            pressing.append(threading.Thread(target=lambda pan=pan: answers.append(controller.move(pan, 0))))
            pressing[-1].start()
            time.sleep(0.02)
        for thread in pressing:
            thread.join(5)
        assert backend.sent == [(1, 0, 0.0), (0.8, 0, 0.0)]
        assert sum(1 for answer in answers if answer.get("replaced")) == 3
    finally:
        controller.close()


def test_a_continuous_move_without_keepalive_stops_by_itself():
    backend = SlowBackend()
    controller = PtzController(backend, timeout=3, keepalive_s=0.3)
    try:
        controller.move(0, 1)
        controller.move(0, 1)       # a keepalive: nothing new is sent
        assert backend.sent == [(0, 1, 0.0)]
        assert wait_for(lambda: backend.sent[-1] == "stop", timeout=3)
        assert controller.status()["moving"] is False
    finally:
        controller.close()


# Settings

def test_the_ptz_login_defaults_to_the_source_url_and_the_protocol_port():
    settings = Settings(ptz="onvif", source="rtsp://cam%40home:p%3Ass@192.168.1.20:554/stream1")
    assert ptz_address(settings) == ("192.168.1.20", 80, "cam@home", "p:ss")
    tapo = Settings(ptz="tapo", source="rtsp://viewer:pw@192.168.1.21/stream1", ptz_username="admin",
                    ptz_password="cloud", ptz_port=8443)
    assert ptz_address(tapo) == ("192.168.1.21", 8443, "admin", "cloud")


def test_ptz_without_a_host_stops_the_start(tmp_path):
    with pytest.raises(ValueError, match="ptz_host"):
        build_app(tmp_path, {"desk": "source = 0\nptz = onvif"})


def test_a_bad_ptz_setting_names_the_key(tmp_path):
    config = tmp_path / "config.txt"
    config.write_text("[camera door]\ncamera = demo\nptz = pelco\n")
    with pytest.raises(ValueError, match=r"\[camera door\] ptz = 'pelco' is not allowed; use one of: tapo, onvif"):
        load_settings(config, environ={})
