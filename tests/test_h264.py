"""Live H.264: one shared encoder per camera, its fragmented MP4, the feeds that read it, the HTTP stream."""
import base64
import io
import itertools
import logging
import urllib.request

import av
import pytest

from camera_server.capture.camera import Camera
from camera_server.capture.demo import DemoSource
from camera_server.stream.fmp4 import LiveMp4Writer, codecs_string
from camera_server.stream.h264 import EncoderUnavailable, LiveH264, StreamChanged
from conftest import wait_for
from server_process import start_server, status, stop_server

WIDTH, HEIGHT = 160, 120


@pytest.fixture
def camera():
    camera = Camera(DemoSource(WIDTH, HEIGHT, 30), kind="demo", width=WIDTH, height=HEIGHT, idle_timeout=0.2)
    yield camera
    camera.stop()


@pytest.fixture
def live(camera):
    encoder = LiveH264(camera, keyframe_interval_s=0.2)      # a keyframe every 6 frames: short groups
    yield encoder
    encoder.stop()


def read(feed, count):
    items = [feed.next(timeout=10) for _ in range(count)]
    assert None not in items, "the encoder stopped delivering"
    return items


def decoded(*items):
    """The pictures a player gets from these segments and fragments, concatenated."""
    with av.open(io.BytesIO(b"".join(item.data for item in items))) as container:
        return list(container.decode(video=0))


def fragments_until_keyframes(feed, keyframes):
    """Read ``feed`` until it has had ``keyframes`` more keyframes; answer what it read."""
    items = []
    while sum(item.keyframe for item in items if not item.is_init) < keyframes:
        items += read(feed, 1)
    return items


# The encoder and its feeds

def test_a_feed_gets_the_initialization_segment_then_fragments_that_decode_into_its_frames(live):
    with live.join() as feed:
        init, *fragments = read(feed, 31)
        assert live.mime == init.mime
    assert init.is_init and (init.width, init.height) == (WIDTH, HEIGHT) and init.encoder == "libx264"
    assert init.mime.startswith('video/mp4; codecs="avc1.4D40')        # main profile, then the level
    assert init.data[4:8] == b"ftyp" and b"moov" in init.data
    assert all(not fragment.is_init and fragment.data[4:8] == b"moof" for fragment in fragments)
    assert fragments[0].keyframe
    assert [fragment.seq for fragment in fragments] == list(range(fragments[0].seq, fragments[0].seq + 30))
    assert all(earlier.timestamp < later.timestamp for earlier, later in itertools.pairwise(fragments))
    pictures = decoded(init, *fragments)
    assert len(pictures) == 30 and {(picture.width, picture.height) for picture in pictures} == {(WIDTH, HEIGHT)}


def test_the_profile_and_the_keyframe_interval_are_the_encoder_s(camera):
    live = LiveH264(camera, profile="baseline", keyframe_interval_s=0.5)
    try:
        with live.join() as feed:
            init, *fragments = read(feed, 46)
    finally:
        live.stop()
    assert init.mime.startswith('video/mp4; codecs="avc1.42')
    # A keyframe each 0.5 s of capture time (15 frames at 30 fps; fewer when a busy machine slows the camera).
    keyframes = [fragment.timestamp for fragment in fragments if fragment.keyframe]
    assert fragments[0].keyframe and len(keyframes) >= 2
    assert all(0.495 <= later - earlier < 1.0 for earlier, later in zip(keyframes, keyframes[1:])), keyframes


def test_a_late_joiner_gets_the_same_initialization_segment_then_starts_at_the_newest_keyframe(live):
    with live.join() as first:
        init, *earlier = read(first, 21)
        with live.join() as late:
            late_init, *late_fragments = read(late, 10)
    assert late_init.data == init.data and late_init.run == init.run
    assert late_fragments[0].keyframe and late_fragments[0].seq > earlier[0].seq
    assert len(decoded(late_init, *late_fragments)) == len(late_fragments) == 9


def test_a_slow_feed_skips_whole_groups_of_pictures_and_then_reads_on_in_order(camera):
    live = LiveH264(camera, keyframe_interval_s=0.2, max_lag_s=0.3)
    try:
        with live.join() as slow, live.join() as fast:
            _, started = read(slow, 2)
            fragments_until_keyframes(fast, 4)         # 0.6 s or more; meanwhile the slow one reads nothing
            resumed, *after = read(slow, 3)
    finally:
        live.stop()
    assert resumed.keyframe and resumed.seq > started.seq + 1
    assert slow.skips == 1
    assert [fragment.seq for fragment in after] == [resumed.seq + 1, resumed.seq + 2]


def test_the_buffer_stays_within_its_bounds_and_always_offers_a_keyframe(camera):
    live = LiveH264(camera, keyframe_interval_s=5, max_buffer_fragments=8)   # a group longer than the buffer
    try:
        with live.join() as feed:
            read(feed, 1)
            for fragment in read(feed, 40):
                assert live.buffered_fragments <= 8
            keyframes = [fragment.seq for fragment in read(feed, 30) if fragment.keyframe]
            with live.join() as late:
                _, first = read(late, 2)
    finally:
        live.stop()
    assert len(keyframes) >= 3                  # made when the buffer lost its keyframe, not every 5 s
    assert first.keyframe


def test_the_buffer_is_bounded_in_bytes_too(camera):
    live = LiveH264(camera, keyframe_interval_s=5, max_buffer_bytes=20_000)
    try:
        with live.join() as feed:
            for _ in read(feed, 60):
                assert live.buffered_bytes <= 20_000
    finally:
        live.stop()


def test_the_encoder_stops_when_its_last_feed_leaves_and_gives_the_camera_back(live, camera):
    before = camera.consumers
    first, second = live.join(), live.join()
    read(first, 2), read(second, 2)
    assert live.running and camera.consumers == before + 1      # one encode for both
    first.close()
    first.close()                                               # counted once
    read(second, 5)                                             # the other one still gets fragments
    assert live.consumers == 1
    second.close()
    assert live.wait_stopped(10) and not live.running
    assert camera.consumers == before and live.consumers == 0 and live.buffered_fragments == 0
    with live.join() as again:                                  # and starts again for the next one
        init, fragment = read(again, 2)
    assert init.is_init and fragment.keyframe and len(decoded(init, fragment)) == 1


def test_an_encoder_that_cannot_start_is_a_clear_error_and_holds_nothing(camera):
    live = LiveH264(camera, encoders=("no_such_encoder",))
    with pytest.raises(EncoderUnavailable, match="camera demo has no live H.264: no H.264 encoder works"):
        live.join()
    assert live.consumers == 0 and not live.running and camera.consumers == 0


def test_an_encoder_error_starts_a_new_run_logged_once_and_the_feed_goes_on(live, monkeypatch, caplog):
    write, calls = LiveMp4Writer.write, itertools.count()

    def fails_twice(writer, image, captured):
        if next(calls) in (10, 11):         # the run's 11th frame, then the next run's first
            raise av.error.FFmpegError(-22, "injected encoder failure")
        return write(writer, image, captured)
    monkeypatch.setattr(LiveMp4Writer, "write", fails_twice)
    with caplog.at_level(logging.ERROR, logger="camera_server.stream.h264"), live.join() as feed:
        items = read(feed, 25)
    inits = [index for index, item in enumerate(items) if item.is_init]
    assert len(inits) == 2 and items[inits[1]].run == items[0].run + 1
    restarted = items[inits[1]:]
    assert restarted[1].keyframe and restarted[1].seq > items[inits[1] - 1].seq
    assert len(decoded(*restarted)) == len(restarted) - 1
    assert live.restarts == 2
    assert len([record for record in caplog.records if "encoder failed" in record.getMessage()]) == 1


def test_one_mp4_stream_leaves_out_a_restart_s_equal_segment_and_ends_at_another_picture_size(
        live, camera, monkeypatch):
    write, calls = LiveMp4Writer.write, itertools.count()

    def fails_once(writer, image, captured):
        if next(calls) == 10:
            raise av.error.FFmpegError(-22, "injected encoder failure")
        return write(writer, image, captured)
    monkeypatch.setattr(LiveMp4Writer, "write", fails_once)
    with live.join() as feed:
        first, *fragments = [feed.next_in_stream(timeout=10) for _ in range(25)]
        assert first.is_init and None not in fragments and not any(item.is_init for item in fragments)
        assert live.restarts == 1                       # the restart's equal segment was left out
        camera.set_half_resolution(True)
        with pytest.raises(StreamChanged, match="another picture size"):
            for _ in range(60):
                feed.next_in_stream(timeout=10)


def test_the_codecs_string_comes_from_the_sps_in_either_form():
    annex_b = bytes.fromhex("0000000167640028acd940") + bytes.fromhex("0000000168ebe3cb")
    assert codecs_string(annex_b) == "avc1.640028"
    assert codecs_string(bytes.fromhex("014d401fffe1")) == "avc1.4D401F"       # avcC
    with pytest.raises(ValueError, match="no SPS"):
        codecs_string(bytes.fromhex("0000000168ebe3cb"))


# The HTTP stream for players

@pytest.fixture
def settings(settings):
    return settings.replace(width=WIDTH, height=HEIGHT, live_keyframe_s=0.25)


def read_mp4(client, url, fragments=10, **options):
    """The initialization segment and ``fragments`` fragments of an MP4 stream, then the stream closed."""
    response = client.get(url, buffered=False, **options)
    assert response.status_code == 200, response.get_data(as_text=True)
    try:
        assert response.mimetype == "video/mp4" and response.headers["Cache-Control"] == "no-store"
        return list(itertools.islice(response.response, fragments + 1))
    finally:
        response.close()


def pictures_of(chunks):
    with av.open(io.BytesIO(b"".join(chunks))) as container:
        return [(picture.width, picture.height, picture.key_frame) for picture in container.decode(video=0)]


def test_players_get_the_live_h264_as_fragmented_mp4(client, app):
    pictures = pictures_of(read_mp4(client, "/video_feed.mp4"))
    assert len(pictures) == 10 and pictures[0] == (WIDTH, HEIGHT, True)
    unit = app.extensions["cameras"].default
    assert unit.camera.viewers == 0 and unit.live_h264.consumers == 0      # the closed stream left


def test_the_h264_stream_of_another_camera_is_under_its_name(client, app, settings):
    app.extensions["cameras"].add(settings.replace(camera_name="porch", width=96, height=64))
    pictures = pictures_of(read_mp4(client, "/cam/porch/video_feed.mp4", fragments=3))
    assert pictures[0] == (96, 64, True) and len(pictures) == 3


def test_the_h264_stream_counts_as_a_viewer_like_the_mjpeg_one(app, client):
    app.config["SETTINGS"] = app.config["SETTINGS"].replace(max_viewers=1)
    stream = client.get("/video_feed.mp4", buffered=False)
    try:
        assert app.extensions["cameras"].default.camera.viewers == 1
        for url in ("/video_feed.mp4", "/video_feed"):
            refused = client.get(url)
            assert refused.status_code == 503 and "max_viewers" in refused.get_json()["error"]
    finally:
        stream.close()
    assert app.extensions["cameras"].default.camera.viewers == 0


def test_status_and_metrics_show_the_live_encoder_while_it_runs(app, client):
    assert client.get("/status").get_json()["live_h264"] == {"running": False, "consumers": 0, "encoder": None,
                                                             "mime": None, "restarts": 0}
    stream = client.get("/video_feed.mp4", buffered=False)
    try:
        next(iter(stream.response))                 # the initialization segment: the encoder runs
        live = client.get("/status").get_json()["live_h264"]
        assert live["running"] and live["consumers"] == 1 and live["encoder"] == "libx264"
        assert live["mime"].startswith('video/mp4; codecs="avc1.')
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'camera_live_h264_consumers{camera="demo"} 1.0' in metrics
        assert 'camera_live_h264_restarts_total{camera="demo"} 0.0' in metrics
    finally:
        stream.close()


def test_a_camera_without_an_h264_encoder_answers_why_and_keeps_its_jpeg_stream(app, client):
    unit = app.extensions["cameras"].default
    unit.live_h264 = LiveH264(unit.camera, encoders=("no_such_encoder",))
    response = client.get("/video_feed.mp4")
    assert response.status_code == 503
    assert "no H.264 encoder works" in response.get_json()["error"] and "JPEG" in response.get_json()["error"]
    assert unit.camera.viewers == 0
    assert client.get("/latest.jpg").status_code == 200


class TestWithLogin:
    @pytest.fixture
    def settings(self, settings):
        return settings.replace(require_login=True)

    def test_players_get_a_basic_auth_challenge_and_may_answer_it_with_the_userkey(self, client):
        refused = client.get("/video_feed.mp4", headers={"Accept": "*/*"})
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="camera"'
        assert client.get("/video_feed.mp4", auth=("vlc", "guess")).status_code == 401
        basic = {"Authorization": "Basic " + base64.b64encode(b"vlc:sesame").decode()}
        assert len(pictures_of(read_mp4(client, "/video_feed.mp4", fragments=2, headers=basic))) == 2

    def test_the_userkey_header_opens_it_too_also_under_a_camera_s_name(self, client, app, settings):
        app.extensions["cameras"].add(settings.replace(camera_name="porch"))
        assert client.get("/cam/porch/video_feed.mp4").status_code == 401
        key = {"X-User-Key": "sesame"}
        assert len(pictures_of(read_mp4(client, "/cam/porch/video_feed.mp4", fragments=2, headers=key))) == 2


@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_ffmpeg_plays_the_stream_of_the_real_server_while_it_answers_other_requests(
        tmp_path, free_port, monkeypatch, worker):
    monkeypatch.setenv("WORKER_CLASS", worker)
    process = start_server(tmp_path, free_port, width=WIDTH, height=HEIGHT)
    try:
        with av.open(f"http://127.0.0.1:{free_port}/video_feed.mp4", timeout=10) as container:
            pictures = list(itertools.islice(container.decode(video=0), 15))
            assert status(free_port)["camera"]["viewers"] == 1     # the stream's waits block no request
        assert len(pictures) == 15 and (pictures[0].width, pictures[0].height) == (WIDTH, HEIGHT)
        assert wait_for(lambda: status(free_port)["camera"]["viewers"] == 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/video_feed.mp4", timeout=10) as stream:
            assert stream.headers["Content-Type"] == "video/mp4"
    finally:
        stop_server(process)
