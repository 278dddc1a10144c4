import os
import stat

import pytest

from camera_server import config_file
from camera_server.config_file import (CameraExists, CameraNotFound, add_camera_section,
                                       remove_camera_section)
from camera_server.settings import ConfigError, Settings, load_settings
from conftest import ROOT

WITH_CAMERAS = """# my cameras
[SETTINGS]
fps = 15   
max_viewers = 40

[camera door]
camera = demo
# the door's own comment

[camera desk]
camera = usb
source = 1

[KEYS]
userkey = let-me-in
"""


def names(path):
    return [camera.name for camera in load_settings(path, environ={}).all_cameras]


@pytest.mark.parametrize("text", [WITH_CAMERAS, WITH_CAMERAS.replace("\n", "\r\n"),
                                  (ROOT / "config.txt.example").read_text()])
def test_adding_then_removing_a_camera_gives_back_the_same_bytes(tmp_path, text):
    path = tmp_path / "config.txt"
    path.write_bytes(text.encode())
    add_camera_section(path, "porch", {"camera": "opencv", "source": "rtsp://192.168.1.20/stream1"})
    added = path.read_bytes()
    assert added.startswith(text.encode())
    newline = "\r\n" if "\r\n" in text else "\n"
    assert added.endswith(newline.join(["", "", "[camera porch]", "camera = opencv",
                                        "source = rtsp://192.168.1.20/stream1", ""]).encode())
    assert names(path)[-1] == "porch"
    remove_camera_section(path, "porch")
    assert path.read_bytes() == text.encode()


def test_a_crlf_file_gets_crlf_lines_and_still_loads(tmp_path):
    path = tmp_path / "config.txt"
    path.write_bytes(WITH_CAMERAS.replace("\n", "\r\n").encode())
    add_camera_section(path, "porch", {"fps": "5"})
    assert b"\r\n[camera porch]\r\nfps = 5\r\n" in path.read_bytes()
    assert b"\n" not in path.read_bytes().replace(b"\r\n", b"")
    assert load_settings(path, environ={}).for_camera("porch").fps == 5


def test_the_added_camera_loads_after_the_others_with_the_file_defaults(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)
    add_camera_section(path, "porch", {"camera": "opencv", "source": "2"})
    settings = load_settings(path, environ={})
    assert [camera.name for camera in settings.all_cameras] == ["door", "desk", "porch"]
    porch = settings.for_camera("porch")
    assert (porch.camera, porch.source, porch.fps, porch.max_viewers) == ("opencv", "2", 15.0, 40)


def test_a_missing_file_is_created_with_a_first_comment_line(tmp_path):
    path = tmp_path / "config.txt"
    add_camera_section(path, "porch", {"camera": "demo"})
    assert path.read_text() == f"{config_file.NEW_FILE_HEADER}\n\n[camera porch]\ncamera = demo\n"
    assert names(path) == ["porch"]


def test_a_file_without_a_final_newline_or_with_a_blank_line_gets_one_blank_line_before(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\nfps = 15")
    add_camera_section(path, "porch", {})
    assert path.read_text() == "[SETTINGS]\nfps = 15\n\n[camera porch]\n"
    path.write_text("[SETTINGS]\nfps = 15\n\n")
    add_camera_section(path, "porch", {})
    assert path.read_text() == "[SETTINGS]\nfps = 15\n\n[camera porch]\n"


def test_the_implicit_camera_of_a_file_without_sections_keeps_its_name_and_stays_the_default(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\ncamera = liquidlens\nfps = 15\n")
    before = load_settings(path, environ={})
    add_camera_section(path, "porch", {"camera": "demo"}, default_camera=before)
    after = load_settings(path, environ={})
    assert [(camera.name, camera.camera, camera.fps) for camera in after.all_cameras] == [
        ("liquidlens", "liquidlens", 15.0), ("porch", "demo", 15.0)]
    add_camera_section(path, "garage", {}, default_camera=after)      # sections exist: just the one
    assert names(path) == ["liquidlens", "porch", "garage"]
    missing = tmp_path / "new.txt"
    add_camera_section(missing, "porch", {}, default_camera=Settings())
    assert [(camera.name, camera.camera) for camera in load_settings(missing, environ={}).all_cameras] == [
        ("demo", "demo"), ("porch", "usb")]
    with pytest.raises(CameraExists):
        add_camera_section(tmp_path / "other.txt", "demo", {}, default_camera=Settings())


def test_an_existing_name_is_refused_and_the_file_is_untouched(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)
    with pytest.raises(CameraExists, match="'desk'"):
        add_camera_section(path, "desk", {"fps": "5"})
    assert path.read_text() == WITH_CAMERAS
    assert issubclass(CameraExists, ConfigError)


@pytest.mark.parametrize("name, values", [
    ("Porch", {}), ("por ch", {}), ("", {}), ("x" * 33, {}), ("porch", {"source": "a\nfps = 1"}),
    ("porch", {"source": "a\rb"}),
])
def test_a_bad_name_or_a_value_with_a_line_break_is_refused(tmp_path, name, values):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)
    with pytest.raises(ConfigError):
        add_camera_section(path, name, values)
    assert path.read_text() == WITH_CAMERAS


def test_removing_the_middle_section_keeps_the_comments_and_sections_around_it(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)
    remove_camera_section(path, "door")
    assert path.read_text() == WITH_CAMERAS.replace(
        "[camera door]\ncamera = demo\n# the door's own comment\n\n", "")
    assert names(path) == ["desk"]


def test_removing_the_last_section_and_the_only_one(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\nfps = 15\n\n[camera door]\n\n[camera desk]\nsource = 1\n")
    remove_camera_section(path, "desk")
    assert path.read_text() == "[SETTINGS]\nfps = 15\n\n[camera door]\n"
    remove_camera_section(path, "door")
    assert path.read_text() == "[SETTINGS]\nfps = 15\n"
    assert names(path) == ["usb"]


def test_removing_a_camera_that_is_not_there(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)
    with pytest.raises(CameraNotFound, match="no \\[camera porch\\]"):
        remove_camera_section(path, "porch")
    with pytest.raises(KeyError):
        remove_camera_section(tmp_path / "missing.txt", "porch")
    assert path.read_text() == WITH_CAMERAS


def test_the_file_keeps_its_permission_bits_and_no_temporary_file_is_left(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)
    os.chmod(path, 0o640)
    add_camera_section(path, "porch", {})
    remove_camera_section(path, "door")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["config.txt"]


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(config_file.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        add_camera_section(path, "porch", {})
    assert path.read_text() == WITH_CAMERAS
    assert os.listdir(tmp_path) == ["config.txt"]


def test_a_symbolic_link_to_the_file_stays_and_the_file_it_names_is_changed(tmp_path):
    real = tmp_path / "etc" / "camera.txt"
    real.parent.mkdir()
    real.write_text(WITH_CAMERAS)
    link = tmp_path / "config.txt"
    link.symlink_to(real)
    add_camera_section(link, "porch", {"camera": "demo"})
    assert link.is_symlink() and names(real) == ["door", "desk", "porch"]
    remove_camera_section(link, "porch")
    assert link.is_symlink() and real.read_text() == WITH_CAMERAS
    assert sorted(os.listdir(real.parent)) == ["camera.txt"]


def test_a_read_only_file_is_left_as_it_is(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(WITH_CAMERAS)
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError, match="read-only"):
        add_camera_section(path, "porch", {})
    with pytest.raises(PermissionError):
        remove_camera_section(path, "door")
    assert path.read_text() == WITH_CAMERAS and os.listdir(tmp_path) == ["config.txt"]


def test_an_implicit_obdet_camera_keeps_its_object_detection(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\ncamera = obdet\nsource = door.mp4\n")
    before = load_settings(path, environ={})
    add_camera_section(path, "porch", {"camera": "demo"}, default_camera=before)
    default = load_settings(path, environ={}).all_cameras[0]
    assert (default.name, default.camera, default.source) == ("opencv", "opencv", "door.mp4")
    assert (default.detector, default.motion_on_start) == (before.detector, True) == ("hog", True)
