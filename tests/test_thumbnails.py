"""Thumbnails (media/thumbnails.py): made from a picture or a video's first frame, kept once in the hidden
media/.thumbnails folder and made again when the file changes, removed with the media file, never
through a symbolic link, and never seen by the catalogue's scan or retention."""
import errno
import os

import av
import cv2
import numpy as np
import pytest

from camera_server.media import thumbnails
from camera_server.media.catalogue import MediaCatalogue
from camera_server.media.files import MediaNameError
from camera_server.media.thumbnails import make_thumbnail, remove_thumbnail, thumbnail_path


@pytest.fixture
def media_dir(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    return folder.resolve()


@pytest.fixture
def catalogue(media_dir):
    opened = MediaCatalogue(media_dir / "media.db", media_dir)
    yield opened
    opened.close()


def write_picture(path, width=1280, height=720, colour=(0, 0, 200)):
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = colour
    path.write_bytes(cv2.imencode(path.suffix, image)[1].tobytes())
    return path


def write_video(path, frames=12, size=(640, 360)):
    """An MP4 whose first frame is green and the others blue."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for index in range(frames):
            image = np.zeros((size[1], size[0], 3), np.uint8)
            image[:] = (0, 200, 0) if index == 0 else (200, 0, 0)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return path


def decoded(jpeg):
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_a_picture_s_thumbnail_is_a_small_jpeg_kept_in_the_hidden_folder(media_dir):
    write_picture(media_dir / "porch.jpg")
    jpeg = make_thumbnail(media_dir, "porch.jpg")
    image = decoded(jpeg)
    assert image.shape == (180, 320, 3)
    assert abs(int(image[90, 160, 2]) - 200) < 10                # the picture's red, shrunk
    kept = thumbnail_path(media_dir, "porch.jpg")
    assert kept == media_dir / ".thumbnails" / "porch.jpg.jpg" and kept.read_bytes() == jpeg
    assert [path.name for path in kept.parent.iterdir()] == ["porch.jpg.jpg"]    # no temporary left
    assert decoded(make_thumbnail(media_dir, "porch.jpg", width=100)).shape == (56, 100, 3)   # made, not kept
    assert kept.read_bytes() == jpeg


def test_a_small_picture_is_not_made_larger(media_dir):
    write_picture(media_dir / "small.png", width=100, height=50)
    assert decoded(make_thumbnail(media_dir, "small.png")).shape == (50, 100, 3)


def test_a_video_s_thumbnail_is_its_first_frame(media_dir):
    write_video(media_dir / "walk.mp4")
    image = decoded(make_thumbnail(media_dir, "walk.mp4"))
    assert image.shape == (180, 320, 3)
    blue, green, red = (int(value) for value in image[90, 160])
    assert green > 150 and blue < 50 and red < 50
    assert thumbnail_path(media_dir, "walk.mp4").is_file()


def test_the_thumbnail_is_made_once_and_again_when_the_file_changes(media_dir, monkeypatch):
    path = write_picture(media_dir / "porch.jpg")
    first = make_thumbnail(media_dir, "porch.jpg")
    kept = thumbnail_path(media_dir, "porch.jpg")
    made = kept.stat()

    def no_second_encode(*args, **kwargs):
        raise AssertionError("the kept thumbnail should have been used")
    monkeypatch.setattr(thumbnails, "_shrunk_jpeg", no_second_encode)
    assert make_thumbnail(media_dir, "porch.jpg") == first
    assert kept.stat().st_ino == made.st_ino and kept.stat().st_mtime_ns == made.st_mtime_ns
    monkeypatch.undo()

    write_picture(path, colour=(200, 0, 0))                    # another picture of the same name
    os.utime(path, ns=(made.st_mtime_ns - 10**9, made.st_mtime_ns - 10**9))   # even an older one
    again = decoded(make_thumbnail(media_dir, "porch.jpg"))
    assert int(again[90, 160, 0]) > 150 and kept.stat().st_ino != made.st_ino


def test_a_thumbnail_cut_short_is_made_again(media_dir):
    write_picture(media_dir / "porch.jpg")
    whole = make_thumbnail(media_dir, "porch.jpg")
    kept = thumbnail_path(media_dir, "porch.jpg")
    stamp = kept.stat().st_mtime_ns
    kept.write_bytes(whole[:100])
    os.utime(kept, ns=(stamp, stamp))
    assert make_thumbnail(media_dir, "porch.jpg") == whole


def test_a_large_jpeg_is_decoded_smaller_and_a_png_whole(media_dir, monkeypatch):
    # A panorama of 12800x1600 takes 61 MB decoded whole; 1/8 of it still gives the 320 pixels.
    write_picture(media_dir / "pano.jpg", width=12800, height=1600)
    write_picture(media_dir / "porch.jpg", width=960, height=540)
    write_picture(media_dir / "wide.png", width=3200, height=400)
    decodings, real_decode = [], cv2.imdecode
    monkeypatch.setattr(thumbnails.cv2, "imdecode",
                        lambda data, flags: decodings.append(flags) or real_decode(data, flags))
    made = [make_thumbnail(media_dir, name) for name in ("pano.jpg", "porch.jpg", "wide.png")]
    assert decodings == [cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_COLOR]
    assert [decoded(jpeg).shape for jpeg in made] == [(40, 320, 3), (180, 320, 3), (40, 320, 3)]


@pytest.mark.parametrize("content", [b"", b"not a picture at all", b"\xff\xd8\xff\xe0 broken jpeg"])
@pytest.mark.parametrize("name", ["broken.jpg", "broken.mp4"])
def test_a_file_that_cannot_be_decoded_has_none(media_dir, name, content):
    (media_dir / name).write_bytes(content * 50)
    assert make_thumbnail(media_dir, name) is None
    assert not thumbnail_path(media_dir, name).exists()


def test_an_absent_file_has_none(media_dir):
    assert make_thumbnail(media_dir, "nothing.jpg") is None


def test_a_symbolic_link_is_never_followed(media_dir, tmp_path):
    write_picture(tmp_path / "private.jpg")
    os.symlink(tmp_path / "private.jpg", media_dir / "link.jpg")
    assert make_thumbnail(media_dir, "link.jpg") is None
    write_picture(media_dir / "porch.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, media_dir / ".thumbnails")           # the thumbnail folder a link: not written through
    assert decoded(make_thumbnail(media_dir, "porch.jpg")).shape == (180, 320, 3)
    assert list(elsewhere.iterdir()) == []
    (elsewhere / "porch.jpg.jpg").write_bytes(b"kept elsewhere")
    remove_thumbnail(media_dir, "porch.jpg")
    assert (elsewhere / "porch.jpg.jpg").exists()


@pytest.mark.parametrize("name", ["../porch.jpg", "a/b.jpg", "..", "x\x00.jpg"])
def test_names_outside_the_folder_are_refused(media_dir, name):
    with pytest.raises(MediaNameError):
        make_thumbnail(media_dir, name)
    with pytest.raises(MediaNameError):
        thumbnail_path(media_dir, name)
    remove_thumbnail(media_dir, name)                           # nothing to remove, no error


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_disk_that_cannot_keep_it_still_gets_the_thumbnail(media_dir, monkeypatch, error, caplog):
    write_picture(media_dir / "porch.jpg")

    def refused(*args, **kwargs):
        raise OSError(error, os.strerror(error))
    monkeypatch.setattr(thumbnails, "_keep", refused)
    assert decoded(make_thumbnail(media_dir, "porch.jpg")).shape == (180, 320, 3)
    assert "not kept" in caplog.text and not thumbnail_path(media_dir, "porch.jpg").exists()


def test_a_full_disk_leaves_no_temporary(media_dir, monkeypatch):
    write_picture(media_dir / "porch.jpg")
    real_replace = os.replace

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(thumbnails.os, "replace", full)
    assert make_thumbnail(media_dir, "porch.jpg") is not None
    monkeypatch.setattr(thumbnails.os, "replace", real_replace)
    assert list((media_dir / ".thumbnails").iterdir()) == []


def test_deleting_the_media_file_removes_its_thumbnail(catalogue, media_dir):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_picture(media_dir / name)
        catalogue.add(name)
        make_thumbnail(media_dir, name)
    catalogue.remove("a.jpg")                                   # the file stays, and so does its thumbnail
    assert thumbnail_path(media_dir, "a.jpg").exists()
    catalogue.add("a.jpg")
    catalogue.remove("a.jpg", delete_file=True)
    assert not thumbnail_path(media_dir, "a.jpg").exists()
    catalogue.update("b.jpg", created=1.0)                       # old: pruned by age
    assert [entry["filename"] for entry in catalogue.prune(max_age_days=1)] == ["b.jpg"]
    assert not thumbnail_path(media_dir, "b.jpg").exists() and thumbnail_path(media_dir, "c.jpg").exists()


def test_the_hidden_folder_is_neither_scanned_nor_counted_by_retention(catalogue, media_dir):
    write_picture(media_dir / "porch.jpg")
    catalogue.add("porch.jpg")
    make_thumbnail(media_dir, "porch.jpg")
    (media_dir / ".thumbnails" / "huge.jpg").write_bytes(b"\0" * 1_000_000)
    found = catalogue.scan()
    assert found["added"] == found["skipped"] == found["missing"] == []
    assert [entry["filename"] for entry in catalogue.entries()] == ["porch.jpg"]
    size = (media_dir / "porch.jpg").stat().st_size
    assert catalogue.prune(max_total_bytes=size) == []          # the thumbnails' bytes do not count
    assert (media_dir / "porch.jpg").exists() and thumbnail_path(media_dir, "porch.jpg").exists()
