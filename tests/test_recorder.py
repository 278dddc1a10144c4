"""Recording: files that play (also after kill -9 or a full disk), bounded memory, limits, bad input."""
import errno
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from types import SimpleNamespace

import av
import numpy as np
import pytest

from camera_server.capture.camera import Camera
from camera_server.capture.demo import DemoSource
from camera_server.media import catalogue as media_catalogue
from camera_server.media import files as media_files
from camera_server.media import recorder as recorder_module
from camera_server.media.fields import CatalogueError
from camera_server.media.files import MediaExists, MediaNameError, being_written
from camera_server.media.recorder import InsufficientSpace, NotRecording, Recorder, RecordingBusy, RecordingError
from camera_server.media.video_file import EncoderQuality, VideoFileWriter, repair
from camera_server.media.writer import CatalogueWriter
from camera_server.web.app import create_app, stop_services
from conftest import ROOT, FakeSource, small_tmpfs, top_level_boxes, wait_for

MB = 1024 * 1024


def record(recorder, frames, filename=None):
    """Record until ``frames`` frames are written, then stop; answer stop()'s result."""
    recorder.start(filename)
    assert wait_for(lambda: recorder.status()["frames"] >= frames)
    return recorder.stop()


def frame_times(path, keyframes_only=False):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(packet.pts * stream.time_base) for packet in container.demux(stream)
                if packet.pts is not None and (packet.is_keyframe or not keyframes_only)]


def decode(path):
    """Every frame of the first video stream as RGB arrays, and the opened stream's facts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {"format": container.format.name, "codec": stream.codec_context.name,
                 "pix_fmt": stream.codec_context.pix_fmt, "profile": stream.codec_context.profile,
                 "duration": container.duration / 1e6 if container.duration else None}
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return frames, facts


class FakeCatalogue:
    """Records calls, and like the real catalogue refuses to list a file that is not there."""

    def __init__(self, media_dir):
        self.media_dir, self.calls, self.entries = media_dir, [], {}

    def put(self, filename, kind, **fields):
        assert (self.media_dir / filename).is_file(), "catalogued a file that is not there"
        self.calls.append("put")
        self.entries[filename] = dict(fields, kind=kind)

    def remove(self, filename, missing_ok=False):
        self.calls.append("remove")
        if filename in self.entries or not missing_ok:
            del self.entries[filename]


class NoiseSource(FakeSource):
    """Random pictures: they compress badly, so a recording fills a disk quickly."""

    def read(self):
        self.reads += 1
        return np.random.default_rng(self.reads).integers(0, 256, (self.height, self.width, 3), np.uint8)


@pytest.fixture
def media_dir(tmp_path):
    return tmp_path / "media"


@pytest.fixture
def make_recorder(fake_camera, media_dir):
    """Recorders over the fake camera (64x48, 100 fps), closed at the end of the test; with a
    ``catalogue``, its entries go through a catalogue writer that retries every 0.05 s."""
    made = []

    def make(camera=None, catalogue=None, give_up_s=600.0, **options):
        options.setdefault("min_free_mb", 0)
        if catalogue is not None:
            options["catalogue_writer"] = CatalogueWriter(catalogue, retry_s=0.05, give_up_s=give_up_s).start()
        made.append(Recorder(camera or fake_camera, media_dir, **options))
        return made[-1]

    yield make
    for recorder in made:
        recorder.close()
        if recorder.catalogue_writer is not None:
            recorder.catalogue_writer.close()


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory):
    """About 2.5 s recorded from the demo camera at 160x120, 30 fps: (path, stop() result)."""
    camera = Camera(DemoSource(160, 120, 30), kind="demo", width=160, height=120, idle_timeout=0.2)
    recorder = Recorder(camera, tmp_path_factory.mktemp("media"), min_free_mb=0)
    try:
        result = record(recorder, 75, "demo clip")
    finally:
        recorder.close()
        camera.stop()
    return recorder.media_dir / "demo clip.mp4", result


def test_a_recording_is_h264_in_a_regular_mp4_with_the_index_in_front(demo_clip):
    path, result = demo_clip
    assert result["file"] == "demo clip.mp4" and result["reason"] == "stopped" and result["error"] is None
    frames, facts = decode(path)
    assert "mp4" in facts["format"].split(",")
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["profile"] in ("Baseline", "Constrained Baseline", "Main")
    assert len(frames) == result["frames"] >= 75 and frames[0].shape == (120, 160, 3)
    assert result["duration"] == pytest.approx(facts["duration"], abs=0.01)
    assert result["duration"] == pytest.approx(result["frames"] / 30, rel=0.15)   # the capture timing
    assert result["size"] == path.stat().st_size and not result["fragmented"]
    keyframes = frame_times(path, keyframes_only=True)              # a fragment per keyframe while recording
    assert len(keyframes) >= 2 and all(0.9 <= later - earlier <= 1.1
                                       for earlier, later in zip(keyframes, keyframes[1:]))
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat") and "moof" not in boxes
    assert not [name for name in os.listdir(path.parent) if name.startswith(".")]   # no temporary left


def test_chromium_plays_the_recording_to_its_full_duration(demo_clip, browser_page):
    path, result = demo_clip
    page = browser_page
    page.goto(path.as_uri())          # chromium shows a media file in a <video> element
    video = "document.querySelector('video')"
    page.wait_for_function(f"{video} && {video}.readyState >= 2")
    duration = page.evaluate(f"{video}.duration")
    page.evaluate(f"{video}.currentTime = {video}.duration - 0.05")     # seek to the end
    page.wait_for_function(f"!{video}.seeking && {video}.readyState >= 2")
    assert duration == pytest.approx(result["duration"], abs=0.05)


def test_grayscale_and_half_resolution_mid_recording_keep_one_valid_size(make_recorder, fake_camera):
    recorder = make_recorder()
    recorder.start("toggled")
    for toggle in (lambda: fake_camera.set_half_resolution(True), lambda: fake_camera.set_grayscale(True),
                   lambda: fake_camera.set_half_resolution(False), lambda: None):
        written = recorder.status()["frames"]
        assert wait_for(lambda: recorder.status()["frames"] >= written + 15)
        toggle()
    result = recorder.stop()
    frames, facts = decode(recorder.media_dir / "toggled.mp4")
    assert len(frames) == result["frames"] and facts["pix_fmt"] == "yuv420p"
    assert {frame.shape for frame in frames} == {(48, 64, 3)}     # the first frame's size throughout
    first, last = frames[0].astype(int), frames[-1].astype(int)
    assert abs(first[..., 0] - first[..., 1]).mean() > 20          # colour at the start (red vs green)
    assert abs(last[..., 0] - last[..., 1]).mean() < 6             # gray at the end


@pytest.fixture
def stalled_disk(monkeypatch):
    """Every write waits (as on a stalled SD card) until the test sets the event it answers."""
    release = threading.Event()
    real_write = VideoFileWriter.write
    monkeypatch.setattr(VideoFileWriter, "write",
                        lambda self, image, captured: release.wait(30) and real_write(self, image, captured))
    yield release
    release.set()


def test_a_stalled_writer_drops_frames_and_memory_stays_flat(media_dir, stalled_disk):
    camera = Camera(FakeSource(320, 240, interval=0.01), kind="fake", width=320, height=240)
    release = stalled_disk
    recorder = Recorder(camera, media_dir, min_free_mb=0, queue_frames=5)
    tracemalloc.start()
    try:
        recorder.start("stalled")
        assert wait_for(lambda: recorder.status()["dropped"] >= 20)
        before = tracemalloc.get_traced_memory()[0]
        assert wait_for(lambda: recorder.status()["dropped"] >= 220)      # 200 more frames of 230 kB
        after = tracemalloc.get_traced_memory()[0]
        status = recorder.status()
        assert status["queued"] <= 5 and status["frames"] == 0
        assert after - before < 4 * MB
        release.set()
        result = recorder.stop()
    finally:
        tracemalloc.stop()
        release.set()
        recorder.close()
        camera.stop()
    assert result["dropped"] >= 220 and 1 <= result["frames"]
    assert len(decode(media_dir / "stalled.mp4")[0]) == result["frames"]


def test_a_wall_clock_jump_does_not_stretch_the_video(make_recorder, monkeypatch):
    real_time, offset = time.time, [0.0]
    monkeypatch.setattr(time, "time", lambda: real_time() + offset[0])
    recorder = make_recorder()
    recorder.start("clock")
    assert wait_for(lambda: recorder.status()["frames"] >= 20)
    offset[0] = 3600.0                    # NTP sets the clock of a Pi that booted without one
    written = recorder.status()["frames"]
    assert wait_for(lambda: recorder.status()["frames"] >= written + 20)
    result = recorder.stop()
    assert result["duration"] < 5


def test_a_recording_holds_the_camera_open_and_stop_lets_it_go(make_recorder, fake_camera):
    recorder = make_recorder()
    recorder.start("held")
    assert wait_for(lambda: recorder.status()["frames"] >= 40)      # twice the camera's idle timeout
    assert fake_camera.state == "streaming" and fake_camera.consumers == 1
    recorder.stop()
    assert fake_camera.consumers == 0


def test_one_recording_at_a_time(make_recorder):
    recorder = make_recorder()
    with pytest.raises(NotRecording):
        recorder.stop()
    recorder.start()
    with pytest.raises(RecordingBusy):
        recorder.start("second")
    assert recorder.status()["recording"]
    assert re.fullmatch(r"video_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.mp4", recorder.status()["file"])
    with pytest.raises(NotRecording):
        recorder.stop("an event clip that ended.mp4")   # stops only the recording it names
    recorder.stop(recorder.status()["file"])
    with pytest.raises(NotRecording):
        recorder.stop()
    assert not (recorder.media_dir / "second.mp4").exists()


@pytest.mark.parametrize("name", ["../escape.mp4", "sub/clip.mp4", "/tmp/clip.mp4", "nul\x00.mp4",
                                  "clip.avi", "", "   ", "bad\udcff.mp4", "x" * 200 + ".mp4", "rx.",
                                  "a" * 125, "日" * 100])
def test_bad_names_are_refused_and_leave_nothing(make_recorder, name):
    recorder = make_recorder()
    with pytest.raises(MediaNameError):
        recorder.start(name)
    assert not recorder.status()["recording"]
    assert not recorder.media_dir.exists() or list(recorder.media_dir.iterdir()) == []


def test_a_taken_name_is_refused_and_a_default_name_is_made_unique(make_recorder, media_dir, monkeypatch):
    monkeypatch.setattr(recorder_module, "timestamped_name", lambda prefix, extension: "video_now.mp4")
    recorder = make_recorder()
    media_dir.mkdir()
    (media_dir / "taken.mp4").write_bytes(b"keep me")
    with pytest.raises(MediaExists):
        recorder.start("taken")
    assert (media_dir / "taken.mp4").read_bytes() == b"keep me"
    first, second = record(recorder, 3), record(recorder, 3)     # both in the same second
    assert (first["file"], second["file"]) == ("video_now.mp4", "video_now-1.mp4")


def test_max_seconds_stops_the_recording(make_recorder):
    recorder = make_recorder(max_seconds=1)
    recorder.start("limited")
    assert wait_for(lambda: not recorder.status()["recording"])
    status = recorder.status()
    assert status["last_reason"] == "max_length" and "maximum length" in status["last_error"]
    frames, facts = decode(recorder.media_dir / "limited.mp4")
    assert frames and 0.5 < facts["duration"] <= 1.1


KILLED_RECORDER = """
import sys, threading
from camera_server.capture.camera import Camera
from camera_server.capture.demo import DemoSource
from camera_server.media.recorder import Recorder
recorder = Recorder(Camera(DemoSource(160, 120, 30), width=160, height=120), sys.argv[1], min_free_mb=0)
recorder.start("killed")
print("recording", flush=True)
threading.Event().wait()
"""


def test_a_recording_killed_with_sigkill_leaves_a_playable_file(tmp_path):
    path = tmp_path / "killed.mp4"
    child = subprocess.Popen([sys.executable, "-c", KILLED_RECORDER, str(tmp_path)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "recording"
        # Two whole fragments (a keyframe a second) are on disk: kill it in the middle of the third.
        assert wait_for(lambda: path.exists() and top_level_boxes(path).count("mdat") >= 2, timeout=20)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    frames, facts = decode(path)          # every frame decodes, without an error at the cut
    assert facts["codec"] == "h264" and len(frames) >= 45
    assert repair(path)                   # what the app can do at its next start
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat") and "moof" not in boxes
    assert len(decode(path)[0]) == len(frames) and not repair(path)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs as the media folder; most of it is taken by a ballast file."""
    with small_tmpfs(tmp_path / "small") as folder:
        (folder / "ballast").write_bytes(os.urandom(1400 * 1024))
        yield folder


def test_a_full_disk_stops_the_recording_cleanly_and_the_file_plays(small_disk):
    camera = Camera(NoiseSource(160, 120, interval=0.01), kind="noise", width=160, height=120)
    catalogue = FakeCatalogue(small_disk)
    writer = CatalogueWriter(catalogue).start()
    recorder = Recorder(camera, small_disk, catalogue_writer=writer, min_free_mb=0)
    try:
        recorder.start("filled")
        assert wait_for(lambda: not recorder.status()["recording"], timeout=30)
    finally:
        recorder.close()
        writer.close()
        camera.stop()
    status = recorder.status()
    assert status["last_reason"] == "disk_full" and "disk is full" in status["last_error"]
    path = small_disk / "filled.mp4"
    frames, facts = decode(path)          # trimmed to whole fragments: every frame decodes
    assert facts["codec"] == "h264" and len(frames) > 0
    assert catalogue.calls == ["put", "put"]
    assert catalogue.entries["filled.mp4"]["size"] == path.stat().st_size


def test_low_free_space_refuses_to_start(make_recorder, media_dir):
    recorder = make_recorder(min_free_mb=10 ** 9)
    with pytest.raises(InsufficientSpace, match="MB free"):
        recorder.start("never")
    assert not recorder.status()["recording"] and not (media_dir / "never.mp4").exists()


def test_free_space_falling_below_the_minimum_stops_the_recording(make_recorder, monkeypatch):
    recorder = make_recorder(min_free_mb=50)
    plenty = threading.Event()
    plenty.set()
    monkeypatch.setattr(recorder_module, "free_bytes", lambda path: 10 ** 12 if plenty.is_set() else 20 * MB)
    recorder.start("squeezed")
    assert wait_for(lambda: recorder.status()["frames"] >= 20)
    plenty.clear()
    assert wait_for(lambda: not recorder.status()["recording"])
    status = recorder.status()
    assert status["last_reason"] == "low_disk" and "below 50 MB" in status["last_error"]
    assert len(decode(recorder.media_dir / "squeezed.mp4")[0]) >= 20


def test_the_catalogue_gets_the_file_once_it_exists_and_its_size_at_the_end(make_recorder, fake_camera, media_dir):
    catalogue = FakeCatalogue(media_dir)
    fake_camera.name = "bench camera"
    recorder = make_recorder(catalogue=catalogue)
    recorder.start("listed")
    assert wait_for(lambda: "listed.mp4" in catalogue.entries)          # listed while it records
    assert catalogue.entries["listed.mp4"].get("size") is None
    assert wait_for(lambda: recorder.status()["frames"] >= 20)
    result = recorder.stop()                                            # answers once it is listed whole
    entry = catalogue.entries["listed.mp4"]
    assert catalogue.calls == ["put", "put"] and entry["kind"] == "video"
    assert (entry["width"], entry["height"], entry["camera"]) == (64, 48, "bench camera")
    assert entry["size"] == (media_dir / "listed.mp4").stat().st_size == result["size"]
    assert entry["duration"] == result["duration"] > 0


def test_the_finished_file_stays_locked_until_the_catalogue_has_it(make_recorder, media_dir):
    class LockCheckingCatalogue(FakeCatalogue):
        locked = []

        def put(self, filename, kind, **fields):
            self.locked.append(being_written(self.media_dir / filename))   # else a delete could take it
            super().put(filename, kind, **fields)

    catalogue = LockCheckingCatalogue(media_dir)
    recorder = make_recorder(catalogue=catalogue)
    recorder.start("finished")
    assert wait_for(lambda: catalogue.locked and recorder.status()["frames"] >= 20)
    result = recorder.stop()
    assert not result["fragmented"]                     # the file was replaced by its rewrite
    assert catalogue.locked == [True, True]             # the second put comes after the rewrite
    assert not being_written(media_dir / "finished.mp4")


def test_a_media_folder_without_file_locks_refuses_to_record_and_leaves_no_file(make_recorder, media_dir,
                                                                                  monkeypatch):
    def no_locks(descriptor, wait=True):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(media_files, "lock_for_writing", no_locks)
    recorder = make_recorder()
    with pytest.raises(RecordingError, match="cannot lock unlocked.mp4 for writing"):
        recorder.start("unlocked")
    assert list(media_dir.iterdir()) == [] and not recorder.status()["recording"]


def test_a_recording_without_a_picture_leaves_no_file_and_no_entry(make_recorder, fake_source, media_dir):
    fake_source.fail_open = "unplugged"           # only "no signal" frames
    catalogue = FakeCatalogue(media_dir)
    recorder = make_recorder(catalogue=catalogue)
    recorder.start("empty")
    assert (media_dir / "empty.mp4").exists()    # the name is reserved at once
    result = recorder.stop()
    assert result["file"] is None and result["frames"] == 0
    assert not (media_dir / "empty.mp4").exists() and catalogue.entries == {}


def test_the_pre_roll_comes_first_then_the_live_frames(make_recorder, fake_camera, media_dir):
    taken = []
    for frame in fake_camera.frames():            # what events.PreRoll keeps: seq, timestamp, jpeg
        taken.append(SimpleNamespace(seq=frame.seq, timestamp=frame.timestamp, jpeg=frame.jpeg))
        if len(taken) == 20:
            break
    catalogue = FakeCatalogue(media_dir)
    recorder = make_recorder(catalogue=catalogue)
    recorder.start("with pre-roll", preroll=taken)
    assert wait_for(lambda: recorder.status()["frames"] >= 40)
    result = recorder.stop()
    frames, _ = decode(media_dir / "with pre-roll.mp4")
    reds = [int(np.median(frame[..., 0])) for frame in frames]      # the fake camera counts in red
    assert len(frames) == result["frames"] >= 40
    assert reds[0] == pytest.approx(taken[0].seq, abs=3)
    assert all(later > earlier - 3 for earlier, later in zip(reds, reds[1:]))   # in order
    times = frame_times(media_dir / "with pre-roll.mp4")
    assert min(later - earlier for earlier, later in zip(times, times[1:])) > 0      # none twice, none back
    assert catalogue.entries["with pre-roll.mp4"]["created"] == taken[0].timestamp
    assert result["duration"] >= taken[-1].timestamp - taken[0].timestamp


def test_a_recording_falls_back_to_libx264(make_recorder):
    result = record(make_recorder(encoder="no_such_encoder"), 5, "fallback")
    assert result["encoder"] == "libx264" and result["frames"] >= 5


def test_the_configured_encoder_and_quality_reach_the_file_writer(settings, fake_camera, monkeypatch):
    given = []
    real_init = VideoFileWriter.__init__

    def spy(self, path, width, height, encoders, quality):
        given.append((encoders, quality))
        real_init(self, path, width, height, encoders, quality)

    monkeypatch.setattr(VideoFileWriter, "__init__", spy)
    application = create_app(settings.replace(record_encoder="libx264", record_crf=40, record_max_kbps=300),
                             camera=fake_camera)
    try:
        result = record(application.extensions["recorder"], 5, "configured")
    finally:
        stop_services(application)
    assert given == [(("libx264",), EncoderQuality(crf=40, max_kbps=300))]
    assert result["encoder"] == "libx264" and result["frames"] >= 5


def test_close_finishes_the_recording_and_a_stopped_camera_ends_one(make_recorder, fake_camera):
    recorder = make_recorder()
    recorder.start("at shutdown")
    assert wait_for(lambda: recorder.status()["frames"] >= 5)
    recorder.close()
    assert recorder.status()["last_reason"] == "shutdown" and not recorder.status()["recording"]
    assert decode(recorder.media_dir / "at shutdown.mp4")[0]
    with pytest.raises(RecordingError):
        recorder.start("after")
    other = make_recorder()
    other.start("camera gone")
    assert wait_for(lambda: other.status()["frames"] >= 5)
    fake_camera.stop()
    assert wait_for(lambda: not other.status()["recording"])
    assert other.status()["last_reason"] == "camera_stopped"


def test_stop_services_has_the_recording_finish_while_the_rest_closes(settings, fake_camera, monkeypatch):
    application = create_app(settings, camera=fake_camera)
    recorder, watch = application.extensions["recorder"], application.extensions["watch"]
    recorder.start("at shutdown")
    assert wait_for(lambda: recorder.status()["frames"] >= 5)
    finished_while_the_watch_closed, real_close = [], watch.close

    def close():        # the watch's close can take long (its thread, its last messages)
        finished_while_the_watch_closed.append(wait_for(lambda: not recorder.status()["recording"]))
        real_close()

    monkeypatch.setattr(watch, "close", close)
    stop_services(application)
    assert finished_while_the_watch_closed == [True]
    assert recorder.status()["last_reason"] == "shutdown" and not recorder.status()["last_error"]


def test_a_stalled_disk_keeps_the_queue_within_its_byte_budget(media_dir, stalled_disk):
    camera = Camera(FakeSource(640, 480, interval=0.01), kind="fake", width=640, height=480)
    release = stalled_disk
    recorder = Recorder(camera, media_dir, min_free_mb=0)         # the default queue limits
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        recorder.start("stalled")
        assert wait_for(lambda: recorder.status()["dropped"] >= 60)
        grown = tracemalloc.get_traced_memory()[0] - before
        queued = recorder.status()["queued"]
        release.set()
        recorder.stop()
    finally:
        tracemalloc.stop()
        release.set()
        recorder.close()
        camera.stop()
    assert 1 <= queued and queued * 640 * 480 * 3 <= recorder_module.QUEUE_BYTES
    assert grown < recorder_module.QUEUE_BYTES + 8 * MB   # however long the disk stalls, the queue is the bound


def test_the_recording_holds_the_writer_s_lock_and_its_file_gets_the_usual_mode(make_recorder, media_dir):
    recorder = make_recorder()
    old = os.umask(0o022)
    try:
        recorder.start("locked")
        assert being_written(media_dir / "locked.mp4")
        assert wait_for(lambda: recorder.status()["frames"] >= 10)
        assert being_written(media_dir / "locked.mp4")
        recorder.stop()
    finally:
        os.umask(old)
    assert not being_written(media_dir / "locked.mp4")
    assert stat.S_IMODE((media_dir / "locked.mp4").stat().st_mode) == 0o644
    assert sorted(path.name for path in media_dir.iterdir()) == ["locked.mp4"]


# -- whatever fails at the end, the recorder is released; a refused entry is put again later ----------------


@pytest.fixture
def failing_path_call(monkeypatch):
    """Make one Path method fail with an OSError for one file name."""
    def fail(method, name, code):
        real = getattr(recorder_module.Path, method)

        def failing(self, *args, **kwargs):
            if self.name == name:
                raise OSError(code, os.strerror(code), str(self))
            return real(self, *args, **kwargs)
        monkeypatch.setattr(recorder_module.Path, method, failing)
    return fail


def test_an_error_at_the_end_of_a_recording_still_releases_the_recorder(make_recorder, failing_path_call):
    recorder = make_recorder()
    failing_path_call("stat", "broken.mp4", errno.EIO)          # the file cannot be measured at its end
    result = record(recorder, 10, "broken")
    assert result["file"] == "broken.mp4" and "finishing the file failed" in result["error"]
    assert not recorder.status()["recording"]
    assert record(recorder, 10, "next")["file"] == "next.mp4"     # no restart needed


def test_a_recording_whose_empty_file_cannot_be_removed_still_releases_the_recorder(make_recorder, fake_source,
                                                                                    failing_path_call):
    fake_source.fail_open = "unplugged"                         # no frame: the empty file is removed at the end
    recorder = make_recorder()
    failing_path_call("unlink", "empty.mp4", errno.EACCES)
    recorder.start("empty")
    result = recorder.stop()
    assert result["file"] is None and "Permission denied" in result["error"]
    fake_source.fail_open = None
    assert record(recorder, 10, "after")["file"] == "after.mp4"


class RefusingCatalogue(FakeCatalogue):
    """A catalogue that is locked by another program until the test lets go."""

    def __init__(self, media_dir):
        super().__init__(media_dir)
        self.locked = False

    def put(self, filename, kind, **fields):
        if self.locked:
            raise sqlite3.OperationalError("database is locked")
        super().put(filename, kind, **fields)


def test_a_recording_the_catalogue_refused_at_its_end_is_catalogued_once_it_can(make_recorder, media_dir):
    catalogue = RefusingCatalogue(media_dir)
    recorder = make_recorder(catalogue=catalogue)
    recorder.start("late")
    assert wait_for(lambda: "late.mp4" in catalogue.entries and recorder.status()["frames"] >= 20)
    catalogue.locked = True
    result = recorder.stop()
    assert "database is locked" in result["error"] and "listed once the catalogue takes it" in result["error"]
    assert catalogue.entries["late.mp4"].get("size") is None
    assert being_written(media_dir / "late.mp4")           # nobody deletes it before it is listed whole
    catalogue.locked = False
    assert wait_for(lambda: catalogue.entries["late.mp4"].get("size") == result["size"])
    assert catalogue.entries["late.mp4"]["duration"] == result["duration"] > 0
    assert result["size"] == (media_dir / "late.mp4").stat().st_size
    assert wait_for(lambda: not being_written(media_dir / "late.mp4"))


def test_refused_entries_are_given_up_after_a_while_with_a_log_line(make_recorder, media_dir, caplog):
    catalogue = RefusingCatalogue(media_dir)
    recorder = make_recorder(catalogue=catalogue, give_up_s=0.0)
    recorder.start("never")
    assert wait_for(lambda: recorder.status()["frames"] >= 5)
    catalogue.locked = True
    result = recorder.stop()
    assert "the catalogue did not take its entry" in result["error"] and "the next start lists it" in result["error"]
    assert "gave up cataloguing its size and duration" in caplog.text
    assert recorder.catalogue_writer.waiting == [] and not being_written(media_dir / "never.mp4")


# -- a catalogue locked by another program: the recording never waits for it -------------------------------


def test_a_locked_catalogue_costs_no_frame_and_the_finished_file_stays_locked_until_it_is_listed(
        media_dir, tmp_path):
    media_dir.mkdir()
    catalogue = media_catalogue.MediaCatalogue(media_dir / "media.db", media_dir, busy_timeout=2.0)
    writer = CatalogueWriter(catalogue, retry_s=0.05).start()
    camera = Camera(FakeSource(64, 48, interval=0.05), kind="fake", width=64, height=48)   # 20 fps
    recorder = Recorder(camera, media_dir, catalogue_writer=writer, min_free_mb=0, queue_frames=10)
    holder = sqlite3.connect(media_dir / "media.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")                   # another program's long change (a backup, a prune)
    try:
        recorder.start("locked")
        assert wait_for(lambda: recorder.status()["frames"] >= 60, timeout=30)   # the first put waits 2 s
        result = recorder.stop()
        assert result["dropped"] == 0 and result["frames"] >= 60
        assert "database is locked" in result["error"] and "listed once the catalogue takes it" in result["error"]
        assert catalogue.get("locked.mp4") is None
        assert being_written(media_dir / "locked.mp4")  # /database/remove and the command line leave it alone
        assert recorder.start("next")["recording"]      # the recorder is free already
        recorder.request_stop("next.mp4")
    finally:
        holder.rollback()
        holder.close()
    try:
        assert wait_for(lambda: (catalogue.get("locked.mp4") or {}).get("size") == result["size"])
        assert catalogue.get("locked.mp4")["duration"] == result["duration"] > 0
        assert wait_for(lambda: not being_written(media_dir / "locked.mp4"))
        assert result["size"] == (media_dir / "locked.mp4").stat().st_size
    finally:
        recorder.close()
        writer.close()
        camera.stop()
        catalogue.close()


def test_the_stop_answer_keeps_an_error_noted_before_the_stop(make_recorder, media_dir):
    class NoFirstEntry(FakeCatalogue):
        def put(self, filename, kind, **fields):
            if "size" not in fields:
                raise CatalogueError("the catalogue refuses entries without a size")
            super().put(filename, kind, **fields)

    recorder = make_recorder(catalogue=NoFirstEntry(media_dir))
    recorder.start("noted")
    assert wait_for(lambda: recorder.status()["last_error"] is not None)
    result = recorder.stop()
    assert "did not list it while it recorded" in result["error"] and "without a size" in result["error"]
    assert result["reason"] == "stopped" and result["file"] == "noted.mp4"


# Recording the camera's live encode

def test_a_recording_writes_the_live_encode_that_the_viewers_get_without_encoding_again(make_recorder, media_dir):
    from camera_server.stream.h264 import LiveH264
    camera = Camera(DemoSource(160, 120, 30), kind="demo", width=160, height=120, idle_timeout=0.2)
    live = LiveH264(camera)
    try:
        recorder = make_recorder(camera, catalogue=FakeCatalogue(media_dir), live=live)
        with live.join() as viewer:
            viewer.next(timeout=10)
            result = record(recorder, 45, "shared")
            assert live.restarts == 0
        assert result["shared_encode"] and result["encoder"] == "libx264" and result["reason"] == "stopped"
        assert live.wait_stopped(10) and live.consumers == 0     # the recording left the encoder too
    finally:
        live.stop()
        camera.stop()
    frames, facts = decode(media_dir / "shared.mp4")
    times = frame_times(media_dir / "shared.mp4")
    assert len(frames) == result["frames"] >= 45 and frames[0].shape == (120, 160, 3)
    assert times[0] == 0.0 and times == sorted(times)                   # the file starts at 0, not at the live time
    assert frame_times(media_dir / "shared.mp4", keyframes_only=True)[0] == 0.0
    assert facts["format"].startswith("mov") and facts["duration"] == pytest.approx(result["duration"], abs=0.2)
    boxes = top_level_boxes(media_dir / "shared.mp4")
    assert boxes.index("moov") < boxes.index("mdat") and "moof" not in boxes   # rewritten, the index in front


def test_a_recording_with_a_pre_roll_encodes_its_own(make_recorder, media_dir, fake_camera):
    from camera_server.stream.h264 import LiveH264
    live = LiveH264(fake_camera)
    try:
        recorder = make_recorder(live=live)
        preroll = [fake_camera.current_frame() for _ in range(1)]
        recorder.start("with preroll", preroll=preroll)
        assert wait_for(lambda: recorder.status()["frames"] >= 5)
        assert not recorder.status()["shared_encode"] and live.consumers == 0
        assert not recorder.stop()["shared_encode"]
    finally:
        live.stop()
