import pytest

from camera_server import settings as settings_module
from camera_server.settings import ConfigError, Settings, load_settings
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
    assert settings == Settings()
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


def test_example_config_documents_every_key():
    example = (ROOT / "config.txt.example").read_text()
    for key in settings_module._KEYS:
        assert f"\n{key} =" in example or f"\n# {key} =" in example, key


def test_camera_obdet_from_seed_002_is_the_opencv_camera_detecting_on_motion(tmp_path):
    settings = load_settings(tmp_path / "missing.txt", environ={"CAMERA": "obdet"})
    assert (settings.camera, settings.detector, settings.motion_on_start) == ("opencv", "hog", True)
    path = tmp_path / "config.txt"
    path.write_text("[WATCH]\ndetector = haar\n")
    assert load_settings(path, environ={"CAMERA": "obdet"}).detector == "haar"    # a configured detector stays
