"""A camera's pan-tilt-zoom routes (blueprint ``ptz``, per camera: ``/ptz/...`` and ``/cam/<name>/ptz/...``).

Reads are GET, everything that moves or changes the camera is POST with the control right. The camera's
library calls run off the event loop (``call_blocking``) and answer within the camera's
``ptz_timeout_s``: 503 when it cannot be reached, 504 when it is too slow, 502 when it refuses the
password, 409 for what it cannot do, 400 for bad values (nothing reaches the camera then).
"""
from flask import Blueprint, abort, jsonify

from camera_server.blocking import call_blocking
from camera_server.ptz.base import DIRECTIONS, PtzAuthFailed, PtzError, PtzTimeout, PtzUnreachable, \
    PtzUnsupported, direction_motion, zoom_direction
from camera_server.web import auth
from camera_server.web.request_fields import field, number, switch
from camera_server.web.selected_camera import selected

ACTIONS = ("move", "stop", "zoom", "home", "presets", "preset/goto", "preset/save", "preset/delete",
           "privacy", "status")


def selected_controller():
    unit = selected()
    if unit.ptz is None:
        abort(409, description=f"camera {unit.name} has no pan-tilt-zoom (set ptz = tapo or onvif in its "
                               f"[camera {unit.name}] section of config.txt)")
    return unit.ptz


def answer(action, *args):
    """``action(*args)`` off the event loop, its errors as the status codes above."""
    try:
        return jsonify(call_blocking(action, *args))
    except ValueError as error:
        abort(400, description=str(error))
    except PtzUnsupported as error:
        abort(409, description=str(error))
    except PtzTimeout as error:
        abort(504, description=str(error))
    except PtzUnreachable as error:
        abort(503, description=str(error))
    except PtzAuthFailed as error:
        abort(502, description=str(error))
    except PtzError as error:
        abort(502, description=str(error))


def motion(direction, pan, tilt):
    """(pan, tilt) from ``direction``, or from ``pan`` and ``tilt`` (the controller checks their range);
    400 for neither or both. The routes and the socket's controls read them each their own way."""
    if direction is not None:
        if pan is not None or tilt is not None:
            abort(400, description="send direction, or pan and tilt, not both")
        try:
            return direction_motion(direction)
        except ValueError as error:
            abort(400, description=str(error))
    if pan is None and tilt is None:
        abort(400, description=f"send direction ({', '.join(DIRECTIONS)}), or pan and tilt (-1 to 1)")
    return pan or 0.0, tilt or 0.0


def zoom_amount(direction, amount):
    """The zoom speed from ``direction`` (in or out) or ``amount`` (-1 to 1); 400 for neither or both."""
    if (direction is None) == (amount is None):
        abort(400, description="send direction (in or out), or zoom (-1 to 1)")
    if direction is None:
        return amount
    try:
        return zoom_direction(direction)
    except ValueError as error:
        abort(400, description=str(error))


def create_ptz_blueprint():
    blueprint = Blueprint("ptz", __name__)

    @blueprint.get("/ptz/status")
    def status():
        return jsonify(selected_controller().status())

    @blueprint.get("/ptz/presets")
    def presets():
        return answer(selected_controller().presets)

    @blueprint.post("/ptz/move")
    @auth.require_control
    def move():
        controller = selected_controller()
        pan, tilt = motion(field("direction", required=False), number("pan", float, -1, 1, required=False),
                           number("tilt", float, -1, 1, required=False))
        zoom = number("zoom", float, -1, 1, required=False) or 0.0
        speed = number("speed", float, 0, 1, required=False)
        return answer(controller.move, pan, tilt, zoom, 1.0 if speed is None else speed)

    @blueprint.post("/ptz/stop")
    @auth.require_control
    def stop():
        return answer(selected_controller().stop)

    @blueprint.post("/ptz/zoom")
    @auth.require_control
    def zoom():
        controller = selected_controller()
        amount = zoom_amount(field("direction", required=False), number("zoom", float, -1, 1, required=False))
        speed = number("speed", float, 0, 1, required=False)
        return answer(controller.move, 0.0, 0.0, amount, 1.0 if speed is None else speed)

    @blueprint.post("/ptz/home")
    @auth.require_control
    def home():
        return answer(selected_controller().home)

    @blueprint.post("/ptz/preset/goto")
    @auth.require_control
    def goto_preset():
        controller = selected_controller()
        return answer(controller.goto_preset, field("preset"))

    @blueprint.post("/ptz/preset/save")
    @auth.require_control
    def save_preset():
        controller = selected_controller()
        return answer(controller.save_preset, field("name"))

    @blueprint.post("/ptz/preset/delete")
    @auth.require_control
    def delete_preset():
        controller = selected_controller()
        return answer(controller.delete_preset, field("preset"))

    @blueprint.post("/ptz/privacy")
    @auth.require_control
    def privacy():
        controller = selected_controller()
        return answer(controller.set_privacy, switch("state"))

    @blueprint.post("/ptz/<path:action>")
    @auth.require_control
    def unknown_action(action):
        if action in ("status", "presets"):
            abort(405, description=f"/ptz/{action} only answers GET")
        abort(400, description=f"unknown PTZ action {action[:40]!r}; the actions: {', '.join(ACTIONS)}")

    return blueprint
