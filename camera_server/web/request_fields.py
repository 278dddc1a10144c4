"""Reading request parameters: a POST's form fields or JSON object members, and the query's numbers and flags.

Each kind of parameter has one reader, the same on every route: text (``field``) is a form field or a
JSON string; a number (``number``) may also be a JSON number; on/off (``switch``, ``flag``) may also
be a JSON boolean, and takes the same words everywhere. Anything else is a 400 that names the
parameter and what it must be. ``FieldRequest`` (the app's request class) makes a body that says it
is JSON but is not (bad syntax, nested too deeply) a 400 wherever it is read.
"""
import math
import re

from flask import Request, abort, request
from werkzeug.exceptions import BadRequest

ON_WORDS = ("on", "true", "yes", "1")
OFF_WORDS = ("off", "false", "no", "0")
OTHER_WORDS = "on/off, true/false, yes/no, 1/0 in any case, or a JSON boolean"
TEXT = "text (a JSON string)"
_WHOLE = re.compile(r"[+-]?[0-9]{1,15}")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,15}(\.[0-9]{0,15})?|\.[0-9]{1,15})([eE][+-]?[0-9]{1,3})?")


class FieldRequest(Request):
    """Flask's request, except that a body that says it is JSON and is not is a 400, also for
    ``get_json(silent=True)``, and one nested too deeply too (the parser's RecursionError was a 500).
    An empty body is no JSON at all."""

    def get_json(self, force=False, silent=False, cache=True):
        if silent and not ((force or self.is_json) and self.get_data(cache=True)):
            return None
        try:
            return super().get_json(force=force, silent=False, cache=cache)
        except RecursionError:
            raise BadRequest("the JSON body is nested too deeply: send one flat object of parameters") from None

    def on_json_loading_failed(self, error):
        if error is None:
            return super().on_json_loading_failed(error)
        raise BadRequest(f"the body is not valid JSON ({error}): send a JSON object or form fields")


def field(name, required=True):
    """The parameter as stripped text; None when absent or empty, a 400 when it was required."""
    value = _sent(name, required, TEXT)
    if value is not None and not isinstance(value, str):
        _wrong_type(name, TEXT, value)
    return value


def number(name, kind=float, low=None, high=None, required=True):
    """A number (``kind`` int: a whole one) from low to high, sent as text or a JSON number; a 400 otherwise."""
    wanted = ("a number" + (f" from {low} to {high}" if low is not None else "")
              + (" (a whole one)" if kind is int else ""))
    value = _sent(name, required, wanted)
    if value is None:
        return None
    if isinstance(value, str):
        value = _parsed(name, value, kind, wanted)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        _wrong_type(name, wanted, value)
    if not _fits(value, kind, low, high):
        abort(400, description=_not(name, wanted, value))
    try:
        return kind(value)
    except OverflowError:           # a JSON integer of hundreds of digits as a float
        abort(400, description=_not(name, wanted, value))


def switch(name, current=None):
    """On or off, as a JSON boolean or a word; with ``current``, also toggle (the default when absent)."""
    wanted = "'on' or 'off'" if current is None else "on, off or toggle"
    value = _sent(name, current is None, wanted)
    if value is None:
        return not current
    state = on_off(name, value, wanted, "toggle" if current is not None else None)
    return not current if state == "toggle" else state


def flag(name, default=False):
    """An optional yes or no (or any on/off word, or a JSON boolean); ``default`` when absent."""
    value = _sent(name, False, "yes or no")
    return default if value is None else on_off(name, value, "yes or no")


def query_flag(name, default=False):
    """A yes or no (or any on/off word) in the query string; ``default`` when absent or empty."""
    text = request.args.get(name, "").strip()
    return on_off(name, text, "yes or no") if text else default


def text_fields():
    """The parameters read as text when asked for: ``.get(name)`` is ``field(name, required=False)``."""
    return _TextFields()


class _TextFields:
    def get(self, name, default=None):
        value = field(name, required=False)
        return default if value is None else value


def query_number(name, default, low, high):
    """A whole-number query parameter from low to high; a 400 otherwise.

    Only ASCII digits count: str.isdigit() alone also takes '²', which int() then refuses.
    """
    text = request.args.get(name, str(default))
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(high))) or not low <= int(text) <= high:
        abort(400, description=f"{name} must be a whole number from {low} to {high}, not {text[:20]!r}")
    return int(text)


def query_text(name, max_length=64):
    """A text query parameter (stripped), None when absent or empty; a 400 when longer than
    ``max_length`` or not text."""
    text = _valid_text(name, request.args.get(name, "")).strip()
    if len(text) > max_length:
        abort(400, description=f"{name} is longer than {max_length} characters")
    return text or None


def _parameters():
    """The form fields, or the members of the body's JSON object (none without a body). A body that is
    neither (JSON null, text/plain, multipart without its boundary) is a 400, never taken as nothing."""
    if request.form:
        return request.form
    if request.is_json and request.get_data(cache=True):
        body = request.get_json()
        if not isinstance(body, dict):
            abort(400, description="send the parameters as form fields or a JSON object")
        return body
    if request.get_data(cache=True) and request.mimetype != "application/x-www-form-urlencoded":
        abort(400, description=f"send the parameters as form fields or a JSON object, not as "
                               f"{request.mimetype or 'a body without a Content-Type'}")
    return {}


def _sent(name, required, wanted):
    """The parameter as sent: stripped text or another JSON value; None when absent, empty or an
    optional null; a 400 for a required one that is missing or null, or text that is not text."""
    parameters = _parameters()
    value = parameters.get(name)
    if isinstance(value, str):
        value = _valid_text(name, value).strip() or None
    if value is None and required:
        if name in parameters and parameters[name] is None:
            _wrong_type(name, wanted, None)
        abort(400, description=f"missing parameter {name!r}")
    return value


def _valid_text(name, text):
    """``text`` when UTF-8 can hold it; JSON's "\\ud800" (a lone surrogate) cannot, nor SQLite or a file name."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        abort(400, description=f"{name} is not valid text: it holds a lone surrogate (such as \\ud800); "
                               "send it as UTF-8")
    return text


def on_off(name, value, wanted, other_word=None):
    """True or False from a JSON boolean or an on/off word (any case); ``other_word`` as itself; a 400
    that says ``wanted`` for anything else. The one reading of on/off words, for routes and socket messages."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        _wrong_type(name, f"{wanted}, as a word or a JSON boolean", value)
    word = value.lower()
    if word in ON_WORDS or word in OFF_WORDS:
        return word in ON_WORDS
    if word == other_word:
        return word
    abort(400, description=f"{name} must be {wanted} ({OTHER_WORDS}), not {_shown(value)}")


def _parsed(name, text, kind, wanted):
    """The number in ``text``: plain ASCII digits, a sign, for a float a point and an exponent."""
    if not (_WHOLE if kind is int else _DECIMAL).fullmatch(text):
        abort(400, description=_not(name, wanted, text))
    return kind(text)


def _fits(value, kind, low, high):
    if isinstance(value, float) and not (math.isfinite(value) and (kind is float or value.is_integer())):
        return False
    return (low is None or low <= value) and (high is None or value <= high)


def _wrong_type(name, wanted, value):
    abort(400, description=f"{name} must be {wanted}, not {_json_type(value)}")


def _json_type(value):
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, (int, float)):
        return "a JSON number"
    return "a JSON list" if isinstance(value, list) else "a JSON object"


def _not(name, wanted, value):
    return f"{name} must be {wanted}, not {_shown(value)}"


def _shown(value, limit=40):
    """repr(value), cut short so a huge input is not echoed back whole (and a lone surrogate is escaped)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
