"""Scene watch routes: a camera's scene-change monitor, motion detection, watch page and the seed's
/delete (a blueprint per camera, see selected_camera), and the events and /shows of all cameras."""
from flask import Blueprint, Response, abort, jsonify, render_template

from camera_server.blocking import call_blocking
from camera_server.capture.camera import CameraError
from camera_server.watch.monitor import validate_threshold
from camera_server.web import auth
from camera_server.web.media_routes import request_catalogue
from camera_server.web.request_fields import number, query_number, query_text
from camera_server.web.selected_camera import catalogue_filter, selected


SHOWS_PER_PAGE = 200        # /shows lists the newest changes; ?limit= shows more
SHOWS_MAX = 10000           # the most ?limit= may ask for


def _watch():
    return selected().watch


def _threshold():
    value = number("threshold", required=False)
    try:
        return None if value is None else validate_threshold(value)
    except ValueError as error:
        abort(400, description=str(error))


def create_watch_blueprint():
    blueprint = Blueprint("watch", __name__)

    @blueprint.post("/monitor/baseline")
    @auth.require_control
    def take_baseline():
        try:
            return jsonify(_watch().take_baseline())
        except CameraError as error:
            abort(503, description=str(error))

    @blueprint.get("/monitor/baseline.jpg")
    def baseline_picture():
        jpeg = _watch().baseline_jpeg
        if jpeg is None:
            abort(404, description="no baseline yet: POST /monitor/baseline takes one")
        return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})

    @blueprint.post("/monitor/start")
    @auth.require_control
    def start_monitor():
        threshold = _threshold()
        try:
            return jsonify(_watch().start_monitor(threshold))
        except CameraError as error:
            abort(503, description=f"cannot take a baseline: {error}")

    @blueprint.post("/monitor/stop")
    @auth.require_control
    def stop_monitor():
        return jsonify(_watch().stop_monitor())

    @blueprint.post("/motion/start")
    @auth.require_control
    def start_motion():
        return jsonify(_watch().start_motion())

    @blueprint.post("/motion/stop")
    @auth.require_control
    def stop_motion():
        return jsonify(_watch().stop_motion())

    @blueprint.get("/watch")
    def watch_page():
        unit = selected()
        return render_template("watch.html", status=unit.watch.status(), camera_name=unit.name,
                               camera_filter=catalogue_filter(unit),
                               events=request_catalogue().events(limit=50, camera=catalogue_filter(unit)))

    @blueprint.post("/delete")
    @auth.require_control
    def delete_changes():
        unit = selected()       # deletes files: off the loop
        return jsonify(deleted=call_blocking(unit.watch.delete_changes, catalogue_filter(unit)))

    return blueprint


def create_history_blueprint():
    """The events and saved changes of every camera, or of one with ?camera=NAME."""
    blueprint = Blueprint("history", __name__)

    @blueprint.get("/events")
    def events():
        return jsonify(request_catalogue().events(limit=query_number("limit", 100, 1, 1000), camera=_camera_query()))

    @blueprint.get("/shows")
    def shows():
        limit = query_number("limit", SHOWS_PER_PAGE, 1, SHOWS_MAX)
        entries = request_catalogue().entries(kind="change", limit=limit + 1, camera=_camera_query())
        return render_template("shows.html", entries=entries[:limit], limit=limit, more=len(entries) > limit,
                               max_limit=SHOWS_MAX)

    return blueprint


def _camera_query():
    return query_text("camera", max_length=64)
