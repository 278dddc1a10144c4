"""The camera server's app: ``create_app()`` wires settings, the camera, the services and the routes.

``python app.py`` runs the development server; ``flaskstart.sh`` runs gunicorn with ``app:main_app()``
(both through the top-level app.py).
"""
import logging
import secrets
import sys
import threading
import time
from pathlib import Path

import click
from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from camera_server import failures, logging_setup
from camera_server.board.trinket import open_light
from camera_server.cameras import Cameras, open_camera_unit
from camera_server.capture.camera import CameraError
from camera_server.media.catalogue import open_catalogue
from camera_server.media.cli import media_cli
from camera_server.media.files import remove_leftover_temporaries
from camera_server.media.retention import RetentionTimer
from camera_server.media.video_file import read_duration, recover_interrupted
from camera_server.media.writer import CatalogueWriter
from camera_server.settings import PROJECT_DIR, ConfigError, load_settings, project_path
from camera_server.watch.detection import DetectorError
from camera_server.watch.event_store import close_interrupted_events
from camera_server.web import auth, selected_camera, socket_routes
from camera_server.web.light_routes import create_light_blueprint
from camera_server.web.live import create_live_blueprint
from camera_server.web.media_routes import create_media_blueprint, register_error_handlers
from camera_server.web.metrics import Metrics
from camera_server.web.ptz_routes import create_ptz_blueprint
from camera_server.web.request_fields import FieldRequest
from camera_server.web.server_routes import create_server_blueprint
from camera_server.web.watch_routes import create_history_blueprint, create_watch_blueprint

log = logging.getLogger(__name__)


def create_app(settings=None, camera=None, led=None):
    """Build the app; tests pass settings and fakes (``camera``: the default camera's), production
    loads config.txt.

    Built by the flask command line for a command other than run (``flask --app app media ...``), the
    app has its settings and routes but starts nothing: the camera, the light, the threads and the
    start-up repair belong to the server, which may be running beside the command.
    """
    settings = settings or load_settings()
    app = Flask(__name__, root_path=str(PROJECT_DIR))     # templates/ and static/ are at the top
    app.request_class = FieldRequest        # a body that is not JSON, or nested too deeply, is a 400
    app.config.update(
        SETTINGS=settings,
        USERKEY=settings.userkey,
        CONTROL_TOKEN=secrets.token_urlsafe(24),
        MEDIA_DIR=str(project_path(settings.media_dir)),
        LOG_FILE=str(project_path(settings.log_file)),
        MAX_CONTENT_LENGTH=64 * 1024,       # controls take a few short fields
    )
    register_error_handlers(app)            # a full disk, a locked catalogue...: 503 or 507
    app.register_error_handler(HTTPException, _json_error)
    auth.init_app(app, settings)
    selected_camera.init_app(app)
    app.context_processor(lambda: {"control_token": app.config["CONTROL_TOKEN"]})
    app.add_template_filter(_datetime, "datetime")
    app.add_template_filter(_filesize, "filesize")
    selected_camera.register_per_camera(app, create_live_blueprint())
    selected_camera.register_per_camera(app, create_watch_blueprint())
    selected_camera.register_per_camera(app, create_ptz_blueprint())
    app.register_blueprint(create_server_blueprint())
    app.register_blueprint(create_light_blueprint(lambda: current_app.extensions["led"]))
    app.register_blueprint(create_media_blueprint())
    app.register_blueprint(create_history_blueprint())
    socket_routes.init_app(app)
    app.cli.add_command(media_cli, "media")
    if not _built_for_a_command():
        _start_services(app, settings, camera, led)
    return app


def _built_for_a_command():
    """Whether the flask command line is building the app for a command other than run."""
    context = click.get_current_context(silent=True)
    return context is not None and context.command.name != "run"


def _start_services(app, settings, camera, led):
    """The catalogue (reconciled with the folder) and its background writer, the cameras (each with
    its recorder and scene watch), the light and retention."""
    media_dir = Path(app.config["MEDIA_DIR"])
    try:
        media_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:        # a read-only disk: the catalogue says why, the stream goes on
        log.error("cannot make the media folder %s: %s", media_dir, error)
    catalogue = open_catalogue(media_dir / "media.db", media_dir)
    writer = CatalogueWriter(catalogue)     # started once everything is built
    _reconcile(catalogue, media_dir, writer)
    cameras = Cameras(lambda camera_settings, **options: open_camera_unit(camera_settings, catalogue, media_dir,
                                                                          writer, **options))
    try:
        for index, camera_settings in enumerate(settings.all_cameras):
            cameras.add(camera_settings, camera=camera if index == 0 else None)
    except BaseException:
        cameras.close()
        raise
    default = cameras.default
    app.extensions.update(
        cameras=cameras,
        camera=default.camera,          # the default camera's, for what knows one camera (/metrics)
        recorder=default.recorder,
        watch=default.watch,
        led=led if led is not None else open_light(settings),
        catalogue=catalogue,
        catalogue_writer=writer,
        retention=RetentionTimer(catalogue, settings.keep_days, settings.max_media_gb).start(),
    )
    app.extensions["metrics"] = Metrics(app.extensions, media_dir)
    app.extensions["stopping"] = threading.Lock()
    writer.start()


def _reconcile(catalogue, media_dir, writer):
    """The catalogue lists exactly the media files, with their sizes and durations, and every event has
    an end: a crash, or a catalogue that was locked or full as a recording ended, may have left either
    side behind.

    A file that cannot be repaired or catalogued is logged and left as it is; start-up goes on, also
    when the catalogue cannot be changed now (locked by another program, its disk full): then the
    events a crash left open are closed by the catalogue writer once it can, before it writes anything
    else, and the rest waits for the next start.
    """
    try:
        remove_leftover_temporaries(media_dir)
        recover_interrupted(media_dir)
        found = catalogue.scan(remove_missing=True, read_duration=read_duration)
        close_interrupted_events(catalogue)
    except failures.SURROUNDINGS as error:
        if failures.explain(error) is None:
            raise
        log.warning("catalogue: start-up repair skipped: %s", failures.explain(error).message)
        writer.submit(("events", "left open"), close_interrupted_events, done=_events_left_open)
        return
    for skipped in found["skipped"]:
        log.warning("catalogue: %s is not listed: %s", skipped["filename"], skipped["reason"])
    if found["added"] or found["missing"] or found["refreshed"]:
        log.info("catalogue: added %d files found in the media folder, forgot %d missing ones, refreshed "
                 "the size of %d", len(found["added"]), len(found["missing"]), len(found["refreshed"]))
    if found["missing"]:            # nothing leaves the catalogue unnamed
        names = [entry["filename"] for entry in found["missing"]]
        log.info("catalogue: forgot, because their files are gone: %s%s", ", ".join(names[:50]),
                 f" and {len(names) - 50} more" if len(names) > 50 else "")


def _events_left_open(reason):
    if reason is not None:
        log.warning("catalogue: the events the last run left open are not closed (%s); the next start does it",
                    reason)


def stop_services(app):
    """Stop recording, release the camera and the serial board (gunicorn's worker, tests, Ctrl-C).

    The recording is asked to stop first, so its file is finished while the rest closes; the catalogue
    writer closes after the recorder and the watch, with a last attempt at what they handed over.
    Once: a second call (gunicorn's worker_exit after its SIGTERM handler began) waits for the first.
    """
    if "cameras" not in app.extensions:       # built for a command: nothing was started
        return
    with app.extensions["stopping"]:
        if app.extensions.get("stopped"):
            return
        app.extensions["cameras"].shut_down()
        app.extensions["retention"].stop()
        app.extensions["cameras"].close()
        app.extensions["catalogue_writer"].close()
        led = app.extensions.get("led")
        if led is not None:
            led.stop()
        app.extensions["catalogue"].close()
        app.extensions["stopped"] = True


def _datetime(unix_seconds):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_seconds)) if unix_seconds else ""


def _filesize(size):
    if size is None:
        return ""
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _json_error(error):
    description = error.description
    if error.code == 405 and getattr(error, "valid_methods", None):
        description = f"{request.path} only answers {' or '.join(sorted(error.valid_methods))}"
    response = jsonify(error=description, status=error.code)
    response.status_code = error.code
    return response


# gunicorn's WORKER_BOOT_ERROR: its master stops on this exit code instead of rebooting the worker.
CANNOT_START = 3


def main_app():
    """The production entry point (gunicorn 'app:main_app()'): config, logging, then the app."""
    try:
        settings = load_settings()
    except ConfigError as error:
        _cannot_start(f"config error: {error}")
    logging_setup.configure(project_path(settings.log_file), max_bytes=int(settings.log_max_mb * 1024 * 1024))
    try:
        return create_app(settings)
    except (CameraError, DetectorError, ValueError) as error:     # ConfigError is a ValueError too
        _cannot_start(f"cannot start: {error}")


def _cannot_start(message):
    """Say why once and exit with CANNOT_START (any other code makes gunicorn retry forever)."""
    print(message, file=sys.stderr, flush=True)
    sys.exit(CANNOT_START)

