"""Reading the parameters of a POST: form fields, or the members of a JSON object body."""
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
