"""request_fields: one reader per kind of parameter, and nothing a client sends is a 500."""
import logging
from pathlib import Path

import pytest
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from camera_server.web.request_fields import FieldRequest, field, flag, number, query_flag, switch

DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000


@pytest.fixture
def bare_app():
    """A small app with the request class and the JSON errors, for the readers on their own."""
    application = Flask(__name__)
    application.request_class = FieldRequest
    application.register_error_handler(HTTPException, lambda error: (jsonify(error=error.description), error.code))
    return application


def read(bare_app, reader, **request):
    """What ``reader`` answers inside a request built from ``request``, or (status, error message)."""
    with bare_app.test_request_context("/", method="POST", **request):
        try:
            return reader()
        except HTTPException as error:
            return error.code, error.description


# A body nested too deeply: a 400 before anything else, and no traceback in the log

@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT])
def test_a_deep_json_body_is_a_400_for_the_reader(bare_app, body):
    status, message = read(bare_app, lambda: field("state"), data=body, content_type="application/json")
    assert status == 400 and "nested too deeply" in message


@pytest.mark.parametrize("method, path, headers", [
    ("post", "/grayscale", {}),                                 # no token: the body is read by the check
    ("post", "/grayscale", {"X-User-Key": "sesame"}),
    ("post", "/database/remove", {"X-User-Key": "sesame"}),
    ("post", "/light", {"X-User-Key": "sesame"}),
    ("post", "/manual_video", {"X-User-Key": "sesame"}),
    ("post", "/monitor/start", {"X-User-Key": "sesame"}),
    ("get", "/logs", {}),
])
def test_a_deep_json_body_is_a_400_on_every_route_without_a_traceback(client, caplog, method, path, headers):
    with caplog.at_level(logging.DEBUG):
        response = getattr(client, method)(path, data=DEEP, content_type="application/json", headers=headers)
    assert response.status_code == 400 and "nested too deeply" in response.get_json()["error"]
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]


class TestDeepJsonBeforeTheLogin:
    @pytest.fixture
    def settings(self, settings):
        return settings.replace(require_login=True)

    @pytest.mark.parametrize("method, path", [("get", "/status"), ("get", "/"), ("post", "/login"),
                                              ("post", "/snapshot"), ("get", "/nowhere")])
    def test_is_a_400_too(self, client, caplog, method, path):
        with caplog.at_level(logging.DEBUG):
            response = getattr(client, method)(path, data=DEEP, content_type="application/json")
        assert response.status_code == 400 and "nested too deeply" in response.get_json()["error"]
        assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]


@pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b"\xff\xfe", b'{"a": 1} x', b"[" * 10])
def test_a_body_that_says_json_and_is_not_is_a_400_that_says_so(client, control, body):
    response = client.post("/grayscale", data=body, content_type="application/json", headers=control)
    assert response.status_code == 400 and "not valid JSON" in response.get_json()["error"]


def test_an_empty_json_body_is_no_parameters(client, control):
    response = client.post("/grayscale", data=b"", content_type="application/json", headers=control)
    assert response.get_json() == {"grayscale": True}       # absent state: toggle


@pytest.mark.parametrize("body", ["[]", "[1]", '"text"', "3", "true", "null"])
def test_a_json_body_that_is_not_an_object_is_a_400(bare_app, body):
    status, message = read(bare_app, lambda: field("state"), data=body, content_type="application/json")
    assert status == 400 and "form fields or a JSON object" in message


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/octet-stream", None])
def test_a_body_that_is_neither_form_nor_json_is_a_400_not_taken_as_no_parameters(client, control, content_type):
    """filename=a in text/plain (or multipart without its boundary) used to save a snapshot under a
    generated name, dropping the one asked for."""
    response = client.post("/snapshot", data=b"filename=a", content_type=content_type, headers=control)
    assert response.status_code == 400 and "form fields or a JSON object" in response.get_json()["error"]
    assert client.get("/get_database").get_json() == []


def test_an_empty_body_of_any_type_is_no_parameters(client, control):
    response = client.post("/grayscale", data=b"", content_type="text/plain", headers=control)
    assert response.get_json() == {"grayscale": True}


# Text

def test_a_lone_surrogate_is_a_400_at_the_edge(client, control):
    response = client.post("/database/remove", json={"filename": "\ud800.jpg"}, headers=control)
    assert response.status_code == 400
    assert "filename is not valid text" in response.get_json()["error"]
    response = client.post("/snapshot", json={"filename": "a\udfffb"}, headers=control)
    assert response.status_code == 400 and "lone surrogate" in response.get_json()["error"]


@pytest.mark.parametrize("value, shown", [(False, "false"), (True, "true"), (0, "a JSON number"),
                                          (1.5, "a JSON number"), ([], "a JSON list"), (["a.jpg"], "a JSON list"),
                                          ({}, "a JSON object"), ({"name": "a"}, "a JSON object")])
def test_text_takes_json_strings_only(client, control, settings, value, shown):
    response = client.post("/snapshot", json={"filename": value}, headers=control)
    assert response.status_code == 400
    assert response.get_json()["error"] == f"filename must be text (a JSON string), not {shown}"
    assert not list(Path(settings.media_dir).glob("*.jpg"))         # no False.jpg, no 0.jpg


def test_null_is_absent_when_optional_and_a_400_when_required(client, control):
    assert client.post("/snapshot", json={"filename": None}, headers=control).status_code == 200
    response = client.post("/database/remove", json={"filename": None}, headers=control)
    assert response.status_code == 400
    assert response.get_json()["error"] == "filename must be text (a JSON string), not null"
    response = client.post("/database/remove", json={}, headers=control)
    assert response.get_json()["error"] == "missing parameter 'filename'"


def test_manual_video_reads_its_payload_fields_as_text(client, control, settings):
    response = client.post("/manual_video", json={"payload": "snapshot", "filename": False}, headers=control)
    assert response.status_code == 400 and "filename must be text" in response.get_json()["error"]
    response = client.post("/manual_video", json={"payload": "snapshot", "filename": "porch"}, headers=control)
    assert response.status_code == 200 and response.get_json()["file"] == "porch.jpg"
    response = client.post("/manual_video", data={"payload": "snapshot", "filename": "yard"}, headers=control)
    assert response.status_code == 200 and response.get_json()["file"] == "yard.jpg"
    assert sorted(path.name for path in Path(settings.media_dir).glob("*.jpg")) == ["porch.jpg", "yard.jpg"]


# On/off: one parser, the same words everywhere

ON = ["on", "true", "yes", "1", "ON", "True", "Yes", " on "]
OFF = ["off", "false", "no", "0", "OFF", "False", "NO"]


@pytest.mark.parametrize("word, state", [(word, True) for word in ON] + [(word, False) for word in OFF]
                         + [(True, True), (False, False)])
def test_every_on_off_reader_takes_the_same_words_and_json_booleans(bare_app, word, state):
    body = {"json": {"x": word}}
    assert read(bare_app, lambda: switch("x"), **body) is state
    assert read(bare_app, lambda: switch("x", current=state), **body) is state
    assert read(bare_app, lambda: switch("x", current=not state), **body) is state
    assert read(bare_app, lambda: flag("x"), **body) is state
    if isinstance(word, str):
        assert read(bare_app, lambda: switch("x"), data={"x": word}) is state
        assert read(bare_app, lambda: query_flag("x"), query_string={"x": word}) is state


def test_toggle_only_where_the_route_toggles(bare_app):
    assert read(bare_app, lambda: switch("x", current=True), json={"x": "Toggle"}) is False
    assert read(bare_app, lambda: switch("x", current=False), data={}) is True      # absent: toggle
    status, message = read(bare_app, lambda: switch("x"), json={"x": "toggle"})
    assert status == 400 and "x must be 'on' or 'off'" in message
    assert read(bare_app, lambda: switch("x"), json={})[1] == "missing parameter 'x'"
    status, message = read(bare_app, lambda: flag("x"), json={"x": "toggle"})
    assert status == 400 and "x must be yes or no" in message


@pytest.mark.parametrize("value, words", [("maybe", "'maybe'"), ("half", "'half'"), (1, "a JSON number"),
                                          (None, "null"), (["on"], "a JSON list"), ({}, "a JSON object")])
def test_anything_else_is_a_400_that_names_the_parameter(bare_app, value, words):
    status, message = read(bare_app, lambda: switch("state"), json={"state": value})
    assert status == 400 and message.startswith("state must be 'on' or 'off'") and words in message


def test_the_routes_use_the_one_parser(client, control):
    assert client.post("/grayscale", json={"state": True}, headers=control).get_json() == {"grayscale": True}
    assert client.post("/grayscale", data={"state": "No"}, headers=control).get_json() == {"grayscale": False}
    assert client.post("/resolution", json={"state": "yes"}, headers=control).get_json() == {"half_resolution": True}
    response = client.post("/database/remove", json={"filename": "a.jpg", "delete_file": "maybe"}, headers=control)
    assert response.status_code == 400 and "delete_file must be yes or no" in response.get_json()["error"]
    response = client.post("/database/new", json={"confirm": True}, headers=control)
    assert response.get_json() == {"entries": 0, "events": 0}
    response = client.post("/database/new", json={"confirm": "no"}, headers=control)
    assert response.status_code == 400 and "confirm=yes" in response.get_json()["error"]
    name = client.post("/snapshot", headers=control).get_json()["file"]
    assert "attachment" in client.get(f"/media/{name}?download=Yes").headers["Content-Disposition"]
    assert "attachment" not in client.get(f"/media/{name}?download=0").headers["Content-Disposition"]
    response = client.get(f"/media/{name}?download=maybe")
    assert response.status_code == 400 and "download must be yes or no" in response.get_json()["error"]


# Numbers

@pytest.mark.parametrize("value, answer", [(5, 5), ("5", 5), (" -7 ", -7), ("+3", 3), (4.0, 4), (-100, -100)])
def test_whole_numbers_come_as_json_numbers_or_text(bare_app, value, answer):
    assert read(bare_app, lambda: number("steps", int, -100, 100), json={"steps": value}) == answer


@pytest.mark.parametrize("value, answer", [(2.5, 2.5), ("2.5", 2.5), (".5", 0.5), ("1e3", 1000.0), (7, 7.0)])
def test_numbers_come_as_json_numbers_or_text(bare_app, value, answer):
    assert read(bare_app, lambda: number("value", float, 0, 1023), json={"value": value}) == answer


@pytest.mark.parametrize("value", [True, False, [], {}, "many", "1_0", "٣", "²", "nan", "inf", "0x10", 4.5,
                                   101, -101, "1" * 40, 10 ** 400, float("nan"), float("inf")])
def test_anything_else_is_not_a_number(bare_app, value):
    status, message = read(bare_app, lambda: number("steps", int, -100, 100), json={"steps": value})
    assert status == 400 and message.startswith("steps must be a number from -100 to 100 (a whole one), not")
    assert len(message) < 200


def test_a_huge_integer_is_not_a_float_either(bare_app):
    status, message = read(bare_app, lambda: number("threshold", required=False), json={"threshold": 10 ** 400})
    assert status == 400 and message.startswith("threshold must be a number")
    assert read(bare_app, lambda: number("threshold", required=False), json={}) is None


def test_json_numbers_reach_the_routes(client, control):
    response = client.post("/step_focus", json={"steps": 3}, headers=control)
    assert response.status_code == 409            # the demo camera has no focus: the number was fine
    response = client.post("/step_focus", json={"steps": True}, headers=control)
    assert response.status_code == 400 and response.get_json()["error"].endswith("not true")
    response = client.post("/monitor/start", json={"threshold": 40}, headers=control)
    assert response.status_code in (200, 503)
    response = client.post("/monitor/start", json={"threshold": "0"}, headers=control)
    assert response.status_code == 400 and "at least 0.01" in response.get_json()["error"]
