"""The catalogue pages and API, media files with range requests, recording routes."""
import time
from pathlib import Path

import av
import pytest

from app import create_app, stop_services


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
    assert response.status_code in (201, 409)    # the start-up scan may have found it already
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
    assert client.post("/database/new", headers=control, data={"confirm": "yes"}).status_code == 200
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
    from video_file import mp4_boxes
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
