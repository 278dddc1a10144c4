"""Many cameras through the routes: three at once (the demo and two video files), one that has no
signal beside them, the original single-camera config, the grid page, and adding and removing cameras
at run time (config.txt keeps every other byte)."""
import errno

import cv2
import numpy as np
import pytest

from camera_server import config_file
from camera_server.settings import load_settings
from camera_server.web.app import create_app, stop_services
import scenes
from conftest import read_one_part, wait_for, write_test_video

USERKEY = "sesame"
SIZES = {"front": (320, 240), "clipa": (160, 120), "clipb": (96, 64)}


def write_config(folder, sections):
    """A config.txt with comments, its server settings and ``sections`` (name -> key -> value)."""
    text = (f"# the camera server, for the tests\n[SETTINGS]\nmedia_dir = {folder / 'media'}\n"
            f"log_file = {folder / 'flask.log'}\nidle_timeout = 0.5\n\n[KEYS]\nuserkey = {USERKEY}\n")
    for name, values in sections.items():
        text += f"\n# camera {name}\n[camera {name}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())
    path = folder / "config.txt"
    path.write_text(text)
    return path


@pytest.fixture
def three_cameras(tmp_path):
    """The demo at 320x240 and two video files of their own sizes, from [camera NAME] sections."""
    sections = {"front": {"camera": "demo", "width": 320, "height": 240, "fps": 15}}
    for name in ("clipa", "clipb"):
        video = write_test_video(tmp_path / f"{name}.avi", frames=20, fps=20, size=SIZES[name])
        sections[name] = {"camera": "opencv", "source": video}
    return write_config(tmp_path, sections)


def start(config_path):
    return create_app(load_settings(config_path, environ={}))


@pytest.fixture
def app(three_cameras):
    application = start(three_cameras)
    yield application
    stop_services(application)


@pytest.fixture
def client(app):
    return app.test_client()


def owner(app):
    """What the grid page sends to add or remove a camera: its control token and the userkey."""
    return {"X-Control-Token": app.config["CONTROL_TOKEN"], "X-User-Key": USERKEY}


def picture_size(jpeg):
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image.shape[1], image.shape[0]


# Three cameras at once

def test_each_camera_gives_a_still_of_its_own_size(client):
    for name, size in SIZES.items():
        response = client.get(f"/cam/{name}/latest.jpg")
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        assert int(response.headers["X-Frame-Seq"]) > 0
        assert picture_size(response.data) == size


def test_each_camera_streams_its_own_pictures(client):
    for name, size in SIZES.items():
        headers, jpeg = read_one_part(client, f"/cam/{name}/video_feed")
        assert headers["Content-Type"] == "image/jpeg"
        assert picture_size(jpeg) == size


def test_status_lists_every_camera_and_keeps_the_default_s_shape(client):
    body = client.get("/status").get_json()
    assert body["camera"]["name"] == "front"
    assert set(body) == {"camera", "recording", "live_h264", "monitor", "motion", "light", "cameras"}
    assert set(body["cameras"]) == {"front", "clipa", "clipb"}      # JSON objects have sorted keys
    assert body["cameras"]["clipa"]["camera"]["camera"] == "opencv"
    assert "cameras" not in client.get("/cam/clipa/status").get_json()


def test_an_unknown_camera_is_a_404_that_lists_the_cameras(client):
    response = client.get("/cam/nope/status")
    assert response.status_code == 404
    assert "front, clipa, clipb" in response.get_json()["error"]


def control(app):
    return {"X-Control-Token": app.config["CONTROL_TOKEN"]}


def camera_states(client):
    return client.get("/status").get_json()["cameras"]


def test_a_toggle_changes_only_its_camera(app, client):
    assert client.post("/cam/clipa/grayscale", data={"state": "on"}, headers=control(app)).get_json() == {
        "grayscale": True}
    assert client.post("/cam/front/resolution", data={"state": "on"}, headers=control(app)).status_code == 200
    cameras = camera_states(client)
    assert [cameras[name]["camera"]["grayscale"] for name in SIZES] == [False, True, False]
    assert [cameras[name]["camera"]["half_resolution"] for name in SIZES] == [True, False, False]
    assert client.get("/status").get_json()["camera"]["half_resolution"]     # front is the default


def test_each_camera_records_its_own_file(app, client):
    for name in ("front", "clipb"):
        answer = client.post(f"/cam/{name}/video_capture", data={"action": "start", "filename": name},
                             headers=control(app))
        assert answer.status_code == 200, answer.get_json()
    assert wait_for(lambda: all(camera_states(client)[name]["recording"]["frames"] >= 10 for name in ("front", "clipb")))
    assert not camera_states(client)["clipa"]["recording"]["recording"]
    for name in ("front", "clipb"):
        assert client.post(f"/cam/{name}/video_capture", data={"action": "stop"},
                           headers=control(app)).status_code == 200
    for name in ("front", "clipb"):
        (entry,) = client.get(f"/get_database?camera={name}").get_json()
        assert entry["filename"] == f"{name}.mp4" and entry["kind"] == "video"
        assert (entry["width"], entry["height"]) == SIZES[name]
    assert client.get("/get_database?camera=clipa").get_json() == []


def write_scene_video(path, scene):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), scene.fps, (scene.width, scene.height))
    for _, image in scene.frames():
        writer.write(image)
    writer.release()
    return path


def test_each_camera_watches_for_its_own_events(tmp_path):
    """A person walks past the door camera; the hall camera sees an empty room. Both watch for motion."""
    sections = {"hall": {"camera": "opencv", "source": write_scene_video(tmp_path / "hall.avi",
                                                                         scenes.EmptyRoom(seconds=4.0))},
                "door": {"camera": "opencv", "source": write_scene_video(
                    tmp_path / "door.avi", scenes.ObjectEntering(seconds=6.0, enter_at=1.0, leave_at=4.0))}}
    application = start(write_config(tmp_path, sections))
    try:
        client = application.test_client()
        for name in sections:
            assert client.post(f"/cam/{name}/motion/start", headers=control(application)).status_code == 200
        assert wait_for(lambda: client.get("/events?camera=door").get_json(), timeout=20)
        event = client.get("/events?camera=door").get_json()[0]
        assert event["camera"] == "door" and event["kind"] == "motion"
        assert event["snapshot"] in {entry["filename"] for entry in client.get("/get_database?camera=door").get_json()}
        assert client.get("/events?camera=hall").get_json() == []
        assert [event["camera"] for event in client.get("/events").get_json()] == ["door"] * len(
            client.get("/events").get_json())
    finally:
        stop_services(application)


def test_a_camera_without_signal_leaves_the_others_streaming(tmp_path):
    sections = {"front": {"camera": "demo", "width": 160, "height": 120},
                "gone": {"camera": "opencv", "source": tmp_path / "missing.avi"},
                "clipa": {"camera": "opencv",
                          "source": write_test_video(tmp_path / "a.avi", size=SIZES["clipa"])}}
    application = start(write_config(tmp_path, sections))
    try:
        client = application.test_client()
        still = client.get("/cam/gone/latest.jpg")
        assert still.status_code == 200 and picture_size(still.data)        # the NO SIGNAL picture
        assert client.get("/cam/gone/status").get_json()["camera"]["state"] == "no_signal"
        for name, size in (("front", (160, 120)), ("clipa", SIZES["clipa"])):
            first = client.get(f"/cam/{name}/latest.jpg")
            assert picture_size(first.data) == size
            assert wait_for(lambda: int(client.get(f"/cam/{name}/latest.jpg").headers["X-Frame-Seq"])
                            > int(first.headers["X-Frame-Seq"]), timeout=5)
            assert picture_size(read_one_part(client, f"/cam/{name}/video_feed")[1]) == size
    finally:
        stop_services(application)


def test_the_original_config_gives_the_original_routes_and_status(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(f"[SETTINGS]\ncamera = demo\nmedia_dir = {tmp_path / 'media'}\nlog_file = {tmp_path / 'log'}\n")
    application = start(path)
    try:
        client = application.test_client()
        body = client.get("/status").get_json()
        assert set(body) == {"camera", "recording", "live_h264", "monitor", "motion", "light", "cameras"}
        assert body["camera"]["camera"] == "demo" and list(body["cameras"]) == ["demo"]
        assert picture_size(read_one_part(client, "/video_feed")[1]) == (640, 480)
        assert client.get("/").status_code == 200
        assert client.get("/cam/demo/status").get_json()["camera"]["name"] == "demo"
        rules = {rule.rule for rule in application.url_map.iter_rules()}
        assert {"/", "/video_feed", "/snapshot", "/grayscale", "/resolution", "/status", "/latest.jpg",
                "/cameras", "/cameras/add", "/cameras/remove"} <= rules
    finally:
        stop_services(application)


# The grid page

def test_the_grid_has_a_tile_for_every_camera(client):
    page = client.get("/cameras").get_data(as_text=True)
    for name in SIZES:
        assert f'data-camera="{name}"' in page
        assert f'href="/cam/{name}/"' in page
    assert "cameras.js" in page and "<script>" not in page         # no inline script
    assert page.count('class="remove danger" hidden') == 1          # the default camera stays


# Adding and removing cameras

def test_adding_a_camera_starts_it_and_appends_its_section(app, client, three_cameras):
    before = three_cameras.read_bytes()
    response = client.post("/cameras/add", headers=owner(app),
                           data={"name": "porch", "camera": "demo", "width": "200", "height": "150", "fps": "10"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["added"] == "porch" and body["cameras"] == ["front", "clipa", "clipb", "porch"]
    assert body["status"]["camera"]["state"] == "stopped"           # opened only when used
    assert picture_size(client.get("/cam/porch/latest.jpg").data) == (200, 150)
    after = three_cameras.read_bytes()
    assert after == before + b"\n[camera porch]\ncamera = demo\nwidth = 200\nheight = 150\nfps = 10\n"
    reloaded = load_settings(three_cameras, environ={})
    assert [camera.name for camera in reloaded.all_cameras] == ["front", "clipa", "clipb", "porch"]
    assert (reloaded.for_camera("porch").width, reloaded.for_camera("porch").fps) == (200, 10.0)


def test_removing_a_camera_takes_its_section_out_byte_for_byte(app, client, three_cameras):
    before = three_cameras.read_bytes()
    assert client.post("/cameras/add", headers=owner(app), json={"name": "porch", "camera": "demo",
                                                                 "fps": 12.5}).status_code == 201
    assert b"fps = 12.5\n" in three_cameras.read_bytes()
    response = client.post("/cameras/remove", headers=owner(app), data={"name": "porch"})
    assert response.status_code == 200
    assert response.get_json() == {"removed": "porch", "cameras": ["front", "clipa", "clipb"]}
    assert three_cameras.read_bytes() == before
    assert client.get("/cam/porch/status").status_code == 404
    response = client.post("/cameras/remove", headers=owner(app), data={"name": "clipb"})     # one of the file's own
    assert response.status_code == 200
    assert b"[camera clipb]" not in three_cameras.read_bytes()
    assert [camera.name for camera in load_settings(three_cameras, environ={}).all_cameras] == ["front", "clipa"]


def test_a_removed_camera_leaves_the_metrics(app, client):
    assert client.post("/cameras/add", headers=owner(app), data={"name": "porch", "camera": "demo"}).status_code == 201
    stream = client.get("/cam/porch/video_feed", buffered=False)
    parts = iter(stream.response)
    next(parts), next(parts), next(parts)        # the boundary and two frames: the first is counted
    stream.close()
    assert 'camera_stream_frames_sent_total{camera="porch"}' in client.get("/metrics").get_data(as_text=True)
    assert client.post("/cameras/remove", headers=owner(app), data={"name": "porch"}).status_code == 200
    assert client.post("/cameras/remove", headers=owner(app), data={"name": "clipb"}).status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'camera="porch"' not in metrics and 'camera="clipb"' not in metrics
    assert 'camera_stream_frames_sent_total{camera="clipa"}' in metrics


def test_a_camera_only_in_the_running_server_is_still_removed(app, client, three_cameras):
    assert client.post("/cameras/add", headers=owner(app), data={"name": "porch", "camera": "demo"}).status_code == 201
    config_file.remove_camera_section(three_cameras, "porch")          # taken out of the file by hand
    assert client.post("/cameras/remove", headers=owner(app), data={"name": "porch"}).status_code == 200
    assert "porch" not in client.get("/status").get_json()["cameras"]


@pytest.mark.parametrize("fields, words", [
    ({"name": "Porch", "camera": "demo"}, "camera name 'Porch' is not allowed"),
    ({"name": "a/b", "camera": "demo"}, "is not allowed"),
    ({"name": "porch", "camera": "webcam"}, "camera = 'webcam' is not allowed"),
    ({"name": "porch", "camera": "demo", "fps": "0"}, "[camera porch] fps = '0' is out of range"),
    ({"name": "porch", "camera": "demo", "width": "wide"}, "width must be a number"),
    ({"name": "porch", "camera": "opencv", "source": "rtsp://x/\nmax_viewers = 1"}, "line break"),
    ({"name": "porch", "camera": "opencv", "source": "rtsp://u:secret@[bad/x"}, "source is not a valid URL"),
    ({"name": "porch", "camera": "opencv", "source": "rtps://cam.lan/stream"}, "'rtps' is not a stream address"),
    ({"camera": "demo"}, "missing parameter 'name'"),
])
def test_a_bad_camera_is_a_400_that_says_why_and_changes_nothing(app, client, three_cameras, fields, words):
    before = three_cameras.read_bytes()
    response = client.post("/cameras/add", headers=owner(app), data=fields)
    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert three_cameras.read_bytes() == before
    assert set(client.get("/status").get_json()["cameras"]) == {"front", "clipa", "clipb"}


def test_a_name_that_exists_is_a_409(app, client, three_cameras):
    before = three_cameras.read_bytes()
    response = client.post("/cameras/add", headers=owner(app), data={"name": "clipa", "camera": "demo"})
    assert response.status_code == 409 and "clipa" in response.get_json()["error"]
    assert three_cameras.read_bytes() == before


def test_removing_an_unknown_camera_is_a_404_and_the_default_a_409(app, client, three_cameras):
    before = three_cameras.read_bytes()
    response = client.post("/cameras/remove", headers=owner(app), data={"name": "nope"})
    assert response.status_code == 404 and "front, clipa, clipb" in response.get_json()["error"]
    response = client.post("/cameras/remove", headers=owner(app), data={"name": "front"})
    assert response.status_code == 409 and "default camera" in response.get_json()["error"]
    assert three_cameras.read_bytes() == before


@pytest.mark.parametrize("error, status", [(errno.EROFS, 503), (errno.ENOSPC, 507)])
def test_a_config_file_that_cannot_be_written_adds_no_camera(app, client, three_cameras, monkeypatch, error, status):
    def refuse(path, data):
        raise OSError(error, "refused", str(path))
    monkeypatch.setattr(config_file, "_replace_file", refuse)
    response = client.post("/cameras/add", headers=owner(app), data={"name": "porch", "camera": "demo"})
    assert response.status_code == status and "nothing was changed" in response.get_json()["error"]
    assert set(client.get("/status").get_json()["cameras"]) == {"front", "clipa", "clipb"}
    response = client.post("/cameras/remove", headers=owner(app), data={"name": "clipa"})
    assert response.status_code == status
    assert "clipa" in client.get("/status").get_json()["cameras"]


def test_a_read_only_config_file_is_not_replaced(app, client, three_cameras):
    before = three_cameras.read_bytes()
    three_cameras.chmod(0o444)
    response = client.post("/cameras/add", headers=owner(app), data={"name": "porch", "camera": "demo"})
    assert response.status_code == 503 and "nothing was changed" in response.get_json()["error"]
    assert client.post("/cameras/remove", headers=owner(app), data={"name": "clipa"}).status_code == 503
    assert three_cameras.read_bytes() == before and oct(three_cameras.stat().st_mode & 0o777) == "0o444"
    assert set(client.get("/status").get_json()["cameras"]) == {"front", "clipa", "clipb"}


def test_an_address_that_does_not_answer_still_adds_the_camera(app, client):
    response = client.post("/cameras/add", headers=owner(app),
                           data={"name": "porch", "camera": "opencv", "source": "/nowhere/porch.avi"})
    assert response.status_code == 201
    assert picture_size(client.get("/cam/porch/latest.jpg").data)     # NO SIGNAL
    assert client.get("/cam/porch/status").get_json()["camera"]["state"] == "no_signal"


def test_the_first_camera_added_to_a_file_without_sections_keeps_the_default(tmp_path):
    path = tmp_path / "config.txt"
    original = f"# mine\n[SETTINGS]\ncamera = demo\nmedia_dir = {tmp_path / 'media'}\n[KEYS]\nuserkey = {USERKEY}\n"
    path.write_text(original)
    application = start(path)
    try:
        client = application.test_client()
        assert client.post("/cameras/add", headers=owner(application),
                           data={"name": "porch", "camera": "demo"}).status_code == 201
        assert path.read_text().startswith(original)
        assert [camera.name for camera in load_settings(path, environ={}).all_cameras] == ["demo", "porch"]
    finally:
        stop_services(application)


def test_adding_needs_the_userkey_and_is_refused_cross_site(app, client, three_cameras, caplog):
    before = three_cameras.read_bytes()
    token_only = {"X-Control-Token": app.config["CONTROL_TOKEN"]}
    fields = {"name": "porch", "camera": "opencv", "source": "rtsp://admin:hunter2@10.0.0.9/live"}
    assert client.post("/cameras/add", data=fields).status_code == 403
    assert client.post("/cameras/add", headers=token_only, data=fields).status_code == 403
    assert client.post("/cameras/remove", headers=token_only, data={"name": "clipa"}).status_code == 403
    cross_site = {**owner(app), "Sec-Fetch-Site": "cross-site"}
    assert client.post("/cameras/add", headers=cross_site, data=fields).status_code == 403
    assert client.post("/cameras/remove", headers=cross_site, data={"name": "clipa"}).status_code == 403
    assert three_cameras.read_bytes() == before
    assert set(client.get("/status").get_json()["cameras"]) == {"front", "clipa", "clipb"}

    with caplog.at_level("INFO"):
        assert client.post("/cameras/add", headers=owner(app), data=fields).status_code == 201
        assert client.post("/cameras/remove", headers=owner(app), data={"name": "porch"}).status_code == 200
    logged = caplog.text
    assert "camera porch added by 127.0.0.1" in logged and "camera porch removed by 127.0.0.1" in logged
    assert "hunter2" not in logged and "admin:***@10.0.0.9" in logged


def test_with_require_login_a_login_may_add_a_camera(tmp_path):
    path = write_config(tmp_path, {"front": {"camera": "demo"}})
    path.write_text(path.read_text().replace("[KEYS]\n", "[KEYS]\nrequire_login = true\n"))
    application = start(path)
    try:
        client = application.test_client()
        token = {"X-Control-Token": application.config["CONTROL_TOKEN"]}
        assert client.post("/cameras/add", headers=token, data={"name": "porch", "camera": "demo"}).status_code == 401
        assert client.post("/login", data={"userkey": USERKEY}).status_code == 303
        assert client.post("/cameras/add", headers=token, data={"name": "porch", "camera": "demo"}).status_code == 201
        assert "porch" in client.get("/cameras").get_data(as_text=True)
    finally:
        stop_services(application)
