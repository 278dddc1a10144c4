"""Every route: what it answers, what it refuses, and that bad input is a 4xx with a message."""
import subprocess
from pathlib import Path

import pytest

from camera_server.capture.camera import Camera
from camera_server.web import app as app_module
from camera_server.web.app import create_app, stop_services
from conftest import FakeSource, read_one_part


def test_live_page_shows_controls_state_and_fps(client, app):
    page = client.get("/").get_data(as_text=True)
    assert '<img id="stream" data-src="/video_feed"' in page      # the script streams it, unless the socket draws
    assert app.config["CONTROL_TOKEN"] in page
    for control in ("grayscale", "resolution-toggle", "snapshot-form", "autofocus", 'id="fps"'):
        assert control in page


def test_video_feed_parts_carry_length_and_capture_time(client):
    headers, jpeg = read_one_part(client)
    assert headers["Content-Type"] == "image/jpeg"
    assert int(headers["Content-Length"]) == len(jpeg)
    assert jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")
    assert float(headers["X-Timestamp"]) > 1.7e9


def test_status_reports_camera_state(client):
    read_one_part(client)
    camera = client.get("/status").get_json()["camera"]
    assert camera["camera"] == "demo" and camera["resolution"] == [640, 480]
    assert camera["state"] in ("streaming", "stopped")
    for key in ("fps", "viewers", "grayscale", "half_resolution", "last_error", "focus"):
        assert key in camera


def test_controls_need_the_page_token_or_the_userkey(client, control):
    assert client.post("/grayscale").status_code == 403
    assert client.post("/grayscale", headers={"X-Control-Token": "guess"}).status_code == 403
    assert client.post("/grayscale", headers=control).get_json() == {"grayscale": True}
    assert client.post("/grayscale", headers={"X-User-Key": "sesame"}).get_json() == {"grayscale": False}
    assert client.post("/grayscale", data={"userkey": "sesame", "state": "on"}).get_json() == {"grayscale": True}


@pytest.mark.parametrize("route, field", [("/grayscale", "grayscale"), ("/resolution", "half_resolution")])
def test_toggles_take_on_off_or_toggle(client, control, route, field):
    assert client.post(route, headers=control, data={"state": "on"}).get_json() == {field: True}
    assert client.post(route, headers=control, data={"state": "toggle"}).get_json() == {field: False}
    response = client.post(route, headers=control, data={"state": "sideways"})
    assert response.status_code == 400 and "on, off or toggle" in response.get_json()["error"]


def test_changes_are_post_only(client):
    response = client.get("/grayscale")
    assert response.status_code == 405 and "POST" in response.get_json()["error"]


def test_snapshot_with_a_default_timestamped_name(client, control, settings):
    body = client.post("/snapshot", headers=control).get_json()
    assert body["file"].startswith("snapshot_") and body["file"].endswith(".jpg")
    saved = Path(settings.media_dir) / body["file"]
    assert saved.read_bytes().startswith(b"\xff\xd8") and saved.stat().st_size == body["size"]
    second = client.post("/snapshot", headers=control).get_json()
    assert second["file"] != body["file"]          # same second: a suffix, never an overwrite
    assert client.get(body["url"]).data == saved.read_bytes()


def test_snapshot_with_a_user_name_never_overwrites(client, control, settings):
    assert client.post("/snapshot", headers=control, data={"filename": "front door"}).get_json()["file"] == "front door.jpg"
    original = (Path(settings.media_dir) / "front door.jpg").read_bytes()
    response = client.post("/snapshot", headers=control, data={"filename": "front door.jpg"})
    assert response.status_code == 409 and "already exists" in response.get_json()["error"]
    assert (Path(settings.media_dir) / "front door.jpg").read_bytes() == original


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b.jpg", "..", "bad\x00name", "tab\tname",
                                  "x" * 200, "notes.txt", ".hidden.jpg", "..\\up.jpg"])
def test_snapshot_names_that_could_escape_or_mislead_are_refused(client, control, settings, tmp_path, name):
    response = client.post("/snapshot", headers=control, data={"filename": name})
    assert response.status_code == 400 and response.get_json()["error"]
    assert [path for path in Path(settings.media_dir).iterdir() if not path.name.startswith("media.db")] == []
    assert not (tmp_path / "escape.jpg").exists()


def test_manual_video_runs_the_snapshot_payload(client, control, settings):
    body = client.post("/manual_video", headers=control, data={"payload": "snapshot", "filename": "p1"}).get_json()
    assert body["file"] == "p1.jpg" and (Path(settings.media_dir) / "p1.jpg").exists()


def test_manual_video_lists_the_known_payloads(client, control):
    response = client.post("/manual_video", headers=control, data={"payload": "selfdestruct"})
    assert response.status_code == 400 and "known payloads: snapshot" in response.get_json()["error"]
    response = client.post("/manual_video", headers=control, data={})
    assert response.status_code == 400 and "payload" in response.get_json()["error"]


def test_manual_video_accepts_json(client, control):
    response = client.post("/manual_video", headers=control, json={"payload": "snapshot", "filename": "j"})
    assert response.get_json()["file"] == "j.jpg"


def test_focus_on_the_demo_camera_is_a_clear_409(client, control):
    for route, data in (("/autofocus", {}), ("/step_focus", {"steps": "1"}), ("/set_focus", {"value": "10"})):
        response = client.post(route, headers=control, data=data)
        assert response.status_code == 409 and "no controllable focus" in response.get_json()["error"]


@pytest.mark.parametrize("route, data, words", [
    ("/step_focus", {}, "missing parameter 'steps'"),
    ("/step_focus", {"steps": "many"}, "steps must be a number"),
    ("/step_focus", {"steps": "1000"}, "from -100 to 100"),
    ("/set_focus", {"value": "near"}, "value must be a number"),
    ("/set_focus", {"value": "-5"}, "from 0 to 1023"),
])
def test_focus_parameters_are_checked(client, control, route, data, words):
    response = client.post(route, headers=control, data=data)
    assert response.status_code == 400 and words in response.get_json()["error"]


def test_media_route_stays_in_the_media_folder(client, settings, tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    for path in ("/media/../secret.txt", "/media/..%2fsecret.txt", "/media/%2e%2e/secret.txt"):
        response = client.get(path)
        assert response.status_code in (400, 404) and b"secret" != response.data
    assert client.get("/media/none.jpg").status_code == 404


def test_logs_need_the_userkey(client, settings):
    Path(settings.log_file).write_text("line one\nline two\n")
    assert client.get("/logs").status_code == 401
    assert client.get("/logs", headers={"X-User-Key": "wrong"}).status_code == 403
    response = client.get("/logs?lines=1", headers={"X-User-Key": "sesame"})
    assert response.status_code == 200 and response.get_data(as_text=True) == "line two\n"
    assert client.get("/logs?lines=lots", headers={"X-User-Key": "sesame"}).status_code == 400


@pytest.mark.parametrize("lines", ["\u00b2", "\u0663", "0", "10001", "-1", "1e3", " 5", ""])
def test_logs_take_only_a_plain_whole_number_of_lines(client, lines):
    response = client.get("/logs", query_string={"lines": lines}, headers={"X-User-Key": "sesame"})
    assert response.status_code == 400 and "whole number" in response.get_json()["error"]


def test_the_userkey_comes_in_a_header_a_form_field_or_a_json_member(client):
    response = client.post("/reboot", json={"userkey": "sesame"})
    assert response.status_code == 403 and "allow_power_control" in response.get_json()["error"]
    assert client.post("/reboot", json={"userkey": "wrong"}).status_code == 403
    assert client.post("/grayscale", json={"userkey": "sesame", "state": "on"}).get_json() == {"grayscale": True}
    assert client.post("/reboot", data={"userkey": "sesame"}).status_code == 403     # past the key check
    assert client.get("/logs", headers={"X-User-Key": "sesame"}).status_code == 200


def test_the_userkey_is_refused_in_the_url(client):
    """A query string lands in access logs and browser history: the key never goes there."""
    assert client.get("/logs?userkey=sesame").status_code == 401
    assert client.post("/grayscale?userkey=sesame").status_code == 403


def test_privileged_routes_are_disabled_without_a_userkey(settings):
    application = create_app(settings.replace(userkey=""))
    response = application.test_client().get("/logs", headers={"X-User-Key": ""})
    assert response.status_code == 403 and "set userkey" in response.get_json()["error"]


def test_userkey_is_never_logged(client, settings, caplog):
    client.post("/reboot", headers={"X-User-Key": "sesame"})
    client.post("/reboot", json={"userkey": "sesame"})
    client.get("/logs", headers={"X-User-Key": "not-the-key"})
    assert "sesame" not in caplog.text and "not-the-key" not in caplog.text


def test_power_routes_only_act_when_enabled(client, settings, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda command: started.append(command))
    response = client.post("/shutdown", headers={"X-User-Key": "sesame"})
    assert response.status_code == 403 and "allow_power_control" in response.get_json()["error"]
    assert client.post("/reboot").status_code == 401
    application = create_app(settings.replace(allow_power_control=True))
    response = application.test_client().post("/reboot", headers={"X-User-Key": "sesame"})
    assert response.status_code == 202 and started == [["systemctl", "reboot"]]


def test_a_camera_that_cannot_open_still_lets_the_page_load(settings):
    source = FakeSource()
    source.fail_open = "cannot open /dev/video0: is the camera plugged in?"
    camera = Camera(source, kind="usb", idle_timeout=0.5)
    application = create_app(settings, camera=camera)
    client = application.test_client()
    try:
        headers, jpeg = read_one_part(client)          # the "no signal" frame
        assert jpeg.startswith(b"\xff\xd8")
        status = client.get("/status").get_json()["camera"]
        assert status["state"] == "no_signal" and "plugged in" in status["last_error"]
        assert client.get("/").status_code == 200
        assert "plugged in" in client.get("/").get_data(as_text=True)
        response = client.post("/snapshot", headers={"X-User-Key": "sesame"})
        assert response.status_code == 503 and "plugged in" in response.get_json()["error"]
    finally:
        camera.stop()


def test_the_camera_is_released_after_the_last_viewer(app, client):
    read_one_part(client)
    camera = app.extensions["camera"]
    thread = camera._thread
    if thread is not None:
        thread.join(5)
    assert camera.state == "stopped" and camera.consumers == 0


def test_config_error_stops_start_up_with_one_clear_message(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.txt"
    config.write_text("[SETTINGS]\ncamera = webcam\n")
    monkeypatch.setenv("CONFIG_FILE", str(config))
    with pytest.raises(SystemExit) as stopped:
        app_module.main_app()
    assert stopped.value.code == app_module.CANNOT_START       # gunicorn halts instead of retrying
    message = capsys.readouterr().err
    assert "camera = 'webcam'" in message and "demo" in message


POST_ROUTES = ["/snapshot", "/grayscale", "/resolution", "/autofocus", "/step_focus", "/set_focus",
               "/manual_video", "/shutdown", "/reboot"]
GARBAGE = [
    {"data": b"\xff\xfe\x00garbage", "content_type": "application/x-www-form-urlencoded"},
    {"data": b"state=\xff\xfe&steps=\xc3&value=\x00&filename=\xff.jpg&payload=\xfe"},
    {"data": b"[1, 2, 3]", "content_type": "application/json"},
    {"data": b'{"steps": {"a": 1}, "value": [1], "filename": 5, "payload": null}', "content_type": "application/json"},
    {"data": b"{not json", "content_type": "application/json"},
    {"data": b"x=" + b"A" * 100_000, "content_type": "application/x-www-form-urlencoded"},
]


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gets_a_4xx_with_a_message_never_a_5xx(client, control, route, body, settings):
    response = client.post(route, headers={**control, "X-User-Key": "sesame"}, **body)
    assert 400 <= response.status_code < 500 or response.status_code in (200, 202), response.status_code
    if response.status_code >= 400:
        assert response.get_json()["error"]


def test_light_with_the_board_emulator_is_wired_into_the_app(settings):
    application = create_app(settings.replace(light=True, tty="emulator"))
    client = application.test_client()
    led = application.extensions["led"]
    try:
        assert led.wait_connected(10)
        assert 'id="light-controls"' in client.get("/").get_data(as_text=True)
        light = client.get("/status").get_json()["light"]
        assert light["connected"] is True
        headers = {"X-Control-Token": application.config["CONTROL_TOKEN"]}
        assert client.post("/set_color", headers=headers, data={"color": "#ff8800"}).status_code == 200
        assert client.get("/get_controller_data").get_json()["color"].lower().startswith("ff8800")
        assert client.post("/set_color", data={"color": "ff8800"}).status_code == 403   # no token
    finally:
        stop_services(application)
    assert led.stopped


def test_no_light_configured_leaves_the_page_without_light_controls(client):
    assert 'id="light-controls"' not in client.get("/").get_data(as_text=True)
    assert client.get("/status").get_json()["light"] is None
    assert client.get("/get_controller_data").status_code == 503


def test_only_stream_viewers_count_as_viewers_and_against_max_viewers(settings):
    application = create_app(settings.replace(max_viewers=1))
    client = application.test_client()
    camera = application.extensions["camera"]
    with camera.consumer():                          # a recording or the watch holds the camera
        viewer = client.get("/video_feed", buffered=False)
        try:
            assert viewer.status_code == 200
            chunks = iter(viewer.response)
            next(chunks), next(chunks)
            status = client.get("/status").get_json()["camera"]
            assert (status["viewers"], status["consumers"]) == (1, 2)
        finally:
            viewer.close()
    stop_services(application)


def test_viewers_past_max_viewers_get_a_503_and_the_rest_keeps_answering(settings):
    application = create_app(settings.replace(max_viewers=1))
    client = application.test_client()
    first = client.get("/video_feed", buffered=False)
    try:
        chunks = iter(first.response)
        next(chunks), next(chunks)                   # the boundary, then a frame: now watching
        refused = client.get("/video_feed")
        assert refused.status_code == 503 and "max_viewers" in refused.get_json()["error"]
        assert client.get("/status").status_code == 200
    finally:
        first.close()
        stop_services(application)
