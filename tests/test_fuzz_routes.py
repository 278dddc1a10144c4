"""Nothing a client sends is a 5xx: random and nasty requests at every route of app.url_map.

Every rule with every method it allows (and one it does not), random path parameters and query
strings, bodies of every kind (form fields, JSON of the wrong types or nested a thousand levels deep,
lone surrogates, random bytes, odd content types and charsets), with no credentials, the control
token, the userkey (header, form field or JSON member, Basic auth), and with require_login logged out
and logged in. The routes come from app.url_map, so a route added later is fuzzed too. Field values mix
the routes' real parameters and values with random ones, so the requests also get past the checks.

The apps are built once per module (hypothesis runs many examples per test): a still fake camera, the
light on the board emulator, allow_power_control off (so /shutdown and /reboot never run anything).
Under CI (env CI set) the examples are derandomized and no example database is kept, so a run can be
repeated; a failure prints the request and the server's traceback.
"""
import base64
import json
import os
import re
import traceback
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from flask import got_request_exception
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from camera_server.board.emulator import BoardEmulator
from camera_server.board.trinket import Led
from camera_server.capture.camera import Camera
from camera_server.settings import Settings
from camera_server.web.app import create_app, stop_services
from camera_server.web.logins import Logins
from conftest import FakeSource

ROOT = Path(__file__).resolve().parent.parent
USERKEY = "sesame"
STREAMING = ("multipart/x-mixed-replace", "text/event-stream", "video/mp4")

# Under CI the same examples each run (no example database); elsewhere new ones each run.
REPRODUCIBLE = {"derandomize": True, "database": None} if os.environ.get("CI") else {}
FUZZ = hypothesis_settings(deadline=None, max_examples=1000, **REPRODUCIBLE,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class StillSource(FakeSource):
    """The fake camera, showing the same picture each frame: no motion, no scene change, no events."""

    def read(self):
        self.reads += 1
        return np.full((self.height, self.width, 3), 90, np.uint8)


# The apps, built once for the module

def _build(folder, board, require_login):
    settings = Settings(media_dir=str(folder / "media"), log_file=str(folder / "flask.log"), userkey=USERKEY,
                        config_path=str(folder / "config.txt"),     # /cameras/add writes here, never the project's
                        idle_timeout=0.5, min_free_mb=0, require_login=require_login, motion_on_start=False,
                        record_events=False)
    led = Led(board.port, by_id_dir=str(folder)).start()
    camera = Camera(StillSource(interval=0.04), kind="fake", width=64, height=48, idle_timeout=0.5)
    application = create_app(settings, camera=camera, led=led)
    # Wrong keys are part of the fuzz; a lockout would turn every later request into the same 429.
    application.extensions["logins"] = Logins(allowed_failures=10 ** 9)
    exceptions = application.config["FUZZ_EXCEPTIONS"] = []
    got_request_exception.connect(lambda sender, exception, **extra: exceptions.append(
        "".join(traceback.format_exception(exception))), application, weak=False)
    client = application.test_client()
    assert client.post("/snapshot", headers={"X-User-Key": USERKEY}, data={"filename": "porch"}).status_code == 200
    return application


@pytest.fixture(scope="module")
def open_app(tmp_path_factory):
    board = BoardEmulator(heart_rate=72, report_interval=0.2).start()
    application = _build(tmp_path_factory.mktemp("open"), board, require_login=False)
    yield application
    stop_services(application)
    board.stop()


@pytest.fixture(scope="module")
def login_app(tmp_path_factory):
    board = BoardEmulator(heart_rate=72, report_interval=0.2).start()
    application = _build(tmp_path_factory.mktemp("login"), board, require_login=True)
    yield application
    stop_services(application)
    board.stop()


def routes(application):
    """(rule, method) for every rule of the app and every method it allows, HEAD and OPTIONS too."""
    return [(rule, method) for rule in application.url_map.iter_rules() for method in sorted(rule.methods)]


def weighted_routes(application):
    """routes(), GET and POST three times as often as HEAD and OPTIONS, and some the app has not:
    another method (405), a path of no rule (404)."""
    chosen = [(rule, method) for rule, method in routes(application) for _ in range(3 if method in ("GET", "POST") else 1)]
    unallowed = [(rule, "DELETE") for rule in list(application.url_map.iter_rules())[::4]]
    return chosen + unallowed + [(None, "GET"), (None, "POST")] * 3


def readme_routes():
    """The routes of README's Routes table, as url_map spells them (``<name>`` without a converter)."""
    section = (ROOT / "README.md").read_text().split("## Routes", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `/")]
    return {path for row in rows for path in re.findall(r"`(/[^`]*)`", row)}


def test_the_fuzz_reaches_every_route_of_the_readme(open_app, login_app):
    fuzzed = {re.sub(r"<\w+:", "<", rule.rule) for rule, _ in routes(open_app) + routes(login_app)}
    assert readme_routes() and readme_routes() <= fuzzed
    methods = {(rule.rule, method) for rule, method in routes(login_app)}
    assert {("/login", "GET"), ("/login", "POST"), ("/media/<path:name>", "GET"), ("/snapshot", "POST")} <= methods


# What the requests are made of

PLAUSIBLE = {
    "filename": ["porch", "porch.jpg", "fuzz", "fuzz.mp4", "clip.mp4", "../escape.jpg", "a/b.jpg", ".hidden.jpg",
                 "media.db", "x" * 300, "\ud800.jpg", "bad\x00name", "note.txt", " ", "snapshot_1.jpg"],
    "state": ["on", "off", "toggle", "TRUE", "no", "1", "0", "half", "Yes"],
    "action": ["start", "stop", "START", "pause"],
    "confirm": ["yes", "no", "true", "1"],
    "payload": ["snapshot", "video", "SNAPSHOT"],
    "delete_file": ["true", "false", "yes", "maybe", "1"],
    "steps": ["1", "-100", "101", "1.5", "+3", "1e3", "-0"],
    "value": ["0", "40", "255", "256", "1023", "-1", "nan", "1e308", "0.5"],
    "color": ["red", "#FF0000", "00ff00", "00FF0000", "warm white", "banana", "#12345", "#"],
    "threshold": ["40", "0", "0.01", "65025", "65026", "nan", "1e400"],
    "note": ["front door", "", "\u202e"],
    "next": ["/gallery", "//evil.example", "https://evil.example/", "/\x00", "javascript:alert(1)", "/\\evil"],
    "userkey": [USERKEY, "", "guess", "\ud800", " sesame "],
    "control_token": ["", "guess", "\udfff"],
}
CREDENTIAL_FIELDS = ("userkey", "control_token")
TYPED = {"state": [True, False], "steps": [3, -100, 100, 101, 2.5, True], "value": [0, 40, 255, 1023.5, 1e308, -1],
         "threshold": [40, 0.01, 65025, 1e-9], "confirm": [True, False], "delete_file": [True, False, None],
         "filename": [False, None, 7]}
QUERY = {
    "limit": ["1", "100", "1000", "10000", "0", "-1", "²", "1" * 30],
    "offset": ["0", "100", "10000000", "99999999999", "x"],
    "kind": ["picture", "video", "change", "motion", "movie", ""],
    "download": ["1", "0", "yes", "maybe"],
    "lines": ["1", "200", "10000", "10001", "x"],
    "seconds": ["1", "60", "61", "0", " 5 "],
    "next": PLAUSIBLE["next"],
    "connect": ["1", ""],
}
PATH_VALUES = ["porch.jpg", "fuzz.mp4", "media.db", ".hidden.jpg", "../secret.txt", "a/../porch.jpg", "style.css",
               "index.js", "x" * 300, "x" * 300 + ".jpg", "\u00e9" * 130 + ".jpg", "%2e%2e/x", "nothing.jpg",
               "snapshot_1.jpg"]
ODD_PATHS = ["/nowhere", "/media/", "/static/", "//", "/%ff", "/media/%ed%a0%80.jpg", "/media/%00.jpg", "/?"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-16", "application/json; charset=latin-1",
                 "application/vnd.api+json", "multipart/form-data", "multipart/form-data; boundary=",
                 "multipart/form-data; boundary=xyz", "text/plain", "application/x-www-form-urlencoded",
                 "application/x-www-form-urlencoded; charset=ebcdic", "application/octet-stream", "", "*/*",
                 "application/json; charset=nonsense", "multipart/mixed; boundary=\"a b\""]
HEADER_VALUES = {
    "Accept": ["text/html", "image/avif,image/webp,*/*", "*/*", "application/json", "text/html;q=0", ";;;"],
    "Host": ["localhost", "127.0.0.1:5000", "[::1]", "[", ":", "evil.example", "localhost:x", "\xff"],
    "Sec-Fetch-Site": ["cross-site", "same-origin", "none"],
    "Range": ["bytes=0-10", "bytes=-5", "bytes=10-0", "bytes=0-0,1-1,2-2", "bytes=x", "lines=1-2"],
    "If-None-Match": ["*", '"x"', "garbage"],
    "If-Modified-Since": ["Thu, 01 Jan 1970 00:00:00 GMT", "yesterday"],
    "Authorization": ["Basic", "Basic !!!", "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
                      "Bearer x", "Basic " + base64.b64encode(b"nocolon").decode()],
    "X-User-Key": ["", " ", "guess"],
    "X-Control-Token": ["", "guess"],
}

texts = st.text(max_size=40)                                    # lone surrogates included
header_texts = st.text(st.characters(max_codepoint=0xFF, blacklist_characters="\r\n"), max_size=40)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10 ** 300),
                         st.floats(), texts)
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)), max_leaves=12)


def field_names(plausible):
    return st.one_of(st.sampled_from(sorted(plausible)), texts)


def field_values(name, plausible):
    choices = plausible.get(name)
    return st.one_of(st.sampled_from(choices), texts) if choices else texts


def plausible_parameters(plausible, typed=None):
    """Every parameter the routes know (but the credentials, which come with the mode), each with one of
    its plausible values (or ``typed`` JSON values): the requests that get past the checks."""
    return st.fixed_dictionaries({name: st.sampled_from(choices + (typed or {}).get(name, []))
                                  for name, choices in plausible.items() if name not in CREDENTIAL_FIELDS})


@st.composite
def some_parameters(draw, plausible, values):
    """A few parameters, the routes' own names or random ones, with values from ``values(name)``."""
    names = draw(st.lists(field_names(plausible), max_size=5, unique=True))
    return {name: draw(values(name)) for name in names}


def parameters(plausible):
    """Text parameters: all the plausible ones, or a few with plausible or random text."""
    return st.one_of(plausible_parameters(plausible),
                     some_parameters(plausible, lambda name: field_values(name, plausible)))


def json_objects():
    """A JSON object: all the plausible parameters, or a few with plausible text or any JSON value."""
    return st.one_of(plausible_parameters(PLAUSIBLE), some_parameters(
        PLAUSIBLE, lambda name: st.one_of(field_values(name, PLAUSIBLE), json_values)))


def deeply_nested(depth, opener, inner=None):
    closer = {"[": "]", '{"a":': "}"}[opener]
    nested = opener * depth + ("1" if opener != "[" else "") + closer * depth
    return nested if inner is None else json.dumps({inner: 0}).replace("0", nested)


def encoded(parameters_):
    return urlencode(parameters_, encoding="utf-8", errors="surrogatepass")


def multipart(parameters_, boundary="fuzzboundary"):
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in parameters_.items()]
    return ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogatepass")


# Half the bodies carry every parameter with a plausible value, so the routes get past their checks.
plausible_bodies = st.one_of(
    plausible_parameters(PLAUSIBLE).map(lambda fields: ("application/x-www-form-urlencoded", encoded(fields))),
    plausible_parameters(PLAUSIBLE, TYPED).map(lambda value: ("application/json", json.dumps(value))),
    plausible_parameters(PLAUSIBLE).map(lambda fields: ("multipart/form-data; boundary=fuzzboundary", multipart(fields))),
)
other_bodies = st.one_of(
    st.just((None, None)),
    parameters(PLAUSIBLE).map(lambda fields: ("application/x-www-form-urlencoded", encoded(fields))),
    parameters(PLAUSIBLE).map(lambda fields: ("multipart/form-data; boundary=fuzzboundary", multipart(fields))),
    json_objects().map(lambda value: ("application/json", json.dumps(value))),
    json_values.map(lambda value: ("application/json", json.dumps(value))),
    st.builds(deeply_nested, st.integers(900, 3000), st.sampled_from(["[", '{"a":']),
              st.one_of(st.none(), st.sampled_from(sorted(PLAUSIBLE)))).map(lambda body: ("application/json", body)),
    st.tuples(st.sampled_from(CONTENT_TYPES), st.binary(max_size=300)),
    st.tuples(st.sampled_from(CONTENT_TYPES), json_objects().map(json.dumps)),
    st.tuples(st.sampled_from(CONTENT_TYPES), parameters(PLAUSIBLE).map(encoded)),
    json_objects().map(lambda value: ("application/json; charset=utf-16", json.dumps(value).encode("utf-16"))),
    st.tuples(header_texts, st.binary(max_size=100)),
)
bodies = st.one_of(plausible_bodies, other_bodies)


def path_for(rule, values):
    """The rule's URL with ``values`` for its parameters, percent-encoded (lone surrogates as their bytes)."""
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda match: quote(values[match.group(1)], safe="/", errors="surrogatepass"),
                  rule.rule)


@st.composite
def requests(draw, application):
    """One request: method, path, query string, headers, content type, body."""
    rule, method = draw(st.sampled_from(weighted_routes(application)))
    if rule is None:
        path = draw(st.one_of(st.sampled_from(ODD_PATHS), texts.map(lambda text: "/" + quote(text, errors="surrogatepass"))))
    else:
        path = path_for(rule, {name: draw(st.one_of(st.sampled_from(PATH_VALUES), texts.filter(bool)))
                               for name in rule.arguments})
    query = encoded(draw(parameters(QUERY)))
    headers = {name: draw(st.one_of(st.sampled_from(HEADER_VALUES[name]), header_texts))
               for name in draw(st.lists(st.sampled_from(sorted(HEADER_VALUES)), max_size=2, unique=True))}
    content_type, body = draw(bodies)
    return dict(method=method, path=path, query_string=query, headers=headers, content_type=content_type, data=body)


CREDENTIALS = ["none", "control token", "userkey header", "userkey field", "basic auth"]


def with_credentials(application, request, mode):
    """The request with the credentials of ``mode`` added (the field goes into a form or JSON body)."""
    headers = dict(request["headers"])
    if mode == "control token":
        headers["X-Control-Token"] = application.config["CONTROL_TOKEN"]
    elif mode == "userkey header":
        headers["X-User-Key"] = USERKEY
    elif mode == "basic auth":
        headers["Authorization"] = "Basic " + base64.b64encode(f"fuzz:{USERKEY}".encode()).decode()
    elif mode != "userkey field" or not isinstance(request["data"], str):
        pass
    elif request["content_type"] == "application/x-www-form-urlencoded":
        request = dict(request, data=request["data"] + "&userkey=" + USERKEY)
    elif request["content_type"] == "application/json" and request["data"][:1] == "{":
        rest = request["data"][1:]
        request = dict(request, data='{"userkey": "%s"%s%s' % (USERKEY, "" if rest.lstrip()[:1] == "}" else ", ", rest))
    return dict(request, headers=headers)


def send(application, client, request, mode):
    """Send the request; fail with the request and the server's traceback on a 5xx."""
    shown = {**request, "data": request["data"][:500] if request["data"] else request["data"]}
    exceptions = application.config["FUZZ_EXCEPTIONS"]
    exceptions.clear()
    response = client.open(request["path"], method=request["method"], query_string=request["query_string"],
                           headers=request["headers"], content_type=request["content_type"],
                           data=request["data"], buffered=False)
    try:
        if response.mimetype in STREAMING:
            next(iter(response.response), b"")      # one part of a stream, then let it go
        else:
            response.get_data()
    finally:
        response.close()
    assert response.status_code < 500, (f"{response.status_code} for {mode}: {shown!r}\n"
                                        f"{response.get_data(as_text=True)[:500]}\n{''.join(exceptions)}")
    assert not exceptions, f"an exception for {mode}: {shown!r}\n{''.join(exceptions)}"


# The fuzz

@FUZZ
@given(data=st.data(), mode=st.sampled_from(CREDENTIALS))
def test_no_request_is_a_5xx(open_app, data, mode):
    request = data.draw(requests(open_app), label="request")
    send(open_app, open_app.test_client(), with_credentials(open_app, request, mode), mode)


@hypothesis_settings(FUZZ, max_examples=500)
@given(data=st.data(), mode=st.sampled_from(CREDENTIALS), logged_in=st.booleans())
def test_no_request_is_a_5xx_with_require_login(login_app, data, mode, logged_in):
    request = data.draw(requests(login_app), label="request")
    client = login_app.test_client()
    if logged_in:
        assert client.post("/login", data={"userkey": USERKEY}).status_code == 303
    send(login_app, client, with_credentials(login_app, request, mode),
         f"{mode}, {'logged in' if logged_in else 'logged out'}")


NASTY_BODIES = [
    ("application/json", deeply_nested(1000, "[")),
    ("application/json", deeply_nested(1000, '{"a":', inner="state")),
    ("application/json", json.dumps({name: "\ud800" for name in PLAUSIBLE})),
    ("application/json", json.dumps({name: False for name in PLAUSIBLE})),
    ("application/json", json.dumps({name: [] for name in PLAUSIBLE})),
    ("application/json", b"\xff\xfe{"),
    ("multipart/form-data; boundary=", b"--\r\n\r\n"),
    ("application/x-www-form-urlencoded", encoded({name: "\ud800" for name in PLAUSIBLE})),
    ("application/x-www-form-urlencoded", encoded({name: choices[0] for name, choices in PLAUSIBLE.items()})),
    ("application/json", json.dumps({**{name: choices[0] for name, choices in PLAUSIBLE.items()}, "state": True,
                                     "steps": -3, "value": 40, "threshold": 40.5, "confirm": True,
                                     "delete_file": False, "filename": "typed", "action": "stop"})),
]


@pytest.mark.parametrize("require_login", [False, True])
def test_every_route_and_method_with_the_nastiest_bodies(open_app, login_app, require_login):
    """Every route at least once with each, whatever the random examples above happened to pick."""
    application = login_app if require_login else open_app
    for rule, method in routes(application):
        path = path_for(rule, {name: "porch.jpg" for name in rule.arguments})
        for content_type, body in NASTY_BODIES:
            for mode in ("none", "control token", "userkey header"):
                request = dict(method=method, path=path, query_string="", headers={},
                               content_type=content_type, data=body)
                send(application, application.test_client(), with_credentials(application, request, mode), mode)
