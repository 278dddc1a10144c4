"""Server routes, for the whole server rather than one camera (a blueprint): /metrics, the log tail,
the power controls, and the camera grid with adding and removing cameras at run time."""
import functools
import logging
import subprocess
import threading

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST

from camera_server import failures, logging_setup
from camera_server.blocking import call_blocking
from camera_server.cameras import CameraExists, DefaultCameraKept, UnknownCamera
from camera_server.capture.camera import CameraError
from camera_server.config_file import CameraNotFound, add_camera_section, remove_camera_section
from camera_server.config_file import CameraExists as CameraInConfigFile
from camera_server.settings import CAMERA_TYPES, parse_camera_section, project_path
from camera_server.url_secrets import redact, url_secrets
from camera_server.watch.detection import DetectorError
from camera_server.web import auth
from camera_server.web.request_fields import field, number, query_number
from camera_server.web.selected_camera import cameras

log = logging.getLogger(__name__)
POWER_COMMANDS = {"shutdown": ["systemctl", "poweroff"], "reboot": ["systemctl", "reboot"]}
# What the grid's form may set of a new camera: the text ones, and the numbers (sent as text or JSON numbers).
CAMERA_TEXT_FIELDS = ("camera", "source")
CAMERA_NUMBER_FIELDS = {"width": int, "height": int, "fps": float}


def create_server_blueprint():
    blueprint = Blueprint("server", __name__)

    @blueprint.get("/metrics")
    def metrics():
        """Prometheus; the same access rules as /status. Reads the disk and catalogue off the gevent loop."""
        return Response(call_blocking(current_app.extensions["metrics"].exposition),
                        content_type=CONTENT_TYPE_LATEST)

    @blueprint.get("/logs")
    @auth.require_userkey
    def logs():
        lines = query_number("lines", 200, 1, 10000)
        return Response(call_blocking(logging_setup.tail, current_app.config["LOG_FILE"], lines),
                        mimetype="text/plain")

    @blueprint.post("/shutdown")
    @auth.require_userkey
    def shutdown():
        return _power("shutdown")

    @blueprint.post("/reboot")
    @auth.require_userkey
    def reboot():
        return _power("reboot")

    @blueprint.get("/cameras")
    def cameras_page():
        return render_template("cameras.html", cameras=[(unit.name, unit.camera.status()) for unit in cameras()],
                               default_camera=cameras().default.name, camera_types=CAMERA_TYPES,
                               needs_userkey=not current_app.config["SETTINGS"].require_login)

    changes = threading.Lock()      # one change of the cameras and config.txt at a time

    @blueprint.post("/cameras/add")
    @auth.require_control
    @_require_userkey_or_login
    def add_camera():
        name, values = field("name"), _camera_values()
        settings = current_app.config["SETTINGS"]
        try:
            camera_settings = parse_camera_section(name, values, settings)
            unit = call_blocking(add_and_write, cameras(), camera_settings, values, _config_file(settings), changes)
        except (CameraExists, CameraInConfigFile) as error:
            abort(409, description=str(error))
        except (ValueError, CameraError, DetectorError) as error:       # a bad name or value, a backend not here
            abort(400, description=str(error))
        except OSError as error:        # config.txt cannot be written: the camera was not added
            _config_file_failure(error)
        source = values.get("source", "")
        log.info("camera %s added by %s (%s%s)", name, request.remote_addr, unit.camera.kind,
                 f", {redact(source, url_secrets(source))}" if source else "")
        return jsonify(added=unit.name, status=unit.status(), cameras=cameras().names), 201

    @blueprint.post("/cameras/remove")
    @auth.require_control
    @_require_userkey_or_login
    def remove_camera():
        name = field("name")
        settings = current_app.config["SETTINGS"]
        try:
            call_blocking(remove_and_write, cameras(), name, _config_file(settings), changes)
            current_app.extensions["metrics"].forget(name)
        except UnknownCamera as error:
            abort(404, description=str(error))
        except DefaultCameraKept as error:
            abort(409, description=str(error))
        except OSError as error:        # config.txt cannot be written: the camera stays
            _config_file_failure(error)
        log.info("camera %s removed by %s", name, request.remote_addr)
        return jsonify(removed=name, cameras=cameras().names)

    return blueprint


def add_and_write(registry, settings, values, path, lock):
    """Add the camera to the running server, then its section to config.txt (so it is there after a
    restart); a file that cannot be written takes the camera out again and raises."""
    with lock:
        unit = registry.add(settings)
        try:
            add_camera_section(path, settings.name, values, default_camera=registry.default.settings)
        except BaseException:
            registry.remove(settings.name)
            raise
    return unit


def remove_and_write(registry, name, path, lock):
    """Take the camera's section out of config.txt (if it has one: the file may have been edited since),
    then the camera out of the running server (its recording is finished)."""
    with lock:
        if registry.get(name) is registry.default:
            raise DefaultCameraKept(f"{name} is the default camera, which the original routes use; it "
                                    "cannot be removed while the server runs (take its section out of "
                                    "config.txt and restart)")
        try:
            remove_camera_section(path, name)
        except CameraNotFound:
            pass
        return registry.remove(name)


def _camera_values():
    """The new camera's config.txt values as text, as the form sent them; the numbers' ranges are
    checked with the rest by parse_camera_section."""
    values = {key: field(key, required=False) for key in CAMERA_TEXT_FIELDS}
    for key, kind in CAMERA_NUMBER_FIELDS.items():
        value = number(key, kind, required=False)
        values[key] = None if value is None else (str(int(value)) if value == int(value) else str(value))
    return {key: value for key, value in values.items() if value is not None}


def _config_file(settings):
    """The config file the server reads at start-up (load_settings names it, whether it exists or not);
    the project's config.txt for settings built in code."""
    return settings.config_path or str(project_path("config.txt"))


def _config_file_failure(error):
    failure = failures.explain(error)
    log.warning("cannot change %s: %s", error.filename or "config.txt", error)
    if failure is None:
        abort(503, description=f"cannot write the config file ({error}); nothing was changed")
    response = jsonify(error=f"{failure.message}; nothing was changed", status=failure.status)
    response.status_code = failure.status
    abort(response)


def _require_userkey_or_login(view):
    """Adding and removing cameras (which opens any address or file as a camera, and writes config.txt)
    needs the userkey or a login (with require_login every request has one), not only the page's token."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_app.config["SETTINGS"].require_login:
            return view(*args, **kwargs)
        if not current_app.config.get("USERKEY"):
            abort(403, description="adding and removing cameras needs the userkey: set userkey in the [KEYS] "
                                   "section of config.txt")
        if not auth.has_userkey():
            abort(403, description="adding and removing cameras needs the userkey (the field on the page, "
                                   f"an {auth.USERKEY_HEADER} header or a userkey field)")
        return view(*args, **kwargs)
    return wrapper


def _power(action):
    if not current_app.config["SETTINGS"].allow_power_control:
        abort(403, description=f"{action} is disabled: set allow_power_control = true in config.txt")
    log.warning("%s requested from %s", action, request.remote_addr)
    try:
        subprocess.Popen(POWER_COMMANDS[action])
    except OSError as error:
        abort(503, description=f"could not {action}: {error}")
    return jsonify(action=action, accepted=True), 202
