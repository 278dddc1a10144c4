"""Reading request parameters: a POST's form fields or JSON object members, and whole numbers in the query."""
from flask import abort, request


def field(name, required=True):
    """The parameter as stripped text; None when absent or empty, a 400 when it was required."""
    values = request.form or request.get_json(silent=True) or {}
    if not hasattr(values, "get"):
        abort(400, description="send the parameters as form fields or a JSON object")
    value = values.get(name)
    text = "" if value is None else str(value).strip()
    if required and not text:
        abort(400, description=f"missing parameter {name!r}")
    return text or None


def query_number(name, default, low, high):
    """A whole-number query parameter from low to high; a 400 otherwise.

    Only ASCII digits count: str.isdigit() alone also takes '²', which int() then refuses.
    """
    text = request.args.get(name, str(default))
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(high))) or not low <= int(text) <= high:
        abort(400, description=f"{name} must be a whole number from {low} to {high}, not {text[:20]!r}")
    return int(text)
