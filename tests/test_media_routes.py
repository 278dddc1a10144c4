"""The catalogue pages and API, the camera filter, thumbnails, media files with range requests, recording routes."""
import errno
import os
import socket
import sqlite3
import threading
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from camera_server.media import catalogue as media_catalogue
from camera_server.media import thumbnails
from camera_server.media.recorder import Recorder
from camera_server.web import media_routes
from camera_server.web.app import create_app, stop_services
from conftest import ROOT, other_greenlets_run_while_held, read_one_part, wait_for


@pytest.fixture
def media_dir(settings):
    return Path(settings.media_dir)


def snapshot(client, control, name=None):
    response = client.post("/snapshot", headers=control, data={"filename": name} if name else {})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["file"]


def test_snapshots_are_catalogued_and_listed(client, control):
    name = snapshot(client, control, "porch")
    entries = client.get("/get_database").get_json()
    assert [entry["filename"] for entry in entries] == ["porch.jpg"]
    entry = entries[0]
    assert entry["kind"] == "picture" and entry["created"] > 1.7e9 and entry["id"]
    assert (entry["width"], entry["height"]) == (640, 480)
    assert name in client.get("/").get_data(as_text=True)
    assert name in client.get("/database").get_data(as_text=True)
    assert name in client.get("/gallery").get_data(as_text=True)


def test_get_database_filters_by_kind(client, control):
    snapshot(client, control)
    assert client.get("/get_database?kind=video").get_json() == []
    assert client.get("/get_database?kind=movies").status_code == 400


def test_media_listing_editor_add_and_remove(client, control, media_dir):
    (media_dir / "outside-made.jpg").write_bytes(b"\xff\xd8 not really \xff\xd9")
    response = client.post("/database/add", headers=control, data={"filename": "outside-made.jpg"})
    assert response.status_code == 201           # written after the start-up scan, so not listed yet
    assert client.post("/database/add", headers=control, data={"filename": "nothing.jpg"}).status_code == 404
    assert client.post("/database/add", headers=control, data={"filename": "../x.jpg"}).status_code == 400
    response = client.post("/database/remove", headers=control, data={"filename": "outside-made.jpg"})
    assert response.get_json() == {"removed": "outside-made.jpg", "file_deleted": False}
    assert (media_dir / "outside-made.jpg").exists()
    assert client.post("/database/remove", headers=control, data={"filename": "outside-made.jpg"}).status_code == 404


def test_delete_removes_the_row_and_the_file(client, control, media_dir):
    name = snapshot(client, control)
    response = client.post("/database/remove", headers=control, data={"filename": name, "delete_file": "true"})
    assert response.status_code == 200 and not (media_dir / name).exists()
    assert client.get("/get_database").get_json() == []


def test_new_database_needs_confirmation_and_keeps_files(client, control, media_dir):
    name = snapshot(client, control)
    response = client.post("/database/new", headers=control)
    assert response.status_code == 400 and "confirm=yes" in response.get_json()["error"]
    assert len(client.get("/get_database").get_json()) == 1
    response = client.post("/database/new", headers=control, data={"confirm": "yes"})
    assert response.status_code == 200 and response.get_json() == {"entries": 1, "events": 0}
    assert client.get("/get_database").get_json() == [] and (media_dir / name).exists()


def test_catalogue_changes_need_the_control_token(client):
    for route in ("/database/add", "/database/remove", "/database/new", "/video_capture"):
        assert client.post(route, data={"filename": "a.jpg", "confirm": "yes", "action": "start"}).status_code == 403


def test_media_are_served_with_range_requests_and_as_downloads(client, control, media_dir):
    name = snapshot(client, control)
    whole = (media_dir / name).read_bytes()
    part = client.get(f"/media/{name}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == whole[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    download = client.get(f"/media/{name}?download=1")
    assert "attachment" in download.headers["Content-Disposition"]


@pytest.mark.parametrize("path", ["/media/../flask.log", "/media/%2e%2e/flask.log", "/media/..%2fflask.log",
                                  "/media//etc/passwd", "/media/%00.jpg"])
def test_no_media_path_leaves_the_media_folder(client, path, settings):
    Path(settings.log_file).write_text("private")
    response = client.get(path, follow_redirects=True)
    assert response.status_code in (400, 404) and b"private" not in response.data


def test_record_start_stop_and_play(client, control, media_dir):
    started = client.post("/video_capture", headers=control, data={"action": "start", "filename": "clip"})
    assert started.status_code == 200, started.get_json()
    name = started.get_json()["file"]
    assert name == "clip.mp4"
    again = client.post("/video_capture", headers=control, data={"action": "start"})
    assert again.status_code == 409
    assert client.get("/status").get_json()["recording"]["recording"] is True
    time.sleep(1.5)                      # let some frames be recorded (not a timing assertion)
    stopped = client.post("/video_capture", headers=control, data={"action": "stop"})
    assert stopped.status_code == 200, stopped.get_json()
    assert client.post("/video_capture", headers=control, data={"action": "stop"}).status_code == 409
    with av.open(str(media_dir / name)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) > 10
    entry = [entry for entry in client.get("/get_database").get_json() if entry["filename"] == name][0]
    assert entry["kind"] == "video" and entry["duration"] > 1 and entry["size"] == (media_dir / name).stat().st_size


@pytest.mark.parametrize("data, status", [
    ({}, 400), ({"action": "rewind"}, 400), ({"action": "start", "filename": "../up"}, 400),
    ({"action": "start", "filename": "a/b.mp4"}, 400), ({"action": "start", "filename": "x.avi"}, 400),
    ({"action": "stop"}, 409),
])
def test_recording_bad_input(client, control, data, status):
    response = client.post("/video_capture", headers=control, data=data)
    assert response.status_code == status and response.get_json()["error"]


def test_the_catalogue_never_lists_a_missing_file(settings, media_dir):
    application = create_app(settings)
    client = application.test_client()
    control = {"X-Control-Token": application.config["CONTROL_TOKEN"]}
    name = snapshot(client, control)
    stop_services(application)
    (media_dir / name).unlink()                        # gone behind the server's back
    (media_dir / "copied-in.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    application = create_app(settings)
    try:
        names = [entry["filename"] for entry in application.test_client().get("/get_database").get_json()]
        assert names == ["copied-in.jpg"]
    finally:
        stop_services(application)


def write_fragmented_mp4(path, frames=45):
    """A recording as a crash leaves it: fragmented, never finished with an index in front."""
    import fractions
    import numpy as np
    container = av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.codec_context.time_base = fractions.Fraction(1, 30)
    stream.options = {"g": "10"}
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 4, np.uint8), format="bgr24")
        frame.pts = index
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_start_up_repairs_interrupted_recordings_and_drops_empty_ones(settings, media_dir):
    from camera_server.media.video_file import mp4_boxes
    media_dir.mkdir(parents=True, exist_ok=True)
    write_fragmented_mp4(media_dir / "crashed.mp4")
    (media_dir / "never-started.mp4").write_bytes(b"")
    assert "moof" in [kind for kind, _, _ in mp4_boxes(media_dir / "crashed.mp4")]
    application = create_app(settings)
    try:
        entries = {entry["filename"]: entry for entry in application.test_client().get("/get_database").get_json()}
        assert set(entries) == {"crashed.mp4"} and not (media_dir / "never-started.mp4").exists()
        assert "moof" not in [kind for kind, _, _ in mp4_boxes(media_dir / "crashed.mp4")]
        assert entries["crashed.mp4"]["duration"] == pytest.approx(1.5, abs=0.1)
    finally:
        stop_services(application)


def test_the_file_being_recorded_cannot_be_deleted(client, control):
    name = client.post("/video_capture", headers=control, data={"action": "start"}).get_json()["file"]
    try:
        response = client.post("/database/remove", headers=control, data={"filename": name, "delete_file": "true"})
        assert response.status_code == 409 and "being recorded" in response.get_json()["error"]
    finally:
        client.post("/video_capture", headers=control, data={"action": "stop"})


def test_media_and_watch_routes_take_json_like_the_others(client, control):
    assert client.post("/video_capture", headers=control, json={"action": "stop"}).status_code == 409
    response = client.post("/monitor/start", headers=control, json={"threshold": 70000})
    assert response.status_code == 400 and "at most 65025" in response.get_json()["error"]
    response = client.post("/database/remove", headers=control, json=["not", "an", "object"])
    assert response.status_code == 400 and "JSON object" in response.get_json()["error"]


# -- names checked with their extension; the catalogue always matches the folder ---------------------


def media_files(media_dir):
    return sorted(path.name for path in media_dir.iterdir() if not path.name.startswith("media.db"))


@pytest.mark.parametrize("name, words", [("x.", "ends in '.'"), ("a" * 125, "at most 128"),
                                         ("日" * 100, "at most 255 bytes")])
def test_names_too_long_with_their_extension_are_a_400_and_leave_no_file(client, control, media_dir,
                                                                          name, words):
    for route, data in (("/snapshot", {"filename": name}), ("/manual_video", {"payload": "snapshot", "filename": name}),
                        ("/video_capture", {"action": "start", "filename": name})):
        response = client.post(route, headers=control, data=data)
        assert response.status_code == 400 and words in response.get_json()["error"], route
    assert media_files(media_dir) == [] and client.get("/get_database").get_json() == []
    assert client.get("/status").get_json()["recording"]["recording"] is False


def test_a_snapshot_replaces_a_stale_entry_whose_file_was_deleted_outside(client, control, media_dir):
    snapshot(client, control, "again")
    old = client.get("/get_database").get_json()[0]
    (media_dir / "again.jpg").unlink()                # behind the server's back
    assert snapshot(client, control, "again") == "again.jpg"
    entries = client.get("/get_database").get_json()
    assert [entry["filename"] for entry in entries] == ["again.jpg"] and entries[0]["id"] == old["id"]
    assert entries[0]["size"] == (media_dir / "again.jpg").stat().st_size


@pytest.fixture
def app_with_fake_camera(settings, fake_camera):
    application = create_app(settings, camera=fake_camera)
    yield application
    stop_services(application)


def test_the_file_being_recorded_is_not_catalogued_by_anyone_but_its_recorder(app_with_fake_camera, fake_source,
                                                                              media_dir):
    fake_source.fail_open = "unplugged"               # the name is reserved, no frame comes
    client, catalogue = app_with_fake_camera.test_client(), app_with_fake_camera.extensions["catalogue"]
    control = {"X-Control-Token": app_with_fake_camera.config["CONTROL_TOKEN"]}
    assert client.post("/video_capture", headers=control, data={"action": "start", "filename": "clip"}).status_code == 200
    response = client.post("/database/add", headers=control, data={"filename": "clip.mp4"})
    assert response.status_code == 409 and "being recorded" in response.get_json()["error"]
    assert catalogue.scan()["added"] == []
    assert client.post("/video_capture", headers=control, data={"action": "stop"}).status_code == 200
    assert not (media_dir / "clip.mp4").exists() and client.get("/get_database").get_json() == []


@pytest.mark.parametrize("forget", [
    lambda client, control: client.post("/database/remove", headers=control, data={"filename": "kept.mp4"}),
    lambda client, control: client.post("/database/new", headers=control, data={"confirm": "yes"}),
])
def test_a_recording_forgotten_while_it_runs_is_listed_again_at_its_end(app_with_fake_camera, media_dir, forget):
    client, recorder = app_with_fake_camera.test_client(), app_with_fake_camera.extensions["recorder"]
    control = {"X-Control-Token": app_with_fake_camera.config["CONTROL_TOKEN"]}
    client.post("/video_capture", headers=control, data={"action": "start", "filename": "kept"})
    assert wait_for(lambda: app_with_fake_camera.extensions["catalogue"].get("kept.mp4") is not None)
    assert forget(client, control).status_code == 200
    assert wait_for(lambda: recorder.status()["frames"] >= 20)
    result = client.post("/video_capture", headers=control, data={"action": "stop"}).get_json()
    [entry] = client.get("/get_database").get_json()
    assert entry["filename"] == "kept.mp4" and entry["size"] == result["size"] == (media_dir / "kept.mp4").stat().st_size
    assert entry["duration"] == result["duration"] > 0


@pytest.mark.parametrize("name", ["media.db", "media.db-wal", "media.db-shm", ".partial-0123abcd.mp4",
                                  ".hidden.jpg", "notes.txt"])
def test_only_pictures_and_videos_are_served_from_the_media_folder(client, media_dir, name):
    if not name.startswith("media.db"):     # the catalogue's files are there already, and in use
        (media_dir / name).write_bytes(b"SQLite format 3\x00 or anything else")
    assert (media_dir / name).exists()
    response = client.get(f"/media/{name}")
    assert response.status_code == 404 and b"SQLite" not in response.data


def test_start_up_cleans_leftovers_and_a_file_it_cannot_list_does_not_stop_it(settings, media_dir, caplog):
    media_dir.mkdir(parents=True, exist_ok=True)
    write_fragmented_mp4(media_dir / "rx..mp4")         # a name older versions accepted
    (media_dir / ".partial-0123abcd.mp4").write_bytes(b"cut short by a kill during the rewrite")
    os.utime(media_dir / ".partial-0123abcd.mp4", (time.time() - 3600, time.time() - 3600))
    application = create_app(settings)
    try:
        assert application.test_client().get("/get_database").get_json() == []
        assert media_files(media_dir) == ["rx..mp4"]    # repaired, kept for a person to rename
        assert "rx..mp4 is not listed" in caplog.text
    finally:
        stop_services(application)


# -- flask media: the command line beside a running server ------------------------------------------------


def test_flask_media_during_a_recording_leaves_the_recording_and_the_devices_alone(tmp_path, fake_camera):
    media_dir = tmp_path / "media"
    config = tmp_path / "config.txt"
    config.write_text(f"[SETTINGS]\nmedia_dir = {media_dir}\nlog_file = {tmp_path / 'flask.log'}\n"
                      f"camera = demo\nkeep_days = 0.0001\n")
    recorder = Recorder(fake_camera, media_dir, min_free_mb=0)
    try:
        recorder.start("live")
        assert wait_for(lambda: recorder.status()["frames"] >= 20)
        (media_dir / "left-by-a-crash.mp4").write_bytes(b"")      # start-up repair would delete it
        (media_dir / "old.jpg").write_bytes(b"\xff\xd8\xff\xd9")
        os.utime(media_dir / "old.jpg", (1e9, 1e9))                # retention (keep_days) would delete it
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "media", "list"], cwd=ROOT,
                              env={**os.environ, "CONFIG_FILE": str(config)}, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        written = recorder.status()["frames"]
        assert wait_for(lambda: recorder.status()["frames"] >= written + 20)
        result = recorder.stop()
    finally:
        recorder.close()
    assert result["frames"] >= written + 20         # nothing cut off or replaced under the writer
    assert (media_dir / "left-by-a-crash.mp4").exists() and (media_dir / "old.jpg").exists()


# -- listings a page at a time; requests wait on the catalogue off the gevent loop -----------------------


@pytest.fixture
def many_entries(app, media_dir):
    """250 catalogued pictures, picture-000.jpg the oldest."""
    catalogue = app.extensions["catalogue"]
    for number in range(250):
        name = f"picture-{number:03}.jpg"
        (media_dir / name).write_bytes(b"\xff\xd8\xff\xd9")
        catalogue.put(name, "picture", created=1.7e9 + number)
    return [f"picture-{number:03}.jpg" for number in reversed(range(250))]      # newest first


def listed(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    return [entry["filename"] for entry in response.get_json()]


def test_get_database_answers_a_page_newest_first(client, many_entries):
    assert listed(client, "/get_database") == many_entries[:100]
    assert listed(client, "/get_database?limit=20") == many_entries[:20]
    assert listed(client, "/get_database?limit=20&offset=20") == many_entries[20:40]
    assert listed(client, "/get_database?limit=1000&offset=240") == many_entries[240:]
    assert listed(client, "/get_database?offset=250") == []
    assert listed(client, "/get_database?kind=video&limit=5") == []


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=-1", "limit=1.5", "limit=²", "limit=",
                                   "limit=1e3", "limit=" + "9" * 5000, "offset=-1", "offset=x", "offset=99999999"])
def test_get_database_refuses_a_bad_limit_or_offset(client, query):
    response = client.get(f"/get_database?{query}")
    assert response.status_code == 400
    assert "must be a whole number from" in response.get_json()["error"]


@pytest.mark.parametrize("route", ["/gallery", "/database"])
def test_gallery_and_editor_show_a_page_with_older_and_newer_links(client, many_entries, route):
    first = client.get(route).get_data(as_text=True)
    assert many_entries[0] in first and many_entries[99] in first and many_entries[100] not in first
    assert f'href="{route}?offset=100&amp;limit=100"' in first and 'id="newer"' not in first
    last = client.get(f"{route}?offset=200").get_data(as_text=True)
    assert many_entries[200] in last and many_entries[-1] in last and many_entries[199] not in last
    assert 'id="older"' not in last and f'href="{route}?offset=100&amp;limit=100"' in last
    assert client.get(f"{route}?limit=abc").status_code == 400


@pytest.mark.parametrize("route", ["/gallery", "/database"])
def test_a_page_past_the_end_links_to_the_newest_not_to_another_empty_one(client, many_entries, route):
    page = client.get(f"{route}?offset=500").get_data(as_text=True)
    assert many_entries[0] not in page and 'id="older"' not in page
    assert f'<a id="newer" href="{route}?limit=100">newest</a>' in page


def test_a_short_listing_has_no_page_links(client, control):
    snapshot(client, control)
    assert 'id="pages"' not in client.get("/gallery").get_data(as_text=True)


class HeldCatalogue:
    """Wraps the catalogue: every call waits until the test lets go (as behind another process's write
    lock), at most a few seconds, so a call made on the event loop fails the test instead of hanging it."""

    def __init__(self, catalogue):
        self._catalogue = catalogue
        self.entered = threading.Event()
        self.let_go = threading.Event()

    def __getattr__(self, name):
        method = getattr(self._catalogue, name)

        def held(*args, **kwargs):
            self.entered.set()
            self.let_go.wait(3)
            return method(*args, **kwargs)
        return held


@pytest.mark.parametrize("method, route, data", [
    ("post", "/snapshot", {}), ("get", "/get_database", None), ("get", "/gallery", None),
    ("get", "/database", None), ("get", "/", None), ("post", "/database/add", {"filename": "outside.jpg"}),
    ("post", "/database/remove", {"filename": "listed.jpg"}), ("post", "/database/new", {"confirm": "yes"}),
])
def test_a_request_waiting_on_the_catalogue_does_not_stop_other_greenlets(app, control, media_dir,
                                                                           method, route, data):
    for name in ("outside.jpg", "listed.jpg"):
        (media_dir / name).write_bytes(b"\xff\xd8\xff\xd9")
    app.extensions["catalogue"].add("listed.jpg")
    app.extensions["camera"].current_frame()             # the first picture, before the catalogue is held
    held = app.extensions["catalogue"] = HeldCatalogue(app.extensions["catalogue"])
    client = app.test_client()
    response = other_greenlets_run_while_held(
        lambda: getattr(client, method)(route, headers=control, data=data), held)
    assert response.status_code in (200, 201), response.get_json()


# -- a catalogue that was locked as a recording ended: the entry is put right later -------------------------


def raw_update(media_dir, query, parameters=()):
    db = sqlite3.connect(media_dir / "media.db")
    with db:
        db.execute(query, parameters)
    db.close()


def test_a_recording_stopped_while_the_catalogue_is_locked_is_listed_right_once_it_is_free(
        settings, fake_camera, media_dir, monkeypatch):
    monkeypatch.setattr(media_catalogue, "BUSY_TIMEOUT_S", 0.2)
    application = create_app(settings, camera=fake_camera)
    try:
        client, recorder = application.test_client(), application.extensions["recorder"]
        control = {"X-Control-Token": application.config["CONTROL_TOKEN"]}
        application.extensions["catalogue_writer"].retry_s = 0.05
        client.post("/video_capture", headers=control, data={"action": "start", "filename": "late"})
        assert wait_for(lambda: recorder.status()["frames"] >= 20)
        holder = sqlite3.connect(media_dir / "media.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")                   # another program's long change
        try:
            stopped = client.post("/video_capture", headers=control, data={"action": "stop"})
            assert stopped.status_code == 200 and "database is locked" in stopped.get_json()["error"]
            assert "the recording is listed once the catalogue takes it" in stopped.get_json()["error"]
            started = client.post("/video_capture", headers=control, data={"action": "start", "filename": "next"})
            assert started.status_code == 200                   # the recorder is free at once
            client.post("/video_capture", headers=control, data={"action": "stop"})
        finally:
            holder.close()
        result = stopped.get_json()
        entry = lambda: application.extensions["catalogue"].get("late.mp4")      # noqa: E731
        assert wait_for(lambda: entry()["size"] == result["size"] == (media_dir / "late.mp4").stat().st_size)
        assert entry()["duration"] == result["duration"] > 0
    finally:
        stop_services(application)


def test_start_up_refreshes_stale_sizes_and_durations(settings, fake_camera, media_dir):
    application = create_app(settings, camera=fake_camera)
    try:
        recorder = application.extensions["recorder"]
        recorder.start("stale")
        assert wait_for(lambda: recorder.status()["frames"] >= 20)
        result = recorder.stop()
    finally:
        stop_services(application)
    (media_dir / "kept.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    # As a catalogue that refused the recording's last entry leaves it: the size at its first frame.
    raw_update(media_dir, "UPDATE media SET size = 100, duration = NULL WHERE filename = 'stale.mp4'")
    application = create_app(settings, camera=fake_camera)
    try:
        entries = {entry["filename"]: entry for entry in application.test_client().get("/get_database").get_json()}
    finally:
        stop_services(application)
    assert entries["stale.mp4"]["size"] == result["size"] == (media_dir / "stale.mp4").stat().st_size
    assert entries["stale.mp4"]["duration"] == pytest.approx(result["duration"], abs=0.05)
    assert entries["kept.jpg"]["size"] == 4


def test_a_video_added_by_hand_gets_its_duration_at_the_next_start(settings, fake_camera, media_dir):
    application = create_app(settings, camera=fake_camera)
    try:
        recorder = application.extensions["recorder"]
        recorder.start("made")
        assert wait_for(lambda: recorder.status()["frames"] >= 20)
        duration = recorder.stop()["duration"]
        application.extensions["catalogue"].remove("made.mp4")
        (media_dir / "made.mp4").rename(media_dir / "copied.mp4")          # a video copied into the folder
        assert application.extensions["catalogue"].add("copied.mp4")["duration"] is None
    finally:
        stop_services(application)
    application = create_app(settings, camera=fake_camera)
    try:
        entry = application.extensions["catalogue"].get("copied.mp4")
    finally:
        stop_services(application)
    assert entry["duration"] == pytest.approx(duration, abs=0.05)


def test_a_catalogue_locked_at_start_up_does_not_stop_the_start(settings, media_dir, monkeypatch, caplog):
    stop_services(create_app(settings))                     # the catalogue exists
    monkeypatch.setattr(media_catalogue, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(media_dir / "media.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        application = create_app(settings)
        try:
            assert "start-up repair skipped" in caplog.text and "locked by another program" in caplog.text
            assert read_one_part(application.test_client())[1].startswith(b"\xff\xd8")
        finally:
            stop_services(application)
    finally:
        holder.close()


# -- symbolic links in the media folder: never listed, served or deleted through ------------------------


@pytest.mark.parametrize("target", ["media.db", "picture.jpg", "outside", "gone.jpg", "folder"])
def test_a_link_in_the_media_folder_is_not_served_listed_or_deleted_through(app, client, control, media_dir,
                                                                           tmp_path, target):
    (media_dir / "picture.jpg").write_bytes(b"\xff\xd8 the picture \xff\xd9")
    app.extensions["catalogue"].add("picture.jpg")
    (tmp_path / "outside").write_text("private")
    (tmp_path / "folder").mkdir()
    resolved = {"outside": tmp_path / "outside", "folder": tmp_path / "folder"}.get(target, media_dir / target)
    os.symlink(resolved, media_dir / "x.jpg")
    response = client.get("/media/x.jpg")
    assert response.status_code == 404 and b"private" not in response.data and b"SQLite" not in response.data
    response = client.post("/database/add", headers=control, data={"filename": "x.jpg"})
    assert response.status_code == 404 and "not a file" in response.get_json()["error"]
    # A link that took the place of a catalogued file: deleting the entry removes only the link.
    (media_dir / "x.jpg").unlink()
    (media_dir / "x.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    app.extensions["catalogue"].add("x.jpg")
    (media_dir / "x.jpg").unlink()
    os.symlink(resolved, media_dir / "x.jpg")
    response = client.post("/database/remove", headers=control, data={"filename": "x.jpg", "delete_file": "true"})
    assert response.status_code == 200 and not os.path.lexists(media_dir / "x.jpg")
    assert [entry["filename"] for entry in client.get("/get_database").get_json()] == ["picture.jpg"]
    assert client.get("/media/picture.jpg").data == b"\xff\xd8 the picture \xff\xd9"
    assert (tmp_path / "outside").read_text() == "private" and (tmp_path / "folder").is_dir()


def test_a_fifo_in_the_media_folder_is_a_404_not_a_hang(client, media_dir):
    os.mkfifo(media_dir / "pipe.jpg")
    assert client.get("/media/pipe.jpg").status_code == 404


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


def test_a_folder_a_socket_or_a_name_too_long_is_a_404_and_keeps_no_descriptor(client, media_dir):
    (media_dir / "folder.jpg").mkdir()
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(media_dir / "socket.jpg"))
    try:
        names = ["folder.jpg", "socket.jpg", "a" * 300 + ".jpg", "\u00e9" * 130 + ".jpg"]
        client.get("/media/folder.jpg")
        before = open_descriptors()
        for _ in range(5):
            for name in names:
                response = client.get(f"/media/{name}")
                assert response.status_code in (400, 404), (name[:20], response.get_json())
        assert open_descriptors() == before
    finally:
        listening.close()


def test_served_media_answer_conditional_requests(client, control):
    name = snapshot(client, control)
    first = client.get(f"/media/{name}")
    assert first.status_code == 200 and first.headers["Content-Length"] == str(len(first.data))
    again = client.get(f"/media/{name}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert client.get(f"/media/{name}", headers={"Range": f"bytes={len(first.data) + 10}-"}).status_code == 416


def test_a_media_folder_that_is_a_link_keeps_working(settings, tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    os.symlink(real, tmp_path / "linked-media")
    application = create_app(settings.replace(media_dir=str(tmp_path / "linked-media")))
    try:
        client = application.test_client()
        control = {"X-Control-Token": application.config["CONTROL_TOKEN"]}
        name = snapshot(client, control, "porch")
        assert (real / name).is_file() and client.get(f"/media/{name}").status_code == 200
        assert [entry["filename"] for entry in client.get("/get_database").get_json()] == [name]
        response = client.post("/database/remove", headers=control, data={"filename": name, "delete_file": "true"})
        assert response.status_code == 200 and not (real / name).exists()
    finally:
        stop_services(application)


# -- many cameras: the camera filter -----------------------------------------------------------------


@pytest.fixture
def two_cameras(app, media_dir):
    """Pictures of the porch and the garden, and one added by hand (no camera), newest first: p2, g1, p1, h."""
    catalogue = app.extensions["catalogue"]
    for created, name, camera in [(1, "hand.jpg", None), (2, "porch-1.jpg", "porch"), (3, "garden-1.jpg", "garden"),
                                  (4, "porch-2.jpg", "porch")]:
        (media_dir / name).write_bytes(b"\xff\xd8\xff\xd9")
        catalogue.put(name, "picture", created=1.7e9 + created, camera=camera)
    return catalogue


def test_get_database_filters_by_camera(client, two_cameras):
    assert listed(client, "/get_database?camera=porch") == ["porch-2.jpg", "porch-1.jpg"]
    assert listed(client, "/get_database?camera=porch&limit=1&offset=1") == ["porch-1.jpg"]
    assert listed(client, "/get_database?camera=porch&kind=video") == []
    assert listed(client, "/get_database?camera=attic") == []            # made nothing yet: not an error
    assert listed(client, "/get_database?camera=") == listed(client, "/get_database")
    assert [entry["camera"] for entry in client.get("/get_database").get_json()] == ["porch", "garden", "porch", None]


@pytest.mark.parametrize("route", ["/get_database", "/gallery", "/database"])
def test_a_camera_parameter_too_long_is_a_400_that_says_why(client, route):
    assert client.get(f"{route}?camera={'x' * 64}").status_code == 200
    response = client.get(f"{route}?camera={'x' * 65}")
    assert response.status_code == 400 and "camera is longer than 64" in response.get_json()["error"]


@pytest.mark.parametrize("route", ["/gallery", "/database"])
def test_the_pages_show_one_camera_and_a_filter_that_keeps_the_other_parameters(client, two_cameras, route):
    page = client.get(f"{route}?camera=garden&kind=picture&limit=5").get_data(as_text=True)
    assert "garden-1.jpg" in page and "porch-1.jpg" not in page and "hand.jpg" not in page
    links = page[page.index('id="camera-filter"'):]
    links = links[:links.index("</nav>")]
    assert links.index(">all<") < links.index(">garden<") < links.index(">porch<")
    assert f'href="{route}?limit=5&amp;kind=picture"' in links
    assert f'href="{route}?camera=porch&amp;limit=5&amp;kind=picture"' in links
    assert f'href="{route}?camera=garden&amp;limit=5&amp;kind=picture" aria-current="page"' in links
    everything = client.get(route).get_data(as_text=True)
    assert all(name in everything for name in ("hand.jpg", "porch-1.jpg", "garden-1.jpg"))
    assert f'href="{route}?limit=100" aria-current="page">all<' in everything
    nothing = client.get(f"{route}?camera=attic")
    assert nothing.status_code == 200 and ">attic<" in nothing.get_data(as_text=True)


def test_the_page_links_keep_the_camera(client, app, media_dir):
    catalogue = app.extensions["catalogue"]
    for number in range(3):
        (media_dir / f"p{number}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
        catalogue.put(f"p{number}.jpg", "picture", created=1.7e9 + number, camera="porch")
    page = client.get("/gallery?camera=porch&limit=1&offset=1").get_data(as_text=True)
    assert 'href="/gallery?limit=1&amp;camera=porch"' in page
    assert 'href="/gallery?offset=2&amp;limit=1&amp;camera=porch"' in page


def test_the_gallery_shows_thumbnails_linking_to_the_files_and_each_camera(client, app, two_cameras, media_dir):
    (media_dir / "walk.mp4").write_bytes(b"not played here")
    app.extensions["catalogue"].put("walk.mp4", "video", created=1.8e9, width=640, height=360, camera="garden")
    page = client.get("/gallery").get_data(as_text=True)
    assert '<img src="/thumbnails/porch-2.jpg" alt="porch-2.jpg" loading="lazy" width="320" height="240">' in page
    assert '<a href="/media/porch-2.jpg" target="_blank"' in page
    assert '<span class="camera">garden</span>' in page
    assert '<img src="/media/' not in page                                 # no full-size picture
    assert ('<video src="/media/walk.mp4" poster="/thumbnails/walk.mp4" width="320" height="180" controls '
            'preload="metadata"') in page                                  # a player, with its first frame


# -- thumbnails --------------------------------------------------------------------------------------


def write_video(path, frames=6, size=(320, 240)):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=6)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for _ in range(frames):
            image = np.full((size[1], size[0], 3), 120, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return path


def test_a_snapshot_s_thumbnail_is_made_once_and_kept(client, control, media_dir):
    name = snapshot(client, control)
    response = client.get(f"/thumbnails/{name}")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data.startswith(b"\xff\xd8") and len(response.data) < (media_dir / name).stat().st_size
    cache = response.headers["Cache-Control"]
    assert cache.startswith("private") and "max-age=" in cache
    kept = media_dir / ".thumbnails" / f"{name}.jpg"
    made = kept.stat()
    again = client.get(f"/thumbnails/{name}")
    assert again.data == response.data
    assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == (made.st_ino, made.st_mtime_ns)     # not rewritten
    assert client.get(f"/thumbnails/{name}", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_a_video_s_thumbnail_is_its_first_frame(client, app, media_dir):
    write_video(media_dir / "walk.mp4")
    app.extensions["catalogue"].add("walk.mp4")
    response = client.get("/thumbnails/walk.mp4")
    assert response.status_code == 200 and response.data.startswith(b"\xff\xd8")
    image = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3) and abs(int(image.mean()) - 120) < 10


def test_deleting_a_file_deletes_its_thumbnail(client, control, media_dir):
    name = snapshot(client, control)
    assert client.get(f"/thumbnails/{name}").status_code == 200
    assert (media_dir / ".thumbnails" / f"{name}.jpg").exists()
    response = client.post("/database/remove", headers=control, data={"filename": name, "delete_file": "true"})
    assert response.status_code == 200
    assert not (media_dir / ".thumbnails" / f"{name}.jpg").exists()
    assert client.get(f"/thumbnails/{name}").status_code == 404


@pytest.mark.parametrize("path", ["/thumbnails/nothing.jpg", "/thumbnails/notes.txt", "/thumbnails/..%2fflask.log",
                                  "/thumbnails/a/b.jpg", "/thumbnails/.thumbnails", "/thumbnails/media.db",
                                  "/thumbnails/%00.jpg", "/thumbnails/" + "a" * 300 + ".jpg"])
def test_a_name_that_is_not_a_catalogued_media_file_has_no_thumbnail(client, path):
    response = client.get(path)
    assert response.status_code == 404 and "error" in response.get_json()


def test_an_uncatalogued_file_has_no_thumbnail(client, media_dir):
    (media_dir / "outside.jpg").write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert client.get("/thumbnails/outside.jpg").status_code == 404


@pytest.mark.parametrize("name, content", [("broken.jpg", b"\xff\xd8 not really \xff\xd9"), ("broken.mp4", b"junk" * 99),
                                           ("empty.jpg", b"")])
def test_a_file_that_cannot_be_decoded_is_a_404_not_a_500(client, app, media_dir, name, content):
    (media_dir / name).write_bytes(content)
    app.extensions["catalogue"].put(name)
    response = client.get(f"/thumbnails/{name}")
    assert response.status_code == 404 and "cannot be decoded" in response.get_json()["error"]


def test_a_thumbnail_never_follows_a_link(client, app, media_dir, tmp_path):
    (tmp_path / "private.jpg").write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    (media_dir / "x.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    app.extensions["catalogue"].add("x.jpg")
    (media_dir / "x.jpg").unlink()
    os.symlink(tmp_path / "private.jpg", media_dir / "x.jpg")      # a link took the catalogued file's place
    assert client.get("/thumbnails/x.jpg").status_code == 404
    assert not (media_dir / ".thumbnails" / "x.jpg.jpg").exists()


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_a_disk_that_cannot_keep_the_thumbnail_still_gets_it(client, control, media_dir, monkeypatch, error):
    name = snapshot(client, control)

    def refused(*args):
        raise OSError(error, os.strerror(error))
    monkeypatch.setattr(thumbnails, "_keep", refused)
    response = client.get(f"/thumbnails/{name}")
    assert response.status_code == 200 and response.data.startswith(b"\xff\xd8")
    assert not (media_dir / ".thumbnails" / f"{name}.jpg").exists()


def test_a_thumbnail_is_made_off_the_event_loop(client, control, monkeypatch):
    name = snapshot(client, control)
    calls = []

    def recorded(function, *args, **kwargs):
        calls.append(getattr(function, "__name__", function))
        return function(*args, **kwargs)
    monkeypatch.setattr(media_routes, "call_blocking", recorded)
    assert client.get(f"/thumbnails/{name}").status_code == 200
    assert "make_thumbnail" in calls


def test_thumbnails_need_a_login_like_the_media(settings):
    application = create_app(settings.replace(require_login=True))
    try:
        client = application.test_client()
        name = client.post("/snapshot", headers={"X-User-Key": "sesame"}).get_json()["file"]
        assert client.get(f"/thumbnails/{name}").status_code == 401
        assert client.get(f"/thumbnails/{name}", headers={"X-User-Key": "sesame"}).status_code == 200
    finally:
        stop_services(application)
