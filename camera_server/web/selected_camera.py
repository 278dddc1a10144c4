"""Which camera a request is for: ``/cam/<name>/...`` names it, the original routes mean the default.

Each per-camera blueprint is registered twice, as it is (``/video_feed``, on the default camera) and
under ``/cam/<camera>`` (named ``cam_<blueprint>``). The name is taken out of the URL's values
before the view runs and looked up only when the view asks (after the login check, so a stranger
learns no camera names from a 404).
"""
from flask import abort, current_app, g, url_for

CAMERA_PREFIX = "/cam/<camera>"


def init_app(app):
    app.url_value_preprocessor(_take_camera_name)
    app.context_processor(lambda: {"camera_url": camera_url, "camera_base": camera_base()})


def register_per_camera(app, blueprint):
    """Register ``blueprint`` for the default camera and under /cam/<camera> for every camera."""
    app.register_blueprint(blueprint)
    app.register_blueprint(blueprint, url_prefix=CAMERA_PREFIX, name=f"cam_{blueprint.name}")


def _take_camera_name(endpoint, values):
    if values and "camera" in values:
        g.camera_name = values.pop("camera")


def cameras():
    return current_app.extensions["cameras"]


def selected():
    """The CameraUnit the request is for; a 404 that lists the cameras for an unknown name."""
    name = g.get("camera_name")
    if name is None:
        return cameras().default
    try:
        return cameras().get(name)
    except KeyError as error:
        abort(404, description=str(error))


def catalogue_filter(unit):
    """The camera name to filter the catalogue by for ``unit``'s pages and actions: None while the
    server has one camera, so files added by hand and those of the original server count as its own."""
    return unit.name if len(cameras()) > 1 else None


def camera_base():
    """The URL prefix of the request's camera: "" for the original routes, /cam/<name> otherwise."""
    name = g.get("camera_name")
    return "" if name is None else url_for("cam_live.index", camera=name).rstrip("/")


def camera_url(endpoint, **values):
    """url_for a per-camera endpoint ("live.video_feed") for the request's camera."""
    name = g.get("camera_name")
    if name is None:
        return url_for(endpoint, **values)
    return url_for(f"cam_{endpoint}", camera=name, **values)
