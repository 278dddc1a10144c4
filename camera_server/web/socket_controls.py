"""Controls sent over /ws: the same right as the POST routes, and the same functions behind them.

A control is one text message; its parameters are members named as the route's fields::

    {"op": "control", "id": 7, "camera": "front", "action": "grayscale", "state": "toggle", "token": "..."}

``camera`` omitted: the default camera; ``id`` (a string of at most 64 characters or a whole number) is
repeated in the answer: ``{"op": "result", "id", "status": 200, "body": {...}}`` (the body the route
answers), or ``{"op": "error", "id", "status", "message"}`` with the status the route would answer.

The right is require_control's (auth.py): the live page's control token (the message's ``token``, or
an X-Control-Token header on the handshake) or the userkey (an X-User-Key header or Basic auth on the
handshake). The socket's handshake is a GET, which a page of another site cannot read the answer of,
but which a program may open with a login alone: so a login by itself is no right, as for a POST.
Without the right the answer is a 403 and nothing reaches the camera.

Each control runs beside the connection, in an application context whose camera is the message's (as
a request under /cam/<name>/ has), so a slow one (a recording being finished, a PTZ camera that does
not answer) never holds up the frames, the acks or the other messages of its socket.
"""
import logging
import threading

from flask import abort, current_app, g, request
from werkzeug.exceptions import HTTPException

from camera_server import failures
from camera_server.web import auth, ptz_routes
from camera_server.web.live import record, take_snapshot
from camera_server.web.logins import keys_match
from camera_server.web.request_fields import on_off
from camera_server.web.selected_camera import selected

log = logging.getLogger(__name__)
MAX_RUNNING = 4             # controls of one socket under way at once; one more is a 429
MAX_ID_LENGTH = 64


def _text(message, name, required=False):
    value = message.get(name)
    if isinstance(value, str):
        value = value.strip() or None
    elif value is not None:
        abort(400, description=f"{name} must be text (a JSON string)")
    if value is None and required:
        abort(400, description=f"missing member {name!r}")
    return value


def _switch(message, name, current):
    """On, off or toggle (the default), as a JSON boolean or a word, as the routes take it."""
    state = on_off(name, message.get(name, "toggle"), "on, off or toggle", "toggle")
    return not current if state == "toggle" else state


def _number(message, name, default):
    """A number member as sent (the PTZ controller checks its type and range), ``default`` when absent."""
    value = message.get(name)
    return default if value is None else value


def _grayscale(message):
    camera = selected().camera
    return {"grayscale": camera.set_grayscale(_switch(message, "state", camera.grayscale))}


def _resolution(message):
    camera = selected().camera
    return {"half_resolution": camera.set_half_resolution(_switch(message, "state", camera.half_resolution))}


def _ptz_move(message):
    controller = ptz_routes.selected_controller()
    pan, tilt = ptz_routes.motion(message.get("direction"), message.get("pan"), message.get("tilt"))
    return ptz_routes.answer(controller.move, pan, tilt, _number(message, "zoom", 0.0), _number(message, "speed", 1.0))


def _ptz_zoom(message):
    controller = ptz_routes.selected_controller()
    amount = ptz_routes.zoom_amount(message.get("direction"), message.get("zoom"))
    return ptz_routes.answer(controller.move, 0.0, 0.0, amount, _number(message, "speed", 1.0))


def _ptz_privacy(message):
    controller = ptz_routes.selected_controller()
    if message.get("state") is None:
        abort(400, description="missing member 'state' (on or off)")
    return ptz_routes.answer(controller.set_privacy, on_off("state", message["state"], "'on' or 'off'"))


# action -> function(message) answering the route's body (a dict or a JSON response), run for the camera.
ACTIONS = {
    "grayscale": _grayscale,
    "resolution": _resolution,
    "snapshot": lambda message: take_snapshot(_text(message, "filename")),
    "record/start": lambda message: record("start", _text(message, "filename")),
    "record/stop": lambda message: record("stop"),
    "motion/start": lambda message: selected().watch.start_motion(),
    "motion/stop": lambda message: selected().watch.stop_motion(),
    "ptz/move": _ptz_move,
    "ptz/stop": lambda message: ptz_routes.answer(ptz_routes.selected_controller().stop),
    "ptz/zoom": _ptz_zoom,
    "ptz/home": lambda message: ptz_routes.answer(ptz_routes.selected_controller().home),
    "ptz/presets": lambda message: ptz_routes.answer(ptz_routes.selected_controller().presets),
    "ptz/preset/goto": lambda message: ptz_routes.answer(ptz_routes.selected_controller().goto_preset,
                                                         message.get("preset")),
    "ptz/preset/save": lambda message: ptz_routes.answer(ptz_routes.selected_controller().save_preset,
                                                         message.get("name")),
    "ptz/preset/delete": lambda message: ptz_routes.answer(ptz_routes.selected_controller().delete_preset,
                                                           message.get("preset")),
    "ptz/privacy": _ptz_privacy,
}


class SocketControls:
    """The control messages of one socket. Called in the handshake's request context (the connection's
    loop) for the checks; ``spawn`` runs the action beside it, ``send`` answers."""

    def __init__(self, spawn, send):
        self._app = current_app._get_current_object()
        self._spawn, self._send = spawn, send
        self._handshake_right = None        # the handshake's token or userkey, checked once when needed
        self._running = 0
        self._count_lock = threading.Lock()     # held for a count only: never across a switch of greenlets

    def __call__(self, message):
        message_id = message.get("id")
        if not (message_id is None or (isinstance(message_id, str) and len(message_id) <= MAX_ID_LENGTH)
                or (isinstance(message_id, int) and not isinstance(message_id, bool))):
            return self._error(None, 400, f"id must be a string of at most {MAX_ID_LENGTH} characters or a "
                                          "whole number")
        try:
            self._check_right(message.get("token"))
            action = message.get("action")
            if not isinstance(action, str) or action not in ACTIONS:
                abort(400, description=f"unknown action {str(action)[:40]!r}; the actions: {', '.join(ACTIONS)}")
            name = message.get("camera")
            if name is not None and not isinstance(name, str):
                abort(400, description="camera must be a camera's name (a string)")
            registry = current_app.extensions["cameras"]
            try:
                unit = registry.default if name is None else registry.get(name)
            except KeyError as error:       # UnknownCamera: its message lists the cameras
                abort(404, description=str(error))
            with self._count_lock:
                if self._running >= MAX_RUNNING:
                    abort(429, description=f"at most {MAX_RUNNING} controls of one socket at once: wait for "
                                           "their answers")
                self._running += 1
        except HTTPException as error:
            return self._error(message_id, error.code, error.description)
        self._spawn(lambda: self._run(ACTIONS[action], message, unit.name, message_id))

    def _check_right(self, token):
        """require_control's right, or a 403 (429 while the client is locked out for wrong userkeys)."""
        if isinstance(token, str) and keys_match(token, current_app.config["CONTROL_TOKEN"]):
            return
        if self._handshake_right is None:
            header_token = request.headers.get(auth.CONTROL_HEADER, "").strip()
            self._handshake_right = keys_match(header_token, current_app.config["CONTROL_TOKEN"]) or auth.has_userkey()
        if not self._handshake_right:
            abort(403, description='controls need the live page\'s control token ("token": ...) or a socket '
                                   f"opened with the userkey ({auth.USERKEY_HEADER} header); reload the page")

    def _run(self, action, message, camera_name, message_id):
        try:
            with self._app.app_context():
                g.camera_name = camera_name         # what selected() answers, as under /cam/<name>/
                body = action(message)
                if not isinstance(body, dict):      # a route's JSON response
                    body = body.get_json()
            self._send({"op": "result", "id": message_id, "status": 200, "body": body})
        except HTTPException as error:
            self._error(message_id, error.code, error.description)
        except failures.SURROUNDINGS as error:      # a full disk, a locked catalogue: as the routes answer
            failure = failures.explain(error)
            if failure is None:
                log.exception("socket control %s failed", message.get("action"))
                self._error(message_id, 500, "an error in the server (see its log)")
            else:
                self._error(message_id, failure.status, failure.message)
        except Exception:                           # the top level of this control: log it, answer 500
            log.exception("socket control %s failed", message.get("action"))
            self._error(message_id, 500, "an error in the server (see its log)")
        finally:
            with self._count_lock:
                self._running -= 1

    def _error(self, message_id, status, text):
        self._send({"op": "error", "id": message_id, "status": status, "message": text})
