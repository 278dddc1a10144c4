"""Who may do what: the Host check, the cross-site check, the optional login, the control token, the userkey.

Every request must name this server in its Host (an IP address, localhost, this machine's name, or
``allowed_hosts``), so a web site that rebinds its own name to this address gets a 400 (DNS
rebinding). A POST a browser marks ``Sec-Fetch-Site: cross-site`` is refused. With ``require_login``
every route but /login and /static needs a session (a signed cookie whose key is new at each start,
so a restart logs everybody out) or the userkey, which players such as VLC send as the password of
HTTP Basic auth.

Controls (grayscale, focus, snapshot, light...) are POST and need the control token that the live
page carries (so another web site cannot make a visitor's browser press them) or the userkey (for
scripts). Privileged routes (/logs, /shutdown, /reboot) need the userkey. Both come in a header, a
form field or a JSON body's member, never in the URL's query string (which lands in access logs); both
are compared in constant time and never logged. Wrong userkeys lock their client out for a while.
"""
import functools
import ipaddress
import logging
import secrets
import socket
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, session, url_for

from camera_server.settings import ConfigError
from camera_server.web.logins import LockedOut, Logins, keys_match
from camera_server.web.request_fields import field

log = logging.getLogger(__name__)
CONTROL_HEADER = "X-Control-Token"
USERKEY_HEADER = "X-User-Key"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": "frame-ancestors 'self'",
    "Referrer-Policy": "same-origin",
}
PUBLIC_ENDPOINTS = ("static", "auth.login_page", "auth.log_in")
# The streams players open, which get HTTP Basic auth's challenge (the MJPEG and the live H.264).
PLAYER_ENDPOINTS = ("live.video_feed", "cam_live.video_feed", "live.video_feed_mp4", "cam_live.video_feed_mp4")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def init_app(app, settings):
    """The Host and cross-site checks, the security headers and, with require_login, the login."""
    if settings.require_login and not settings.userkey:
        raise ConfigError("require_login = true needs a userkey in the [KEYS] section of config.txt "
                          "(a long random string): it is the key people log in with")
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),     # new at each start: a restart logs everybody out
        SESSION_COOKIE_NAME="camera_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        ALLOWED_HOSTS=_allowed_hosts(settings.allowed_hosts),
        REQUIRE_LOGIN=settings.require_login,
    )
    app.extensions["logins"] = Logins()
    app.before_request(_check_host)
    app.before_request(_refuse_cross_site_changes)
    app.after_request(_add_security_headers)
    app.context_processor(lambda: {"logged_in": current_app.config["REQUIRE_LOGIN"] and _logged_in()})
    if settings.require_login:
        app.before_request(_require_login)
        app.register_blueprint(_create_login_blueprint())


def _allowed_hosts(setting):
    hostname = socket.gethostname().lower().rstrip(".")
    short = hostname.split(".")[0]
    names = {"localhost", hostname, hostname + ".local", short, short + ".local"}
    return frozenset(names | {name.strip().lower().rstrip(".") for name in setting.split(",") if name.strip()})


def _host_name(host):
    """The name in a Host header, without port, brackets or a final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip_address(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _check_host():
    if not request.headers.get("Host"):      # HTTP/1.0 without one: no browser, no rebinding
        return
    name = _host_name(request.headers["Host"])
    allowed = current_app.config["ALLOWED_HOSTS"]
    if "*" not in allowed and name not in allowed and not _is_ip_address(name):
        abort(400, description=f"this server does not answer to the name {name[:100]!r}: add it to "
                               "allowed_hosts in the [SETTINGS] section of config.txt (the check stops "
                               "other web sites from reaching it through DNS rebinding)")


def _refuse_cross_site_changes():
    if request.method not in SAFE_METHODS and request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403, description="changes are refused when another web site sends them (Sec-Fetch-Site: cross-site)")


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_of(scheme, netloc):
    """(scheme, host, port) of a URL's parts, ws and wss as http and https; ValueError for a bad port."""
    parts = urlsplit(f"//{netloc}")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return scheme, (parts.hostname or "").rstrip("."), parts.port or DEFAULT_PORTS.get(scheme)


def refuse_foreign_origin():
    """403 for a WebSocket handshake from a page of another site (cross-site WebSocket hijacking): the
    browser sends the visitor's cookie with it, and WebSockets are not bound by the same-origin policy,
    so the Origin must be this server as the request names it (scheme, host and port). A request
    without an Origin comes from a program, not a page; it needs what the stream needs."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    parts = urlsplit(origin.strip())
    try:
        same = bool(parts.scheme) and _origin_of(parts.scheme.lower(), parts.netloc) == _origin_of(
            request.scheme, request.headers.get("Host", ""))
    except ValueError:          # a port that is not a number
        same = False
    if not same:
        log.warning("websocket refused: Origin %r is not this server (%s)", origin[:100], request.headers.get("Host"))
        abort(403, description="a WebSocket may only be opened by this server's own pages (the Origin "
                               "must be this server's address)")


def _add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _given(header, name):
    """A key from its header or a field; "" when neither holds one (an empty key is not given, not wrong)."""
    return request.headers.get(header, "").strip() or field(name, required=False) or ""


def _given_userkey():
    """The userkey from its header, a field, or HTTP Basic auth's password (VLC, Home Assistant)."""
    basic = request.authorization if request.authorization and request.authorization.type == "basic" else None
    return _given(USERKEY_HEADER, "userkey") or (basic.password if basic else "") or ""


def _refuse(status, message, headers=None, **members):
    """Stop the request with the usual JSON error, plus headers and members abort() cannot carry."""
    response = jsonify(error=message, status=status, **members)
    response.status_code = status
    response.headers.update(headers or {})
    abort(response)


def _is_userkey(given):
    """Whether ``given`` is the userkey; a wrong one counts against its client (429 while it waits)."""
    expected = current_app.config.get("USERKEY", "")
    if not (given and expected):
        return False
    try:
        right = current_app.extensions["logins"].check(request.remote_addr, given, expected)
    except LockedOut as error:
        _refuse(429, str(error), headers={"Retry-After": str(error.retry_after)})
    if not right:
        log.warning("wrong userkey from %s for %s", request.remote_addr, request.path)
    return right


def has_userkey():
    return _is_userkey(_given_userkey())


def require_userkey(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_app.config.get("USERKEY"):
            abort(403, description="this route is disabled: set userkey in the [KEYS] section of config.txt")
        if not _given_userkey():
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
        if not (keys_match(token, current_app.config["CONTROL_TOKEN"]) or has_userkey()):
            abort(403, description="controls need the live page's control token "
                                   f"({CONTROL_HEADER} header) or the userkey; reload the page")
        return view(*args, **kwargs)
    return wrapper


def _logged_in():
    session_id = session.get("login")
    return bool(session_id) and current_app.extensions["logins"].has_session(session_id)


def _wants_html():
    return any(value == "text/html" for value, quality in request.accept_mimetypes if quality > 0)


def _from_a_page():
    """Whether a browser page asks: its Accept names HTML or an image type, or it is index.js's <img>
    reconnecting (``connect=``). Players (VLC, Home Assistant) send ``*/*`` or no Accept."""
    accepted = [value for value, quality in request.accept_mimetypes if quality > 0]
    return "connect" in request.args or any(value == "text/html" or value.startswith("image/") for value in accepted)


def _local_path(target):
    """``target`` when it is a path on this server, else /: a login never sends anyone elsewhere."""
    if (not target or not target.startswith("/") or "\\" in target
            or any(ord(character) < 32 or ord(character) == 127 for character in target)):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc or target.startswith("//") else target


def _require_login():
    if request.endpoint in PUBLIC_ENDPOINTS or _logged_in() or has_userkey():
        return None
    login = url_for("auth.login_page", next=_local_path(request.full_path.rstrip("?")))
    if request.method in ("GET", "HEAD") and _wants_html():
        return redirect(login)
    # Stream players that cannot log in through a form (VLC, Home Assistant) answer this challenge; a
    # page's <img> does not get it, or the browser would open its own login dialog over the page.
    challenge = ({"WWW-Authenticate": 'Basic realm="camera"'}
                 if request.endpoint in PLAYER_ENDPOINTS and not _from_a_page() else None)
    _refuse(401, f"log in first at /login, or send the userkey in an {USERKEY_HEADER} header "
                 "(or as the password of HTTP Basic auth)", headers=challenge, login=login)


def _login_form(target, message="", status=200, headers=None):
    return render_template("login.html", next=target, message=message), status, headers or {}


def _create_login_blueprint():
    blueprint = Blueprint("auth", __name__)

    @blueprint.get("/login")
    def login_page():
        target = _local_path(request.args.get("next"))
        return redirect(target) if _logged_in() else _login_form(target)

    @blueprint.post("/login")
    def log_in():
        target = _local_path(field("next", required=False))
        given = field("userkey", required=False)
        if not given:           # not a wrong key: nothing to count
            return _login_form(target, "Enter the key.", 400)
        try:
            right = current_app.extensions["logins"].check(request.remote_addr, given, current_app.config["USERKEY"])
        except LockedOut as error:
            return _login_form(target, f"{str(error).capitalize()}.", 429, {"Retry-After": str(error.retry_after)})
        if not right:
            log.warning("wrong userkey at /login from %s", request.remote_addr)
            return _login_form(target, "Wrong key.", 401)
        session.clear()         # a new id at each login: a session set before it is worth nothing
        session["login"] = current_app.extensions["logins"].start_session()
        log.info("login from %s", request.remote_addr)
        return redirect(target, 303)

    @blueprint.post("/logout")
    @require_control
    def log_out():
        current_app.extensions["logins"].end_session(session.get("login"))
        session.clear()
        if _wants_html():
            return redirect(url_for("auth.login_page"), 303)
        return jsonify(logged_out=True)

    return blueprint
