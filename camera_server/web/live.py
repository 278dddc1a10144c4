"""Live routes of one camera (a blueprint registered for the default camera and under /cam/<name>):
the live page, the MJPEG stream, the live H.264 stream for players and the newest still, its
/status, its controls, snapshots and recordings."""
import logging
import socket

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from camera_server import failures
from camera_server.blocking import call_blocking
from camera_server.capture.camera import CameraError, FocusNotSupported
from camera_server.media.files import MediaExists, MediaNameError, check_media_name
from camera_server.media.pictures import save_picture
from camera_server.stream import mjpeg
from camera_server.stream.h264 import EncoderUnavailable, StreamChanged
from camera_server.web import auth
from camera_server.web.media_routes import answer, request_catalogue
from camera_server.web.request_fields import field, number, switch, text_fields
from camera_server.web.selected_camera import cameras, catalogue_filter, selected

log = logging.getLogger(__name__)
SNAPSHOT_EXTENSIONS = (".jpg", ".jpeg")


def _camera():
    return selected().camera


def take_snapshot(filename=None):
    """Save the current frame's JPEG in the media folder; answer the file it wrote."""
    try:
        name = check_media_name(filename, SNAPSHOT_EXTENSIONS) if filename else None
        camera = _camera()
        frame = camera.current_frame()
        # The write (with fsync) and the catalogue's write lock can wait: not on the gevent loop.
        # put: the file is new, so an entry of its name is stale (its file was deleted outside).
        path = call_blocking(save_picture, frame, current_app.config["MEDIA_DIR"], "picture",
                             current_app.extensions["catalogue"].put, filename=name, camera=camera.name)
    except MediaNameError as error:
        abort(400, description=str(error))
    except MediaExists as error:
        abort(409, description=str(error))
    except CameraError as error:
        abort(503, description=str(error))
    log.info("snapshot saved as %s", path.name)
    return jsonify(file=path.name, size=len(frame.jpeg), url=f"/media/{path.name}", timestamp=frame.timestamp)


def record(action, filename=None):
    """Start (``filename``: optional) or stop the camera's recording: /video_capture and the socket's
    record controls. Answers the recorder's JSON."""
    recorder = selected().recorder
    if action == "start":
        return answer(recorder.start, filename)
    if action == "stop":       # waits while the file is finished: not on the event loop
        return answer(call_blocking, recorder.stop)
    abort(400, description=f"action must be start or stop, not {action!r}")


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
        unit = selected()
        return _camera_page("index.html", unit, has_light=current_app.extensions["led"] is not None,
                            **_recent_media(unit))

    @blueprint.get("/remote")
    def remote():
        """Seed 004's page: the WebSocket view, the PTZ pad, recording and motion detection."""
        return _camera_page("remote.html", selected())

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

    @blueprint.get("/video_feed.mp4")
    def video_feed_mp4():
        """Live H.264 as fragmented MP4 for players (VLC, ffmpeg): the camera's one shared encode, with
        the same login and the same count of viewers as /video_feed."""
        unit, limit = selected(), current_app.config["SETTINGS"].max_viewers
        leave = unit.camera.admit_viewer(limit)
        if leave is None:
            abort(503, description=f"this camera already has {limit} viewers (max_viewers); try again later")
        try:
            feed = unit.live_h264.join()
        except BaseException as error:
            leave()
            if isinstance(error, EncoderUnavailable):
                abort(503, description=f"{error}; the JPEG stream (video_feed) still works")
            raise

        def close():
            feed.close()
            leave()
        _keep_send_buffer_small(request.environ.get("gunicorn.socket"), None)
        try:
            response = Response(_fragmented_mp4(feed), mimetype="video/mp4",
                                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        except BaseException:
            close()
            raise
        response.call_on_close(close)
        return response

    @blueprint.get("/latest.jpg")
    def latest_picture():
        """The newest frame as one JPEG (a "no signal" picture while the camera has none): what a grid
        tile or a script polls. Starts the camera when needed, which stays open idle_timeout after."""
        camera = _camera()
        frame = camera.newest_frame()
        if frame is None:
            abort(503, description=f"no picture from camera {camera.name} yet; try again")
        return Response(frame.jpeg, mimetype="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Frame-Seq": str(frame.seq),
                                 "X-Frame-Time": f"{frame.timestamp:.3f}"})

    @blueprint.get("/status")
    def status():
        """The camera's status; /status (the default camera's) also lists every camera's."""
        unit = selected()
        if request.blueprint == "live":     # /status: every camera's too, the default camera's read once
            every = {other.name: other.status() for other in cameras()}
            body = {**every[unit.name], "cameras": every}
        else:
            body = unit.status()
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

    @blueprint.post("/video_capture")
    @auth.require_control
    def video_capture():
        action = field("action").lower()
        return jsonify(record(action, field("filename", required=False) if action == "start" else None))

    @blueprint.post("/manual_video")
    @auth.require_control
    def manual_video():
        return video_payload(field("payload"), text_fields())

    return blueprint


def _camera_page(template, unit, **context):
    """A page of one camera, with its state, its recording, its watch, its pan-tilt-zoom (None without)
    and the cameras to switch to."""
    return render_template(template, status=unit.camera.status(), recording=unit.recorder.status(),
                           watch=unit.watch.status(), ptz=unit.ptz.status() if unit.ptz is not None else None,
                           camera_names=cameras().names, camera_name=unit.name,
                           camera_filter=catalogue_filter(unit), **context)


def _recent_media(unit):
    """The newest events and media for a camera's live page: that camera's when the server has several.
    A catalogue that cannot answer (damaged, a disk error) leaves the lists empty and says why: the
    page and its stream still load."""
    only = catalogue_filter(unit)
    try:
        return {"events": request_catalogue().events(limit=5, camera=only),
                "entries": request_catalogue().entries(limit=20, camera=only), "catalogue_error": None}
    except failures.SURROUNDINGS as error:
        failure = failures.explain(error)
        if failure is None:
            raise
        log.warning("live page without its lists: %s", failure.message)
        return {"events": [], "entries": [], "catalogue_error": failure.message}


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
    for frame in camera.frames(timeout=None, held=True):     # no timer per frame: the camera's stop wakes it
        yield frame.part
        metrics.count_sent(camera.name, sent, frame.seq)
        sent = frame.seq


def _fragmented_mp4(feed):
    """The MP4 body: the initialization segment, then the fragments from the newest keyframe, each built
    once by the camera's encoder. An encoder that starts again at another picture size ends it, and the
    player reconnects: players do not take a second segment in a file."""
    try:
        while not feed.ended:
            item = feed.next_in_stream()        # no timer: the next fragment, or the encoder's stop, ends the wait
            if item is not None:
                yield item.data
    except StreamChanged:
        return
