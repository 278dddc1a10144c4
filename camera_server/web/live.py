"""Live routes: the live page, the MJPEG stream, /status and /metrics, the camera's controls and
snapshots, the log tail, and the power controls (a blueprint)."""
import logging
import socket
import subprocess

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST

from camera_server import failures, logging_setup
from camera_server.blocking import call_blocking
from camera_server.capture.camera import CameraError, FocusNotSupported
from camera_server.media.files import (MediaExists, MediaNameError, check_media_name, timestamped_name, write_new_file,
                                       write_unique_file)
from camera_server.stream import mjpeg
from camera_server.web import auth
from camera_server.web.media_routes import request_catalogue
from camera_server.web.request_fields import field, number, query_number, switch, text_fields

log = logging.getLogger(__name__)
SNAPSHOT_EXTENSIONS = (".jpg", ".jpeg")
POWER_COMMANDS = {"shutdown": ["systemctl", "poweroff"], "reboot": ["systemctl", "reboot"]}


def _camera():
    return current_app.extensions["camera"]


def take_snapshot(filename=None):
    """Save the current frame's JPEG in the media folder; answer the file it wrote."""
    try:
        name = check_media_name(filename, SNAPSHOT_EXTENSIONS) if filename else None
        frame = _camera().current_frame()
        # The write (with fsync) and the catalogue's write lock can wait: not on the gevent loop.
        path = call_blocking(_save_snapshot, frame, current_app.config["MEDIA_DIR"], name,
                             current_app.extensions["catalogue"], current_app.config["SETTINGS"].camera)
    except MediaNameError as error:
        abort(400, description=str(error))
    except MediaExists as error:
        abort(409, description=str(error))
    except CameraError as error:
        abort(503, description=str(error))
    log.info("snapshot saved as %s", path.name)
    return jsonify(file=path.name, size=len(frame.jpeg), url=f"/media/{path.name}", timestamp=frame.timestamp)


def _save_snapshot(frame, media_dir, name, catalogue, camera_name):
    """Write the frame's JPEG as ``name`` (or a timestamped name) and catalogue it; answer its path."""
    if name:
        path = write_new_file(media_dir, name, frame.jpeg)
    else:
        path = write_unique_file(media_dir, timestamped_name("snapshot", ".jpg", frame.timestamp), frame.jpeg)
    height, width = frame.image.shape[:2]
    try:        # put: the file is new, so an entry of its name is stale (its file was deleted outside)
        catalogue.put(path.name, "picture", created=frame.timestamp, width=width, height=height, camera=camera_name)
    except BaseException:
        path.unlink(missing_ok=True)        # never a file the catalogue does not list
        raise
    return path


# The 'generic' payloads of /manual_video (seed 001 §5f): name -> function(args).
PAYLOADS = {
    "snapshot": lambda args: take_snapshot(args.get("filename")),
}


def video_payload(payload, args):
    action = PAYLOADS.get(payload)
    if action is None:
        abort(400, description=f"unknown payload {payload!r}; known payloads: {', '.join(sorted(PAYLOADS))}")
    return action(args)


def _focus_control(action, *args):
    try:
        focus = action(*args)
    except FocusNotSupported as error:
        abort(409, description=str(error))
    except CameraError as error:
        abort(503, description=str(error))
    return jsonify(focus=focus)


def create_live_blueprint():
    blueprint = Blueprint("live", __name__)

    @blueprint.get("/")
    def index():
        camera = _camera()
        return render_template("index.html", status=camera.status(),
                               has_light=current_app.extensions["led"] is not None,
                               recording=current_app.extensions["recorder"].status(),
                               watch=current_app.extensions["watch"].status(),
                               **_recent_media())

    @blueprint.get("/video_feed")
    def video_feed():
        camera, limit = _camera(), current_app.config["SETTINGS"].max_viewers
        leave = camera.admit_viewer(limit)       # counted now, not when the body is first read
        if leave is None:
            abort(503, description=f"this camera already has {limit} viewers (max_viewers); try again later")
        _keep_send_buffer_small(request.environ.get("gunicorn.socket"), camera.hub.latest)
        try:
            response = Response(_mjpeg(camera, current_app.extensions["metrics"]),
                                mimetype=mjpeg.MIMETYPE,
                                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        except BaseException:
            leave()
            raise
        response.call_on_close(leave)           # also when the body was never read (HEAD, a closed socket)
        return response

    @blueprint.get("/metrics")
    def metrics():
        """Prometheus; the same access rules as /status. Reads the disk and catalogue off the gevent loop."""
        return Response(call_blocking(current_app.extensions["metrics"].exposition),
                        content_type=CONTENT_TYPE_LATEST)

    @blueprint.get("/status")
    def status():
        body = {"camera": _camera().status(), "recording": current_app.extensions["recorder"].status(),
                **current_app.extensions["watch"].status()}
        led = current_app.extensions["led"]
        body["light"] = led.status() if led is not None else None
        return jsonify(body)

    @blueprint.post("/snapshot")
    @auth.require_control
    def snapshot():
        return take_snapshot(field("filename", required=False))

    @blueprint.post("/grayscale")
    @auth.require_control
    def grayscale():
        camera = _camera()
        return jsonify(grayscale=camera.set_grayscale(switch("state", camera.grayscale)))

    @blueprint.post("/resolution")
    @auth.require_control
    def resolution():
        camera = _camera()
        return jsonify(half_resolution=camera.set_half_resolution(switch("state", camera.half_resolution)))

    @blueprint.post("/autofocus")
    @auth.require_control
    def autofocus():
        camera = _camera()
        focus = camera.source.focus_state() or {}
        return _focus_control(camera.set_autofocus, switch("state", bool(focus.get("autofocus"))))

    @blueprint.post("/step_focus")
    @auth.require_control
    def step_focus():
        return _focus_control(_camera().step_focus, number("steps", int, -100, 100))

    @blueprint.post("/set_focus")
    @auth.require_control
    def set_focus():
        return _focus_control(_camera().set_focus, number("value", float, 0, 1023))

    @blueprint.post("/manual_video")
    @auth.require_control
    def manual_video():
        return video_payload(field("payload"), text_fields())

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

    return blueprint


def _recent_media():
    """The newest events and media for the live page. A catalogue that cannot answer (damaged, a disk
    error) leaves the lists empty and says why: the page and its stream still load."""
    try:
        return {"events": request_catalogue().events(limit=5), "entries": request_catalogue().entries(limit=20),
                "catalogue_error": None}
    except failures.SURROUNDINGS as error:
        failure = failures.explain(error)
        if failure is None:
            raise
        log.warning("live page without its lists: %s", failure.message)
        return {"events": [], "entries": [], "catalogue_error": failure.message}


def _power(action):
    if not current_app.config["SETTINGS"].allow_power_control:
        abort(403, description=f"{action} is disabled: set allow_power_control = true in config.txt")
    log.warning("%s requested from %s", action, request.remote_addr)
    try:
        subprocess.Popen(POWER_COMMANDS[action])
    except OSError as error:
        abort(503, description=f"could not {action}: {error}")
    return jsonify(action=action, accepted=True), 202


MIN_SEND_BUFFER = 64 * 1024     # bytes; the kernel doubles it


def _keep_send_buffer_small(connection, latest):
    """A viewer slower than the camera must skip frames (the stream sends the newest one each time it
    can), not read seconds-old ones out of the kernel's send buffer, which grows to megabytes: a few
    frames of room keep its picture recent. Only gunicorn says which socket is the viewer's."""
    if connection is None:
        return
    frame_size = len(latest.jpeg) if latest is not None else 0
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(MIN_SEND_BUFFER, 3 * frame_size))
    except OSError as error:
        log.debug("could not size the viewer's send buffer: %s", error)


def _mjpeg(camera, metrics):
    """The multipart body: each part is prebuilt by the camera, so viewers cost no encoding."""
    yield mjpeg.FIRST_BOUNDARY
    sent = None
    for frame in camera.frames(held=True):
        yield frame.part
        metrics.count_sent(sent, frame.seq)
        sent = frame.seq
