"""Settings: config.txt (INI) read once into one frozen object.

Compatible with the original file: ``[SETTINGS] camera, light, lighttype, numlights, tty, baud`` and
``[KEYS] userkey``. An empty value means "use the default". A bad value raises ``ConfigError`` with
one message naming the key, the value and what is allowed.
"""
import configparser
import dataclasses
import os
import re
from pathlib import Path

CAMERA_TYPES = ("demo", "default", "usb", "opencv", "pi", "picamera", "liquidlens", "kinect")
DETECTORS = ("hog", "haar", "dnn")
LIGHT_TYPES = ("trinket", "neopixel")
RECORD_ENCODERS = ("auto", "libx264", "h264_v4l2m2m")
PROJECT_DIR = Path(__file__).resolve().parent.parent     # the folder of app.py, media/ and media_schema.sql
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message says which and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Settings:
    camera: str = "demo"
    source: str = ""
    width: int = 640
    height: int = 480
    fps: float = 30.0
    jpeg_quality: int = 80
    idle_timeout: float = 2.0
    max_viewers: int = 500
    host: str = "0.0.0.0"
    port: int = 5000
    allowed_hosts: str = ""
    media_dir: str = "media"
    log_file: str = "flask.log"
    log_max_mb: float = 5.0
    max_recording_minutes: float = 60.0
    min_free_mb: int = 200
    record_encoder: str = "auto"
    record_crf: int = 26
    record_max_kbps: int = 2000
    keep_days: float = 0.0
    max_media_gb: float = 0.0
    monitor_threshold: float = 300.0
    monitor_cooldown_s: float = 2.0
    monitor_max_changes_per_hour: int = 120
    motion_on_start: bool = False
    motion_min_area: float = 0.001
    motion_threshold: int = 25
    motion_mask: str = ""
    motion_mask_file: str = ""
    motion_boxes: bool = True
    detector: str = ""
    detector_model: str = ""
    detector_config: str = ""
    detector_labels: str = ""
    detector_confidence: float = 0.5
    event_quiet_s: float = 5.0
    record_events: bool = False
    preroll_s: float = 5.0
    postroll_s: float = 5.0
    webhook_url: str = ""
    mqtt_host: str = ""
    mqtt_port: int = 1883
    mqtt_topic: str = "camera_server"
    mqtt_username: str = ""
    mqtt_password: str = ""
    allow_power_control: bool = False
    light: bool = False
    lighttype: str = "trinket"
    numlights: int = 16
    tty: str = "/dev/ttyACM0"
    baud: int = 9600
    userkey: str = ""
    require_login: bool = False
    config_path: str = ""

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _text(key, value):
    return value


def _choice(allowed):
    def parse(key, value):
        value = value.lower()
        if value not in allowed:
            raise ConfigError(f"{key} = {value!r} is not allowed; use one of: {', '.join(allowed)}")
        return value
    return parse


def _boolean(key, value):
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{key} = {value!r} is not a yes/no value; use true or false")


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?")


def _host_names(key, value):
    """Comma-separated host names (no scheme, no port), or * for any; answered lowercased, without a final
    dot (as the Host check compares them), comma-joined."""
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    for name in names:
        if name != "*" and not _HOST_NAME.fullmatch(name):
            raise ConfigError(f"{key}: {name!r} is not a host name; list names without scheme or port, "
                              "separated by commas (camera.lan, cam.example.org), or * for any")
    return ",".join(name.rstrip(".") for name in names)


def _number(kind, low, high):
    def parse(key, value):
        try:
            number = kind(value)
        except ValueError:
            raise ConfigError(f"{key} = {value!r} is not a number; use a value from {low} to {high}") from None
        if not low <= number <= high:
            raise ConfigError(f"{key} = {value!r} is out of range; use a value from {low} to {high}")
        return number
    return parse


# key -> (INI section, parser). Sections are where config.txt.example documents each key.
_KEYS = {
    "camera": ("SETTINGS", _choice(CAMERA_TYPES)),
    "source": ("SETTINGS", _text),
    "width": ("SETTINGS", _number(int, 16, 7680)),
    "height": ("SETTINGS", _number(int, 16, 4320)),
    "fps": ("SETTINGS", _number(float, 0.5, 240)),
    "jpeg_quality": ("SETTINGS", _number(int, 1, 100)),
    "idle_timeout": ("SETTINGS", _number(float, 0, 3600)),
    "max_viewers": ("SETTINGS", _number(int, 1, 10000)),
    "host": ("SETTINGS", _text),
    "port": ("SETTINGS", _number(int, 1, 65535)),
    "allowed_hosts": ("SETTINGS", _host_names),
    "media_dir": ("SETTINGS", _text),
    "log_file": ("SETTINGS", _text),
    "log_max_mb": ("SETTINGS", _number(float, 0.01, 1000)),     # rotated at this size, 3 kept
    "max_recording_minutes": ("SETTINGS", _number(float, 0, 24 * 60)),
    "min_free_mb": ("SETTINGS", _number(int, 0, 10_000_000)),
    "record_encoder": ("SETTINGS", _choice(RECORD_ENCODERS)),
    "record_crf": ("SETTINGS", _number(int, 1, 51)),     # 0 is lossless, which the Main profile lacks
    "record_max_kbps": ("SETTINGS", _number(int, 100, 100_000)),
    "keep_days": ("SETTINGS", _number(float, 0, 36500)),
    "max_media_gb": ("SETTINGS", _number(float, 0, 100_000)),
    "monitor_threshold": ("WATCH", _number(float, 0.01, 65025)),
    "monitor_cooldown_s": ("WATCH", _number(float, 0, 3600)),
    "monitor_max_changes_per_hour": ("WATCH", _number(int, 1, 100_000)),
    "motion_on_start": ("WATCH", _boolean),
    "motion_min_area": ("WATCH", _number(float, 0.00001, 1)),
    "motion_threshold": ("WATCH", _number(int, 1, 254)),
    "motion_mask": ("WATCH", _text),
    "motion_mask_file": ("WATCH", _text),
    "motion_boxes": ("WATCH", _boolean),
    "detector": ("WATCH", _choice(DETECTORS)),
    "detector_model": ("WATCH", _text),
    "detector_config": ("WATCH", _text),
    "detector_labels": ("WATCH", _text),
    "detector_confidence": ("WATCH", _number(float, 0, 1)),
    "event_quiet_s": ("WATCH", _number(float, 0.1, 3600)),
    "record_events": ("WATCH", _boolean),
    "preroll_s": ("WATCH", _number(float, 0, 300)),
    "postroll_s": ("WATCH", _number(float, 0, 3600)),
    "webhook_url": ("WATCH", _text),
    "mqtt_host": ("WATCH", _text),
    "mqtt_port": ("WATCH", _number(int, 1, 65535)),
    "mqtt_topic": ("WATCH", _text),
    "mqtt_username": ("WATCH", _text),
    "mqtt_password": ("WATCH", _text),
    "allow_power_control": ("SETTINGS", _boolean),
    "light": ("SETTINGS", _boolean),
    "lighttype": ("SETTINGS", _choice(LIGHT_TYPES)),
    "numlights": ("SETTINGS", _number(int, 1, 1024)),
    "tty": ("SETTINGS", _text),
    "baud": ("SETTINGS", _number(int, 300, 4_000_000)),
    "userkey": ("KEYS", _text),
    "require_login": ("KEYS", _boolean),
}

# Environment variables that override the file (seed 002 uses CAMERA=opencv).
_ENVIRONMENT = {"CAMERA": "camera", "PORT": "port", "CAMERA_SOURCE": "source"}


def load_settings(path=None, environ=None):
    """Read ``path`` (default: $CONFIG_FILE or ./config.txt) and the environment into Settings."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("CONFIG_FILE") or "config.txt")
    values = {}
    if path.exists():
        values.update(_read_ini(path))
        # The original server used a USB camera when config.txt left camera empty.
        values.setdefault("camera", "usb")
    for variable, key in _ENVIRONMENT.items():
        if environ.get(variable, "").strip():
            values[key] = environ[variable].strip()
    if values.get("camera", "").lower() == "obdet":
        # Seed 002's CAMERA=obdet: the OpenCV camera with object detection, which runs on motion.
        values.update(camera="opencv", motion_on_start="true")
        values.setdefault("detector", "hog")
    parsed = {key: _KEYS[key][1](key, value) for key, value in values.items()}
    return Settings(config_path=str(path) if path.exists() else "", **parsed)


def project_path(path):
    """A path from the settings (media_dir, log_file): a relative one is in the project folder."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_DIR / path


def _read_ini(path):
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a valid INI file: {error}") from None
    values = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            if key not in _KEYS:
                known = ", ".join(sorted(_KEYS))
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]; known keys: {known}")
            if value.strip():
                values[key] = value.strip()
    return values
