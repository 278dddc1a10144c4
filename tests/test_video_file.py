"""MP4 files: the choice of H.264 encoder."""
import pytest

from video_file import VideoFileError, default_encoders, pick_encoder


def test_encoders_fall_back_to_libx264():
    assert default_encoders("aarch64") == ("h264_v4l2m2m", "libx264")
    assert default_encoders("x86_64") == ("libx264",)
    assert pick_encoder(("no_such_encoder", "libx264"), 64, 48) == "libx264"
    with pytest.raises(VideoFileError, match="no H.264 encoder"):
        pick_encoder(("no_such_encoder",), 64, 48)
