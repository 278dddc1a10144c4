import configparser
import dataclasses
import re

import pytest

from camera_server.settings import (PER_CAMERA_KEYS, ConfigError, Settings, load_settings,
                                    parse_camera_section)
from conftest import ROOT

ORIGINAL = """[SETTINGS]
camera = LiquidLens
light = true
lighttype = trinket
numlights = 12
tty = /dev/ttyS0
baud = 115200

[KEYS]
userkey = let-me-in
"""


def test_no_config_file_means_the_demo_camera(tmp_path):
    settings = load_settings(tmp_path / "missing.txt", environ={})
    assert settings == Settings(config_path=str(tmp_path / "missing.txt"))     # where a camera added is written
    assert settings.camera == "demo" and settings.port == 5000


def test_reads_the_original_file_format(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(ORIGINAL)
    settings = load_settings(path, environ={})
    assert settings.camera == "liquidlens"
    assert settings.light is True and settings.lighttype == "trinket"
    assert (settings.numlights, settings.tty, settings.baud) == (12, "/dev/ttyS0", 115200)
    assert settings.userkey == "let-me-in"


def test_empty_values_mean_default_and_empty_camera_is_usb_as_in_the_original(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\ncamera =\nwidth =\nsource = \n[KEYS]\nuserkey =\n")
    settings = load_settings(path, environ={})
    assert settings.camera == "usb"
    assert settings.width == 640 and settings.source == "" and settings.userkey == ""


def test_a_config_txt_without_camera_is_usb_too(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[KEYS]\nuserkey = let-me-in\n")
    assert load_settings(path, environ={}).camera == "usb"
    assert load_settings(tmp_path / "missing.txt", environ={}).camera == "demo"


def test_recording_quality_keys_and_their_defaults(tmp_path):
    defaults = load_settings(tmp_path / "missing.txt", environ={})
    assert (defaults.record_encoder, defaults.record_crf, defaults.record_max_kbps) == ("auto", 26, 2000)
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\nrecord_encoder = LIBX264\nrecord_crf = 20\nrecord_max_kbps = 4000\n")
    settings = load_settings(path, environ={})
    assert (settings.record_encoder, settings.record_crf, settings.record_max_kbps) == ("libx264", 20, 4000)


def test_environment_overrides_camera_and_port(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\ncamera = demo\nport = 8000\n")
    settings = load_settings(path, environ={"CAMERA": "opencv", "PORT": "5050"})
    assert (settings.camera, settings.port) == ("opencv", 5050)


def test_config_file_from_environment(tmp_path):
    path = tmp_path / "elsewhere.ini"
    path.write_text("[SETTINGS]\nfps = 15\n")
    assert load_settings(environ={"CONFIG_FILE": str(path)}).fps == 15.0


@pytest.mark.parametrize("text, words", [
    ("[SETTINGS]\ncamera = webcam\n", ["camera", "'webcam'", "demo", "kinect"]),
    ("[SETTINGS]\nwidth = wide\n", ["width", "'wide'", "16 to 7680"]),
    ("[SETTINGS]\nport = 70000\n", ["port", "'70000'", "1 to 65535"]),
    ("[SETTINGS]\nlight = maybe\n", ["light", "'maybe'", "true or false"]),
    ("[SETTINGS]\nrecord_crf = 0\n", ["record_crf", "'0'", "1 to 51"]),
    ("[SETTINGS]\nrecord_crf = high\n", ["record_crf", "'high'", "1 to 51"]),
    ("[SETTINGS]\nrecord_max_kbps = 2M\n", ["record_max_kbps", "'2M'", "100 to 100000"]),
    ("[SETTINGS]\nrecord_max_kbps = 50\n", ["record_max_kbps", "'50'", "100 to 100000"]),
    ("[SETTINGS]\nrecord_encoder = nvenc\n", ["record_encoder", "'nvenc'", "auto, libx264, h264_v4l2m2m"]),
    ("[SETTINGS]\ncolour = blue\n", ["unknown key", "'colour'", "camera"]),
    ("camera = demo\n", ["not a valid INI file"]),
])
def test_bad_values_give_one_clear_message(tmp_path, text, words):
    path = tmp_path / "config.txt"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    for word in words:
        assert word in str(caught.value)


def test_bad_environment_value_is_named_too(tmp_path):
    with pytest.raises(ConfigError, match="port = 'eighty'"):
        load_settings(tmp_path / "none.txt", environ={"PORT": "eighty"})


def _written_like_the_example(value):
    """A default as config.txt.example and the README write it: 30 for 30.0, true/false, "" empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _declared():
    return {field.name: field for field in dataclasses.fields(Settings) if field.metadata}


def test_example_config_has_every_declared_key_in_its_section_with_its_default():
    example = configparser.ConfigParser(interpolation=None)
    example.read(ROOT / "config.txt.example", encoding="utf-8")
    written = {(section, key): value for section in example.sections() for key, value in example.items(section)}
    declared = {(field.metadata["section"], name): _written_like_the_example(field.default)
                for name, field in _declared().items()}
    assert written == declared


def _readme_configuration_rows():
    """(keys, default cell, per-camera cell) of each row of the README's Configuration tables."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Configuration\n")
    section = readme[start:readme.index("\n## ", start + 1)]
    for line in section.splitlines():
        if line.startswith("| `"):
            key_cell, default_cell, per_camera_cell = [cell.strip() for cell in line.split("|")[1:4]]
            yield re.findall(r"`([a-z_]+)`", key_cell), default_cell, per_camera_cell


def test_readme_tables_show_every_declared_key_with_its_default_and_whether_it_is_per_camera():
    # The one documented exception: camera's default depends on whether there is a config.txt.
    special = {"camera": "`demo` (no config.txt); `usb` (a config.txt that leaves it empty or out)"}
    documented = {}
    for keys, default_cell, per_camera_cell in _readme_configuration_rows():
        defaults = [default_cell] if len(keys) == 1 else default_cell.split(", ")
        assert len(defaults) == len(keys), keys
        for key, default in zip(keys, defaults):
            documented[key] = (default, per_camera_cell)
    expected = {}
    for name, field in _declared().items():
        written = _written_like_the_example(field.default)
        default = special.get(name) or (f"`{written}`" if written else "empty")
        expected[name] = (default, "yes" if name in PER_CAMERA_KEYS else "no")
    assert documented == expected


def test_per_camera_keys_are_the_declared_ones():
    assert PER_CAMERA_KEYS == {name for name, field in _declared().items() if field.metadata["per_camera"]}
    assert {"camera", "source", "fps", "detector", "postroll_s"} <= PER_CAMERA_KEYS
    assert not {"max_viewers", "port", "mqtt_host", "webhook_url", "userkey"} & PER_CAMERA_KEYS
    assert all(field.metadata["help"] for field in _declared().values())


def test_a_field_default_is_still_a_class_attribute():
    assert (Settings.fps, Settings.detector_confidence, Settings.detector_model) == (30.0, 0.5, "")


def test_camera_obdet_from_seed_002_is_the_opencv_camera_detecting_on_motion(tmp_path):
    settings = load_settings(tmp_path / "missing.txt", environ={"CAMERA": "obdet"})
    assert (settings.camera, settings.detector, settings.motion_on_start) == ("opencv", "hog", True)
    path = tmp_path / "config.txt"
    path.write_text("[WATCH]\ndetector = haar\n")
    assert load_settings(path, environ={"CAMERA": "obdet"}).detector == "haar"    # a configured detector stays


THREE_CAMERAS = """[SETTINGS]
fps = 15
max_viewers = 40

[WATCH]
motion_on_start = true

[camera door]
camera = demo

[camera desk]
source = 1
fps = 30

[camera porch]
camera = opencv
source = rtsp://192.168.1.20/stream1
motion_on_start = false
"""


def write(tmp_path, text):
    path = tmp_path / "config.txt"
    path.write_text(text)
    return path


def test_the_original_file_is_one_camera_named_by_its_kind(tmp_path):
    settings = load_settings(write(tmp_path, ORIGINAL), environ={})
    assert [camera.name for camera in settings.all_cameras] == ["liquidlens"]
    assert settings.all_cameras == (settings,) and settings.cameras == ()
    assert (settings.name, settings.camera_name, settings.fps) == ("liquidlens", "", 30.0)
    assert settings.for_camera("liquidlens") is settings
    with pytest.raises(KeyError):
        settings.for_camera("porch")
    assert Settings().name == "demo" and Settings().all_cameras == (Settings(),)


def test_camera_sections_are_the_cameras_in_file_order_and_the_first_is_the_default(tmp_path):
    settings = load_settings(write(tmp_path, THREE_CAMERAS), environ={})
    door, desk, porch = settings.all_cameras
    assert [camera.name for camera in settings.all_cameras] == ["door", "desk", "porch"]
    assert (door.camera, door.fps, door.motion_on_start) == ("demo", 15.0, True)
    assert (desk.camera, desk.source, desk.fps, desk.motion_on_start) == ("usb", "1", 30.0, True)
    assert (porch.camera, porch.source, porch.fps, porch.motion_on_start) == (
        "opencv", "rtsp://192.168.1.20/stream1", 15.0, False)
    assert all(camera.max_viewers == 40 and camera.cameras == () for camera in settings.all_cameras)
    assert all(camera.config_path == settings.config_path != "" for camera in settings.all_cameras)
    assert settings.name == "door" and settings.replace(cameras=()) == door
    assert settings.for_camera("porch") is porch


def test_two_camera_sections(tmp_path):
    settings = load_settings(write(tmp_path, "[camera a]\ncamera = demo\n[camera b-2]\nwidth = 320\n"), environ={})
    assert [(camera.name, camera.camera, camera.width) for camera in settings.all_cameras] == [
        ("a", "demo", 640), ("b-2", "usb", 320)]


def test_a_camera_named_in_settings_is_every_sections_default(tmp_path):
    text = "[SETTINGS]\ncamera = demo\n[camera one]\n[camera two]\ncamera = opencv\n"
    settings = load_settings(write(tmp_path, text), environ={})
    assert [camera.camera for camera in settings.all_cameras] == ["demo", "opencv"]


def test_obdet_applies_per_camera(tmp_path):
    text = "[camera plain]\ncamera = usb\n[camera watcher]\ncamera = obdet\n[camera faces]\ncamera = obdet\ndetector = haar\n"
    plain, watcher, faces = load_settings(write(tmp_path, text), environ={}).all_cameras
    assert (plain.camera, plain.detector, plain.motion_on_start) == ("usb", "", False)
    assert (watcher.camera, watcher.detector, watcher.motion_on_start) == ("opencv", "hog", True)
    assert (faces.camera, faces.detector) == ("opencv", "haar")


def test_environment_overrides_only_the_default_camera(tmp_path):
    environ = {"CAMERA": "opencv", "CAMERA_SOURCE": "clip.mp4", "PORT": "5050"}
    settings = load_settings(write(tmp_path, THREE_CAMERAS), environ=environ)
    door, desk, porch = settings.all_cameras
    assert (settings.camera, settings.source, door.camera, door.source) == ("opencv", "clip.mp4", "opencv", "clip.mp4")
    assert (desk.camera, desk.source, porch.source) == ("usb", "1", "rtsp://192.168.1.20/stream1")
    assert {camera.port for camera in settings.all_cameras} == {5050} and settings.port == 5050


@pytest.mark.parametrize("text, words", [
    ("[camera porch]\nmax_viewers = 3\n", ["[camera porch]", "max_viewers is a server setting", "[SETTINGS]"]),
    ("[camera porch]\nmqtt_host = broker\n", ["[camera porch]", "mqtt_host", "[WATCH]"]),
    ("[camera porch]\ncolour = blue\n", ["unknown key 'colour'", "[camera porch]", "fps"]),
    ("[camera porch]\nfps = 0\n", ["[camera porch] fps = '0' is out of range", "0.5 to 240"]),
    ("[camera porch]\ncamera = webcam\n", ["[camera porch] camera = 'webcam'", "demo"]),
    ("[camera Porch]\n", ["[camera Porch]", "'Porch'", "a-z, 0-9"]),
    ("[camera ]\n", ["[camera ]", "1-32 characters"]),
    ("[camera " + "x" * 33 + "]\n", ["1-32 characters"]),
    ("[camera -porch]\n", ["'-porch'", "starting with a letter or digit"]),
    ("[camera por/ch]\n", ["'por/ch'"]),
    ("[camera]\nfps = 5\n", ["[camera] is not a camera section", "[camera NAME]"]),
    ("[Camera porch]\n", ["[Camera porch] is not a camera section"]),
    ("[cameras]\n", ["[cameras] is not a camera section"]),
    ("[camera porch]\n[camera porch]\n", ["[camera porch] appears twice", "line 2"]),
    ("[SETTINGS]\nfps = fast\n[camera porch]\n", ["fps = 'fast' is not a number"]),
])
def test_bad_camera_sections_give_one_clear_message(tmp_path, text, words):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    for word in words:
        assert word in str(caught.value)


def test_other_sections_still_take_any_key(tmp_path):
    settings = load_settings(write(tmp_path, "[MINE]\nfps = 12\nport = 6000\n[camera porch]\n"), environ={})
    assert (settings.for_camera("porch").fps, settings.port) == (12.0, 6000)


def test_replace_changes_per_camera_keys_of_the_default_camera_and_server_keys_of_all(tmp_path):
    settings = load_settings(write(tmp_path, THREE_CAMERAS), environ={})
    changed = settings.replace(fps=5, max_viewers=7)
    door, desk, porch = changed.all_cameras
    assert (changed.fps, door.fps, desk.fps, porch.fps) == (5, 5, 30.0, 15.0)
    assert {camera.max_viewers for camera in (changed, door, desk, porch)} == {7}
    renamed = settings.replace(camera_name="front")
    assert renamed.name == renamed.cameras[0].name == "front" and renamed.cameras[1].name == "desk"
    assert Settings().replace(fps=5) == Settings(fps=5)


def test_parse_camera_section_checks_as_the_file_would(tmp_path):
    base = load_settings(write(tmp_path, THREE_CAMERAS), environ={})
    garage = parse_camera_section("garage", {"camera": "opencv", "source": "2", "fps": "", "width": "320"}, base)
    assert (garage.name, garage.camera, garage.source, garage.width) == ("garage", "opencv", "2", 320)
    assert (garage.fps, garage.motion_on_start) == (15.0, True)       # the [SETTINGS] and [WATCH] defaults
    assert (garage.max_viewers, garage.cameras) == (40, ())
    assert parse_camera_section("shed", {}, base).camera == "usb"
    assert parse_camera_section("shed", {}, Settings()).camera == "usb"      # as config.txt will give it
    for name, values, words in [
        ("garage", {"port": "80"}, "port is a server setting"),
        ("garage", {"colour": "blue"}, "unknown key 'colour'"),
        ("garage", {"fps": "0"}, "[camera garage] fps = '0' is out of range"),
        ("Garage", {}, "camera name 'Garage' is not allowed"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(words)):
            parse_camera_section(name, values, base)


@pytest.mark.parametrize("source, words", [
    ("rtsp://user:secret@[bad/x", "source is not a valid URL"),
    ("rtsp://cam.lan:port/x", "source is not a valid URL"),
    ("ftp://cam.lan/x", "'ftp' is not a stream address"),
    ("rtsp:///stream1", "source names no host"),
])
def test_a_camera_added_at_run_time_needs_a_stream_address_that_can_answer(source, words):
    with pytest.raises(ConfigError) as raised:
        parse_camera_section("porch", {"camera": "opencv", "source": source}, Settings())
    assert words in str(raised.value) and "secret" not in str(raised.value)


@pytest.mark.parametrize("source", ["rtsp://user:pass@192.168.1.20:554/stream1", "http://cam.lan/video.mjpg",
                                    "0", "/dev/video0", "clips/door.mp4"])
def test_a_camera_added_at_run_time_takes_any_source_opencv_opens(source):
    assert parse_camera_section("porch", {"camera": "opencv", "source": source}, Settings()).source == source


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "config.txt"
    path.write_bytes("\ufeff[SETTINGS]\ncamera = demo\nfps = 12\n".encode("utf-8"))
    assert load_settings(path, environ={}).fps == 12
