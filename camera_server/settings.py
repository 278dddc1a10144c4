"""Settings: config.txt (INI) read once into one frozen object.

Compatible with the original file: ``[SETTINGS] camera, light, lighttype, numlights, tty, baud`` and
``[KEYS] userkey``. An empty value means "use the default". A bad value raises ``ConfigError`` with
one message naming the key, the value and what is allowed.

Each setting is declared once, as a field of ``Settings``: its default, its parser (with the range),
the section ``config.txt.example`` documents it in, a one-line help, and whether each camera has its
own. ``[camera NAME]`` sections describe many cameras; the first is the default camera.
"""
import configparser
import dataclasses
import os
import re
import urllib.parse
from pathlib import Path

CAMERA_TYPES = ("demo", "default", "usb", "opencv", "pi", "picamera", "liquidlens", "kinect")
DETECTORS = ("hog", "haar", "dnn")
LIGHT_TYPES = ("trinket", "neopixel")
RECORD_ENCODERS = ("auto", "libx264", "h264_v4l2m2m")
LIVE_PROFILES = ("main", "baseline")
PTZ_KINDS = ("tapo", "onvif")
PROJECT_DIR = Path(__file__).resolve().parent.parent     # the folder of app.py, media/ and media_schema.sql
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_CAMERA_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
CAMERA_NAME_RULE = "1-32 characters of a-z, 0-9, - and _, starting with a letter or digit"


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message says which and what is allowed."""


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


def setting(default, parse, section, help, per_camera=False):
    """A config key: a dataclass field whose metadata holds how config.txt spells and checks it."""
    return dataclasses.field(default=default, metadata={
        "parse": parse, "section": section, "help": help, "per_camera": per_camera})


def _camera_setting(default, parse, section, help):
    return setting(default, parse, section, help, per_camera=True)


@dataclasses.dataclass(frozen=True)
class Settings:
    camera: str = _camera_setting("demo", _choice(CAMERA_TYPES), "SETTINGS", "which camera backend")
    source: str = _camera_setting("", _text, "SETTINGS", "OpenCV device, video file or stream URL; Kinect device")
    width: int = _camera_setting(640, _number(int, 16, 7680), "SETTINGS", "picture width asked of the camera")
    height: int = _camera_setting(480, _number(int, 16, 4320), "SETTINGS", "picture height asked of the camera")
    fps: float = _camera_setting(30.0, _number(float, 0.5, 240), "SETTINGS", "frame rate asked of the camera")
    jpeg_quality: int = _camera_setting(80, _number(int, 1, 100), "SETTINGS", "JPEG quality of stream and snapshots")
    idle_timeout: float = _camera_setting(2.0, _number(float, 0, 3600), "SETTINGS",
                                          "seconds the camera stays open after the last viewer")
    max_viewers: int = setting(500, _number(int, 1, 10000), "SETTINGS", "most stream viewers at once")
    host: str = setting("0.0.0.0", _text, "SETTINGS", "address the server listens on")
    port: int = setting(5000, _number(int, 1, 65535), "SETTINGS", "port the server listens on")
    allowed_hosts: str = setting("", _host_names, "SETTINGS", "host names the server answers to, or *")
    media_dir: str = setting("media", _text, "SETTINGS", "folder of the media and the catalogue")
    log_file: str = setting("flask.log", _text, "SETTINGS", "the server's log file")
    log_max_mb: float = setting(5.0, _number(float, 0.01, 1000), "SETTINGS",
                                "log size (MB) at which it is rotated, 3 kept")
    max_recording_minutes: float = setting(60.0, _number(float, 0, 24 * 60), "SETTINGS",
                                           "a recording stops after this long (0: no limit)")
    min_free_mb: int = setting(200, _number(int, 0, 10_000_000), "SETTINGS",
                               "no recording or saved picture below this much free disk")
    record_encoder: str = setting("auto", _choice(RECORD_ENCODERS), "SETTINGS", "H.264 encoder of recordings")
    # 0 is lossless, which the Main profile lacks.
    record_crf: int = setting(26, _number(int, 1, 51), "SETTINGS", "libx264 quality: lower is better and bigger")
    record_max_kbps: int = setting(2000, _number(int, 100, 100_000), "SETTINGS", "most kbit/s a recording uses")
    # Live H.264 (/video_feed.mp4) uses record_encoder and record_crf too. Main, not baseline, by
    # default: with no B-frames (zerolatency) all main adds is CABAC, some 10 % fewer bytes for the
    # same picture, and every browser, phone and Pi decodes it; it is also what recordings use.
    live_keyframe_s: float = setting(1.0, _number(float, 0.25, 10), "SETTINGS",
                                     "seconds between keyframes of the live H.264 stream")
    live_max_kbps: int = setting(2000, _number(int, 100, 100_000), "SETTINGS", "most kbit/s the live H.264 uses")
    live_profile: str = setting("main", _choice(LIVE_PROFILES), "SETTINGS", "H.264 profile of the live stream")
    keep_days: float = setting(0.0, _number(float, 0, 36500), "SETTINGS", "delete media older than this (0: keep)")
    max_media_gb: float = setting(0.0, _number(float, 0, 100_000), "SETTINGS",
                                  "delete the oldest media beyond this size (0: no limit)")
    monitor_threshold: float = _camera_setting(300.0, _number(float, 0.01, 65025), "WATCH",
                                               "scene-change threshold (mean squared difference)")
    monitor_cooldown_s: float = _camera_setting(2.0, _number(float, 0, 3600), "WATCH",
                                                "at most one saved change per this many seconds")
    monitor_max_changes_per_hour: int = _camera_setting(120, _number(int, 1, 100_000), "WATCH",
                                                        "at most this many saved changes in an hour")
    motion_on_start: bool = _camera_setting(False, _boolean, "WATCH", "start motion detection with the server")
    motion_min_area: float = _camera_setting(0.001, _number(float, 0.00001, 1), "WATCH",
                                             "smallest moving area, a fraction of the picture")
    motion_threshold: int = _camera_setting(25, _number(int, 1, 254), "WATCH", "pixel difference that counts as change")
    motion_mask: str = _camera_setting("", _text, "WATCH", "rectangles and polygons to ignore")
    motion_mask_file: str = _camera_setting("", _text, "WATCH", "image whose white parts are ignored")
    motion_boxes: bool = _camera_setting(True, _boolean, "WATCH", "draw boxes around motion and detections")
    detector: str = _camera_setting("", _choice(DETECTORS), "WATCH", "object detector where there is motion")
    detector_model: str = _camera_setting("", _text, "WATCH", "dnn model file or haar cascade")
    detector_config: str = _camera_setting("", _text, "WATCH", "dnn model config (.pbtxt)")
    detector_labels: str = _camera_setting("", _text, "WATCH", "dnn labels file")
    detector_confidence: float = _camera_setting(0.5, _number(float, 0, 1), "WATCH",
                                                 "detections below this are ignored")
    event_quiet_s: float = _camera_setting(5.0, _number(float, 0.1, 3600), "WATCH",
                                           "an event ends after this long without motion")
    record_events: bool = _camera_setting(False, _boolean, "WATCH", "record each event as a clip")
    preroll_s: float = _camera_setting(5.0, _number(float, 0, 300), "WATCH", "seconds of clip before the event")
    postroll_s: float = _camera_setting(5.0, _number(float, 0, 3600), "WATCH", "seconds of clip after the event")
    ptz: str = _camera_setting("", _choice(PTZ_KINDS), "PTZ", "pan-tilt-zoom protocol: tapo or onvif")
    ptz_host: str = _camera_setting("", _text, "PTZ", "the PTZ camera's address (empty: the source URL's host)")
    ptz_port: int = _camera_setting(0, _number(int, 0, 65535), "PTZ",
                                    "the PTZ port (0: the protocol's, 443 Tapo, 80 ONVIF)")
    ptz_username: str = _camera_setting("", _text, "PTZ", "PTZ user name (empty: the source URL's)")
    ptz_password: str = _camera_setting("", _text, "PTZ", "PTZ password (empty: the source URL's)")
    ptz_timeout_s: float = _camera_setting(5.0, _number(float, 0.5, 30), "PTZ",
                                           "seconds a PTZ request may take before it is a 504")
    webhook_url: str = setting("", _text, "WATCH", "URL that gets a JSON POST on events")
    mqtt_host: str = setting("", _text, "WATCH", "MQTT broker's host name or address")
    mqtt_port: int = setting(1883, _number(int, 1, 65535), "WATCH", "MQTT broker's port")
    mqtt_topic: str = setting("camera_server", _text, "WATCH", "MQTT topic prefix")
    mqtt_username: str = setting("", _text, "WATCH", "MQTT user name")
    mqtt_password: str = setting("", _text, "WATCH", "MQTT password")
    allow_power_control: bool = setting(False, _boolean, "SETTINGS",
                                        "let /shutdown and /reboot power off or restart the computer")
    light: bool = setting(False, _boolean, "SETTINGS", "an LED ring is attached")
    lighttype: str = setting("trinket", _choice(LIGHT_TYPES), "SETTINGS", "how the light is driven")
    numlights: int = setting(16, _number(int, 1, 1024), "SETTINGS", "LEDs in the ring (neopixel)")
    tty: str = setting("/dev/ttyACM0", _text, "SETTINGS", "the board's serial port, or emulator")
    baud: int = setting(9600, _number(int, 300, 4_000_000), "SETTINGS", "serial speed")
    userkey: str = setting("", _text, "KEYS", "key for /logs, /shutdown, /reboot and the login")
    require_login: bool = setting(False, _boolean, "KEYS", "every page and control needs a login")
    # Not config keys: where the settings came from, and the cameras.
    config_path: str = ""           # the file load_settings read, or would have read (it did not exist)
    camera_name: str = ""           # this camera's [camera NAME]; empty: named by its kind (camera)
    cameras: tuple = ()             # each camera's Settings, in file order; empty: just this one
    # The per-camera (key, value) texts of [SETTINGS]/[WATCH], which a new camera section inherits.
    camera_defaults: tuple = dataclasses.field(default=(), repr=False)

    @property
    def name(self):
        return self.camera_name or self.camera

    @property
    def all_cameras(self):
        return self.cameras or (self,)

    def for_camera(self, name):
        """The Settings of the camera named ``name``; KeyError when there is none."""
        for camera in self.all_cameras:
            if camera.name == name:
                return camera
        raise KeyError(name)

    def replace(self, **changes):
        """A copy with ``changes``: per-camera ones for the default camera, server-wide ones for all."""
        if not self.cameras or "cameras" in changes:
            return dataclasses.replace(self, **changes)
        shared = {key: value for key, value in changes.items() if key not in _DEFAULT_CAMERA_FIELDS}
        default, *others = self.cameras
        cameras = (dataclasses.replace(default, **changes),
                   *(dataclasses.replace(camera, **shared) for camera in others))
        return dataclasses.replace(self, cameras=cameras, **changes)


_KEYS = {field.name: field.metadata for field in dataclasses.fields(Settings) if field.metadata}
PER_CAMERA_KEYS = frozenset(key for key, declared in _KEYS.items() if declared["per_camera"])
_DEFAULT_CAMERA_FIELDS = PER_CAMERA_KEYS | {"camera_name"}

# Environment variables that override the file (seed 002 uses CAMERA=opencv). CAMERA and
# CAMERA_SOURCE are per-camera keys: they override the default (first) camera only.
_ENVIRONMENT = {"CAMERA": "camera", "PORT": "port", "CAMERA_SOURCE": "source"}


def load_settings(path=None, environ=None):
    """Read ``path`` (default: $CONFIG_FILE or ./config.txt) and the environment into Settings."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("CONFIG_FILE") or "config.txt")
    shared, sections = {}, {}
    if path.exists():
        shared, sections = _read_ini(path)
        # The original server used a USB camera when config.txt left camera empty.
        shared.setdefault("camera", "usb")
    overrides = {key: environ[variable].strip()
                 for variable, key in _ENVIRONMENT.items() if environ.get(variable, "").strip()}
    server = {key: value for key, value in {**shared, **overrides}.items() if key not in PER_CAMERA_KEYS}
    camera_defaults = tuple((key, value) for key, value in shared.items() if key in PER_CAMERA_KEYS)
    base = Settings(config_path=str(path), camera_defaults=camera_defaults,
                    **{key: _KEYS[key]["parse"](key, value) for key, value in server.items()})
    default_camera_overrides = {key: value for key, value in overrides.items() if key in PER_CAMERA_KEYS}
    if not sections:
        return _camera_settings(base, "", {}, default_camera_overrides)
    cameras = tuple(_camera_settings(base, name, values, default_camera_overrides if index == 0 else {})
                    for index, (name, values) in enumerate(sections.items()))
    return dataclasses.replace(cameras[0], cameras=cameras)


def parse_camera_section(name, values, base):
    """The Settings of a camera ``[camera NAME]`` with ``values`` (key -> text) would give, checked as
    loading config.txt checks it; server-wide fields and [SETTINGS]/[WATCH] defaults from ``base``."""
    section = f"camera {name}"
    check_camera_name(name, section)
    for key in values:
        _check_camera_key(section, key)
    own = {key: str(value).strip() for key, value in values.items() if str(value).strip()}
    if "camera" not in own and "camera" not in dict(base.camera_defaults):
        own["camera"] = "usb"       # the section goes into a config.txt, which makes an empty camera usb
    camera = _camera_settings(base, name, own, {})
    _check_stream_address(section, camera.source)
    return camera


STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")


def _check_stream_address(section, source):
    """A source that is a URL must be one a camera can answer at: a known scheme, a host, a port that is a
    number. Checked for a camera added at run time (a typo is said at once); config.txt itself keeps
    the freedom to name any source OpenCV opens, which shows NO SIGNAL with the reason when it cannot."""
    if "://" not in source:
        return
    try:
        parts = urllib.parse.urlsplit(source)
        parts.port          # raises ValueError for a port that is not a number
    except ValueError as error:
        raise ConfigError(f"[{section}] source is not a valid URL ({error}); write it as "
                          "rtsp://user:password@host:port/path") from None
    if parts.scheme.lower() not in STREAM_SCHEMES:
        raise ConfigError(f"[{section}] source: {parts.scheme!r} is not a stream address; use one of: "
                          f"{', '.join(STREAM_SCHEMES)}")
    if not parts.hostname:
        raise ConfigError(f"[{section}] source names no host; write it as rtsp://user:password@host:port/path")


def check_camera_name(name, section=None):
    """``name`` if it can name a camera (it is used in URLs and file names); ConfigError if not."""
    if not isinstance(name, str) or not _CAMERA_NAME.fullmatch(name):
        where = f"[{section}]: " if section is not None else ""
        raise ConfigError(f"{where}camera name {name!r} is not allowed; use {CAMERA_NAME_RULE}")
    return name


def project_path(path):
    """A path from the settings (media_dir, log_file): a relative one is in the project folder."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_DIR / path


def _camera_settings(base, name, own, overrides):
    """One camera: the [SETTINGS]/[WATCH] defaults of ``base``, then its section's ``own`` values
    (errors name the section), then ``overrides`` from the environment."""
    label = f"[camera {name}] " if name else ""
    values = {key: (value, "") for key, value in base.camera_defaults}
    values.update({key: (value, label) for key, value in own.items()})
    values.update({key: (value, "") for key, value in overrides.items()})
    camera, camera_label = values.get("camera", ("", ""))
    if camera.lower() == "obdet":
        # Seed 002's CAMERA=obdet: the OpenCV camera with object detection, which runs on motion.
        values.update(camera=("opencv", camera_label), motion_on_start=("true", camera_label))
        values.setdefault("detector", ("hog", camera_label))
    defaults = {key: getattr(Settings, key) for key in PER_CAMERA_KEYS}
    parsed = {key: _KEYS[key]["parse"](where + key, value) for key, (value, where) in values.items()}
    return dataclasses.replace(base, camera_name=name, cameras=(), **{**defaults, **parsed})


def _check_camera_key(section, key):
    if key in PER_CAMERA_KEYS:
        return
    if key in _KEYS:
        raise ConfigError(f"[{section}]: {key} is a server setting: move it to [{_KEYS[key]['section']}]")
    known = ", ".join(sorted(PER_CAMERA_KEYS))
    raise ConfigError(f"unknown key {key!r} in [{section}]; the keys a camera section takes: {known}")


def _read_ini(path):
    """The values of the plain sections (key -> text), and each camera section's (name -> key -> text)
    in file order. Empty values are left out: they mean the default."""
    # default_section: no section name, so a [DEFAULT] section is a plain one like any other.
    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    try:
        parser.read(path, encoding="utf-8-sig")     # utf-8-sig: Windows Notepad starts with a BOM
    except configparser.DuplicateSectionError as error:
        raise ConfigError(f"{path}: [{error.section}] appears twice (line {error.lineno}); give each "
                          "section, and each camera, its own name") from None
    except (configparser.Error, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a valid INI file: {error}") from None
    shared, cameras = {}, {}
    for section in parser.sections():
        values = {key: value.strip() for key, value in parser.items(section) if value.strip()}
        if section.lower().startswith("camera"):
            name = section[len("camera "):] if section.startswith("camera ") else None
            if name is None:
                raise ConfigError(f"{path}: [{section}] is not a camera section; write [camera NAME], "
                                  f"NAME {CAMERA_NAME_RULE}")
            check_camera_name(name, section)
            for key in parser.options(section):
                _check_camera_key(section, key)
            cameras[name] = values
            continue
        for key in parser.options(section):
            if key not in _KEYS:
                known = ", ".join(sorted(_KEYS))
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]; known keys: {known}")
        shared.update(values)
    return shared, cameras
