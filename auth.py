"""Who may change things: the page's control token for controls, the userkey for privileged routes.

Controls (grayscale, focus, snapshot, light...) are POST and need the control token that the live
page carries (so another web site cannot make a visitor's browser press them) or the userkey (for
scripts). Privileged routes (/logs, /shutdown, /reboot) need the userkey. Both come in a header, a
form field or a JSON body's member, never in the URL's query string (which lands in access logs); both
are compared in constant time and never logged.
"""
import functools
import hmac

from flask import abort, current_app, request

from request_fields import field

CONTROL_HEADER = "X-Control-Token"
USERKEY_HEADER = "X-User-Key"


def _matches(given, expected):
    return bool(expected) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _given(header, name):
    return request.headers.get(header) or field(name, required=False) or ""


def has_userkey():
    return _matches(_given(USERKEY_HEADER, "userkey"), current_app.config.get("USERKEY", ""))


def require_userkey(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_app.config.get("USERKEY"):
            abort(403, description="this route is disabled: set userkey in the [KEYS] section of config.txt")
        if not _given(USERKEY_HEADER, "userkey"):
            abort(401, description=f"this route needs the userkey: an {USERKEY_HEADER} header, or a "
                                   "userkey form field or JSON member (never in the URL)")
        if not has_userkey():
            abort(403, description="wrong userkey")
        return view(*args, **kwargs)
    return wrapper


def require_control(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = _given(CONTROL_HEADER, "control_token")
        if not (_matches(token, current_app.config["CONTROL_TOKEN"]) or has_userkey()):
            abort(403, description="controls need the live page's control token "
                                   f"({CONTROL_HEADER} header) or the userkey; reload the page")
        return view(*args, **kwargs)
    return wrapper
