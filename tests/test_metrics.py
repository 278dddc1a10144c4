"""/metrics: Prometheus' text format, read with prometheus_client's own parser."""
import shutil
import time

from prometheus_client.parser import text_string_to_metric_families

from camera_server.web.app import create_app, stop_services
from conftest import Held, other_greenlets_run_while_held, wait_for


def scrape(client, **request):
    response = client.get("/metrics", **request)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


SERVER_WIDE = ("camera_media_free_bytes", "camera_events", "camera_events_last_day")


def value(samples, name, camera="demo", **labels):
    """A sample; those of a camera have its name as label ``camera`` (the tests' camera: demo)."""
    if name not in SERVER_WIDE:
        labels["camera"] = camera
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_describe_the_camera_recording_disk_and_watch(client):
    samples = scrape(client)
    assert value(samples, "camera_state", state="stopped") == 1
    assert value(samples, "camera_state", state="streaming") == 0
    assert value(samples, "camera_fps") == 0 and value(samples, "camera_viewers") == 0
    assert value(samples, "camera_consumers") == 0
    assert value(samples, "camera_opens_total") == 0 and value(samples, "camera_outages_total") == 0
    assert value(samples, "camera_recording") == 0 and value(samples, "camera_recording_frames") == 0
    assert value(samples, "camera_media_free_bytes") > 0
    assert value(samples, "camera_scene_monitor_on") == 0 and value(samples, "camera_motion_detection_on") == 0
    assert value(samples, "camera_event_active") == 0 and value(samples, "camera_events_last_day") == 0
    assert value(samples, "camera_stream_frames_sent_total") == 0


def test_a_viewer_is_counted_and_the_frames_it_sent_and_skipped(client, app):
    camera = app.extensions["camera"]
    stream = client.get("/video_feed", buffered=False)
    try:
        chunks = iter(stream.response)
        next(chunks), next(chunks)                        # the boundary and a first frame
        samples = scrape(client)
        assert value(samples, "camera_viewers") == 1 and value(samples, "camera_state", state="streaming") == 1
        assert value(samples, "camera_opens_total") == 1
        newest = camera.hub.latest.seq
        assert wait_for(lambda: camera.hub.latest.seq > newest + 10)      # this viewer is slow
        next(chunks), next(chunks)
    finally:
        stream.close()
    samples = scrape(client)
    assert value(samples, "camera_stream_frames_sent_total") == 2
    assert value(samples, "camera_stream_frames_dropped_total") >= 10
    assert value(samples, "camera_viewers") == 0


def test_a_recording_shows_in_the_metrics(client, app):
    recorder = app.extensions["recorder"]
    recorder.start()
    try:
        assert wait_for(lambda: value(scrape(client), "camera_recording_frames") > 0)
        assert value(scrape(client), "camera_recording") == 1
    finally:
        recorder.stop()
    assert value(scrape(client), "camera_recording") == 0


def test_events_are_counted_from_the_catalogue(client, app):
    catalogue, now = app.extensions["catalogue"], time.time()
    for age in range(100):                                # more than one page of events
        catalogue.add_event(now - 600 - age, "motion", end=now - 590 - age)
    for age in (2, 3):
        catalogue.add_event(now - age * 24 * 3600, "object", labels=["person"])
    samples = scrape(client)
    assert value(samples, "camera_events_last_day") == 100 and value(samples, "camera_events") == 102
    assert catalogue.count_events(since=now - 4 * 24 * 3600) == 102


def test_the_watch_state_shows_in_the_metrics(client, app, control):
    assert client.post("/motion/start", headers=control).status_code == 200
    assert value(scrape(client), "camera_motion_detection_on") == 1


def test_metrics_need_a_login_when_the_server_requires_one(settings):
    application = create_app(settings.replace(require_login=True))
    client = application.test_client()
    try:
        assert client.get("/metrics").status_code == 401
        assert value(scrape(client, headers={"X-User-Key": "sesame"}), "camera_viewers") == 0
        assert client.get("/metrics", headers={"X-User-Key": "sesame", "Host": "evil.example"}).status_code == 400
    finally:
        stop_services(application)


def test_each_app_has_its_own_registry(settings, tmp_path, client):
    other = create_app(settings.replace(media_dir=str(tmp_path / "other")))
    try:
        assert value(scrape(other.test_client()), "camera_viewers") == 0
        assert value(scrape(client), "camera_viewers") == 0
    finally:
        stop_services(other)


def test_a_scrape_does_not_stop_other_greenlets(app, monkeypatch):
    catalogue = app.extensions["catalogue"]
    held = Held(catalogue.count_events)
    monkeypatch.setattr(catalogue, "count_events", held)
    assert other_greenlets_run_while_held(lambda: app.test_client().get("/metrics"), held).status_code == 200


def test_a_media_folder_that_is_gone_leaves_out_its_free_space_only(client, app):
    """A media folder on a USB disk that was unplugged: the rest of the metrics still answers."""
    shutil.rmtree(app.config["MEDIA_DIR"])
    samples = scrape(client)
    assert ("camera_media_free_bytes", ()) not in samples and value(samples, "camera_viewers") == 0
