"""Server routes, for the whole server rather than one camera (a blueprint): /metrics, the log tail
and the power controls."""
import logging
import subprocess

from flask import Blueprint, Response, abort, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from camera_server import logging_setup
from camera_server.blocking import call_blocking
from camera_server.web import auth
from camera_server.web.request_fields import query_number

log = logging.getLogger(__name__)
POWER_COMMANDS = {"shutdown": ["systemctl", "poweroff"], "reboot": ["systemctl", "reboot"]}


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

    return blueprint


def _power(action):
    if not current_app.config["SETTINGS"].allow_power_control:
        abort(403, description=f"{action} is disabled: set allow_power_control = true in config.txt")
    log.warning("%s requested from %s", action, request.remote_addr)
    try:
        subprocess.Popen(POWER_COMMANDS[action])
    except OSError as error:
        abort(503, description=f"could not {action}: {error}")
    return jsonify(action=action, accepted=True), 202
