"""MP4 files: the choice of H.264 encoder and the quality settings it is given, crash repair."""
import os
import stat

import av
import numpy as np
import pytest

from camera_server.media import video_file
from camera_server.media.files import being_written, open_regular_file
from camera_server.media.video_file import (EncoderQuality, VideoFileError, VideoFileWriter, configure_encoder,
                                            default_encoders, mp4_boxes, pick_encoder, recover_interrupted,
                                            rewrite_with_index_in_front)
from test_media_files import LockedByAnotherProcess
from test_media_routes import write_fragmented_mp4


def textured_pictures(count, noise):
    """The same pictures on every call: a moving gradient with seeded noise of amplitude ``noise``."""
    rng = np.random.default_rng(7)
    ramp = np.add.outer(np.arange(120), np.arange(160)).astype(np.int16)
    return [np.clip(((ramp + 4 * index) % 256)[..., None] + rng.integers(-noise, noise + 1, (120, 160, 3)),
                    0, 255).astype(np.uint8) for index in range(count)]


def written_size(path, quality, pictures):
    """Write ``pictures`` at 30 fps with libx264 and ``quality``; answer the file's size."""
    path.touch()                        # as the recorder reserves the name before the first frame
    writer = VideoFileWriter(path, 160, 120, ("libx264",), quality)
    for index, picture in enumerate(pictures):
        writer.write(picture, index / 30)
    writer.close()
    return path.stat().st_size


def test_encoders_fall_back_to_libx264():
    assert default_encoders("aarch64") == ("h264_v4l2m2m", "libx264")
    assert default_encoders("x86_64") == ("libx264",)
    assert pick_encoder(("no_such_encoder", "libx264"), 64, 48) == "libx264"
    with pytest.raises(VideoFileError, match="no H.264 encoder"):
        pick_encoder(("no_such_encoder",), 64, 48)


def test_a_lower_crf_gives_a_bigger_file_for_the_same_pictures(tmp_path):
    pictures = textured_pictures(30, noise=12)
    fine = written_size(tmp_path / "fine.mp4", EncoderQuality(crf=18, max_kbps=100_000), pictures)
    coarse = written_size(tmp_path / "coarse.mp4", EncoderQuality(crf=36, max_kbps=100_000), pictures)
    assert fine > 2 * coarse


def test_the_bit_rate_cap_holds_a_busy_scene_down(tmp_path):
    pictures = textured_pictures(90, noise=100)         # three seconds of near noise
    capped = written_size(tmp_path / "capped.mp4", EncoderQuality(crf=18, max_kbps=300), pictures)
    loose = written_size(tmp_path / "loose.mp4", EncoderQuality(crf=18, max_kbps=20_000), pictures)
    most_bits = 2 * 300_000 + 3 * 300_000           # the buffer (twice the cap) and three seconds at the cap
    assert capped * 8 <= 1.1 * most_bits
    assert loose > 3 * capped


def test_the_hardware_encoder_aims_at_three_bits_per_pixel_up_to_the_cap():
    context = av.CodecContext.create("libx264", "w")    # stands in for the Pi's encoder, which is not here
    configure_encoder(context, "h264_v4l2m2m", 640, 480, EncoderQuality(max_kbps=2000))
    assert context.bit_rate == 640 * 480 * 3
    configure_encoder(context, "h264_v4l2m2m", 1920, 1080, EncoderQuality(max_kbps=2000))
    assert context.bit_rate == 2_000_000


@pytest.mark.parametrize("crf, max_kbps", [(1, 100), (51, 100_000)])
def test_libx264_opens_at_the_ends_of_the_configurable_ranges(crf, max_kbps):
    assert pick_encoder(("libx264",), 64, 48, EncoderQuality(crf=crf, max_kbps=max_kbps)) == "libx264"


def test_a_recording_that_cannot_be_repaired_does_not_stop_the_start_up(tmp_path, monkeypatch):
    (tmp_path / "broken.mp4").write_bytes(b"not an mp4")
    (tmp_path / "mismatch.mp4").write_bytes(b"rewritten with fewer frames")

    real_repair = video_file.repair

    def repair(path, descriptor=None):
        if path.name == "mismatch.mp4":
            raise VideoFileError("the rewritten file has 3 frames, not 90")
        return real_repair(path, descriptor)

    monkeypatch.setattr(video_file, "repair", repair)
    assert recover_interrupted(tmp_path) == {}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.mp4", "mismatch.mp4"]   # kept for a person to look at


def test_start_up_repair_leaves_a_file_another_process_is_recording_alone(tmp_path):
    write_fragmented_mp4(tmp_path / "live.mp4")
    (tmp_path / "reserved.mp4").write_bytes(b"")
    before = (tmp_path / "live.mp4").read_bytes()
    with LockedByAnotherProcess(tmp_path / "live.mp4"), LockedByAnotherProcess(tmp_path / "reserved.mp4"):
        assert recover_interrupted(tmp_path) == {}
        assert (tmp_path / "live.mp4").read_bytes() == before and (tmp_path / "reserved.mp4").exists()
    assert set(recover_interrupted(tmp_path)) == {"live.mp4"}       # once the recording is over
    assert not (tmp_path / "reserved.mp4").exists()


def test_start_up_repair_finds_recordings_whatever_the_case_of_mp4(tmp_path):
    write_fragmented_mp4(tmp_path / "upper.MP4")
    (tmp_path / "empty.Mp4").write_bytes(b"")
    assert set(recover_interrupted(tmp_path)) == {"upper.MP4"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["upper.MP4"]


def test_a_rewritten_file_is_locked_until_the_caller_closes_the_descriptor_it_answers(tmp_path):
    path = tmp_path / "finished.mp4"
    write_fragmented_mp4(path)
    descriptor = rewrite_with_index_in_front(path)
    try:
        assert "moof" not in [kind for kind, _, _ in mp4_boxes(path)]      # the new file is in place
        assert being_written(path)
    finally:
        os.close(descriptor)
    assert not being_written(path)


def test_a_rewritten_recording_gets_the_usual_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_fragmented_mp4(tmp_path / "crashed.mp4")
        assert set(recover_interrupted(tmp_path)) == {"crashed.mp4"}
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "crashed.mp4").stat().st_mode) == 0o644
    assert [path.name for path in tmp_path.iterdir()] == ["crashed.mp4"]      # no temporary left


def test_start_up_repair_never_touches_a_link_s_target(tmp_path):
    media_dir, outside = tmp_path / "media", tmp_path / "outside.mp4"
    media_dir.mkdir()
    write_fragmented_mp4(outside)
    with open(outside, "ab") as handle:
        handle.write(b"\x00\x00\x00\x10moof cut short")       # what a crash would have cut
    (tmp_path / "empty.mp4").write_bytes(b"")
    before = outside.read_bytes()
    os.symlink(outside, media_dir / "linked.mp4")
    os.symlink(tmp_path / "empty.mp4", media_dir / "empty-link.mp4")
    assert recover_interrupted(media_dir) == {}
    assert outside.read_bytes() == before and (tmp_path / "empty.mp4").exists()


def test_repair_works_on_the_open_file_even_when_a_link_takes_its_name(tmp_path):
    """Start-up repair opens the file once; a link planted under its name afterwards is never followed
    (a truncate by name would have cut the link's target)."""
    write_fragmented_mp4(tmp_path / "crashed.mp4")
    with open(tmp_path / "crashed.mp4", "ab") as handle:
        handle.write(b"\x00\x00\x10\x00moof" + b"cut short")         # an unfinished fragment
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"v" * 100_000)
    with open_regular_file(tmp_path / "crashed.mp4", writable=True) as handle:
        (tmp_path / "crashed.mp4").rename(tmp_path / "elsewhere.mp4")
        (tmp_path / "crashed.mp4").symlink_to(victim)
        assert video_file.repair(tmp_path / "crashed.mp4", handle.fileno())
    assert victim.read_bytes() == b"v" * 100_000
    assert not (tmp_path / "crashed.mp4").is_symlink()                  # the rename replaced the link itself
    assert "moof" not in [kind for kind, _, _ in mp4_boxes(tmp_path / "crashed.mp4")]
