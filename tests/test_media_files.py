"""Media file names, new files' modes, the writer's lock and the clean-up of leftover temporaries."""
import errno
import os
import stat
import subprocess
import sys
import time

import pytest

from camera_server.media import files as media_files
from camera_server.media.files import (MediaNameError, WriterLockError, being_written, check_media_name, create_locked,
                                       remove_leftover_temporaries, write_new_file)

HOLD_LOCK = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


class LockedByAnotherProcess:
    """A child process holding the writer's lock on ``path``, as a recording server would."""

    def __init__(self, path):
        self.child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        assert self.child.stdout.readline() == "locked\n"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.child.communicate("done\n", timeout=10)


@pytest.mark.parametrize("name, final", [("porch", "porch.jpg"), ("a" * 124, "a" * 124 + ".jpg"),
                                         ("a" * 124 + ".jpg", "a" * 124 + ".jpg"), ("日" * 83, "日" * 83 + ".jpg"),
                                         ("Porch.JPEG", "Porch.JPEG")])
def test_names_are_checked_with_their_extension(name, final):
    assert check_media_name(name, (".jpg", ".jpeg")) == final


@pytest.mark.parametrize("name, words", [
    ("x.", "ends in '.'"), ("x.jpg.", "ends in '.'"),
    ("a" * 125, "at most 128 are allowed, the extension included"),
    ("a" * 125 + ".jpg", "at most 128"),
    ("日" * 100, "at most 255 bytes"),          # 104 characters, 304 bytes
    ("日" * 84, "at most 255 bytes"),           # 256 bytes with the extension
])
def test_a_final_name_too_long_or_ending_in_a_dot_is_refused(name, words):
    with pytest.raises(MediaNameError, match=words):
        check_media_name(name, (".jpg",))


def test_new_files_get_the_usual_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_new_file(tmp_path, "mode.jpg", b"\xff\xd8\xff\xd9")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_writer_s_lock_is_seen_until_it_is_released(tmp_path):
    path = tmp_path / "recording.mp4"
    descriptor = create_locked(path)
    assert being_written(path)                  # also from this process, through another open file
    assert being_written(path)                  # testing did not take the lock away
    os.close(descriptor)
    assert not being_written(path) and not being_written(tmp_path / "absent.mp4")
    with LockedByAnotherProcess(path):
        assert being_written(path)


def test_a_file_system_without_locks_leaves_no_empty_file_and_no_open_descriptor(tmp_path, monkeypatch):
    tried = []

    def no_locks(descriptor, wait=True):      # flock on some network file systems
        tried.append(descriptor)
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(media_files, "lock_for_writing", no_locks)
    with pytest.raises(WriterLockError, match="cannot lock recording.mp4 for writing: No locks available"):
        create_locked(tmp_path / "recording.mp4")
    assert list(tmp_path.iterdir()) == []
    (descriptor,) = tried
    assert str(tmp_path) not in open_file_of(descriptor)      # closed (or reused for another file since)


def open_file_of(descriptor):
    """What an open descriptor of this process refers to ("/x (deleted)" once unlinked); "" when closed."""
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}")
    except FileNotFoundError:
        return ""


def test_leftover_temporaries_are_removed_unless_young_or_locked(tmp_path):
    an_hour_later = time.time() + 3600        # the files below are an hour old then, but for the young one
    for name in (".partial-a1b2.mp4", ".partial-removed-c3d4", ".partial-locked.mp4", ".partial-young.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "kept.mp4").write_bytes(b"x")
    os.utime(tmp_path / ".partial-young.mp4", (an_hour_later, an_hour_later))
    with LockedByAnotherProcess(tmp_path / ".partial-locked.mp4"):
        removed = remove_leftover_temporaries(tmp_path, now=an_hour_later)
    assert sorted(removed) == [".partial-a1b2.mp4", ".partial-removed-c3d4"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [".partial-locked.mp4", ".partial-young.mp4",
                                                                 "kept.mp4"]


def test_a_file_set_aside_a_moment_ago_is_no_leftover_however_old_its_contents(tmp_path):
    """A delete by another process (database_manager.py prune) renames the file out of sight first: its
    mtime is the picture's, but the rename is new."""
    picture = tmp_path / "old.jpg"
    picture.write_bytes(b"x")
    long_ago = time.time() - 30 * 24 * 3600
    os.utime(picture, (long_ago, long_ago))
    picture.rename(tmp_path / ".partial-removed-e5f6")
    assert remove_leftover_temporaries(tmp_path) == []
    assert (tmp_path / ".partial-removed-e5f6").exists()


def test_without_hard_links_a_new_file_still_never_replaces_one(tmp_path, monkeypatch):
    """FAT and exFAT (a USB stick) have no hard links: the name is reserved, then replaced."""
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(media_files.os, "link", no_links)
    path = write_new_file(tmp_path, "a.jpg", b"first")
    assert path.read_bytes() == b"first"
    with pytest.raises(media_files.MediaExists):
        write_new_file(tmp_path, "a.jpg", b"second")
    assert path.read_bytes() == b"first"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["a.jpg"]      # no temporary left


def test_a_media_folder_that_went_away_is_not_made_again(tmp_path):
    """An unplugged USB disk: writing on the mount point below it would fill the SD card."""
    gone = tmp_path / "usb"
    with pytest.raises(media_files.MediaFolderGone) as raised:
        write_new_file(gone, "a.jpg", b"picture")
    assert raised.value.errno == errno.ENODEV and not gone.exists()
