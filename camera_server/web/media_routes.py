"""Media routes: the catalogue pages and API, the files themselves and their thumbnails.

The catalogue (media.catalogue.MediaCatalogue) lives in ``current_app.extensions``; its exceptions and
the recorder's (the live routes record) become status codes here and nowhere else (``answer``). Requests
reach the catalogue through request_catalogue(), off the gevent loop, and list it a page at a time.
"""
import functools
import logging
import os

from flask import Blueprint, abort, current_app, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from camera_server import failures
from camera_server.blocking import call_blocking
from camera_server.media.catalogue import DuplicateMedia, FileInUse, MissingFile, UnknownMedia
from camera_server.media.fields import guess_kind, media_name
from camera_server.media.files import MediaExists, MediaNameError, media_path, open_regular_file
from camera_server.media.recorder import InsufficientSpace, NotRecording, RecordingBusy, RecordingError
from camera_server.media.thumbnails import make_thumbnail
from camera_server.web import auth
from camera_server.web.request_fields import field, flag, query_flag, query_number, query_text

# Exceptions of the models -> HTTP status codes.
_STATUS = {
    MediaNameError: 400,
    MissingFile: 404,
    UnknownMedia: 404,
    DuplicateMedia: 409,
    FileInUse: 409,             # the file being recorded
    MediaExists: 409,
    RecordingBusy: 409,
    NotRecording: 409,
    InsufficientSpace: 507,
    RecordingError: 503,        # shut down, or a file still being finished
}
log = logging.getLogger(__name__)


PAGE_SIZE = 100             # entries on one page of /gallery and /database
MAX_LIMIT = 1000            # the most entries /get_database answers at once
MAX_OFFSET = 10_000_000     # SQLite still steps over the rows before a deep page, in the thread pool
MAX_CAMERA_NAME = 64        # characters of ?camera=
THUMBNAIL_MAX_AGE_S = 3600  # how long a browser may keep a thumbnail without asking again


class _OffTheLoop:
    """Calls the methods of the object it wraps through call_blocking."""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def __getattr__(self, name):
        return functools.partial(call_blocking, getattr(self._wrapped, name))


def request_catalogue():
    """The catalogue for a request: each call runs in the gevent hub's thread pool, so a request
    waiting on the disk or on another process's write lock does not stop the streams."""
    return _OffTheLoop(current_app.extensions["catalogue"])


def _page():
    """One page of the catalogue, newest first (?limit=, ?offset=, ?kind=, ?camera=): its entries,
    whether older ones follow, and the parameters that chose it. A camera that made nothing yet has
    an empty page."""
    limit = query_number("limit", PAGE_SIZE, 1, MAX_LIMIT)
    offset = query_number("offset", 0, 0, MAX_OFFSET)
    kind = request.args.get("kind") or None
    if kind not in (None, "picture", "video", "change", "motion"):
        abort(400, description="kind must be picture, video, change or motion")
    camera = query_text("camera", max_length=MAX_CAMERA_NAME)
    found = request_catalogue().entries(kind=kind, limit=limit + 1, offset=offset, camera=camera)
    return dict(entries=found[:limit], more=len(found) > limit, limit=limit, offset=offset, kind=kind,
                camera=camera)


def _page_with_cameras():
    """A page for /gallery or /database, with the catalogue's camera names for the camera filter."""
    page = _page()
    return dict(page, cameras=request_catalogue().cameras())


def answer(action, *args, **kwargs):
    """Run a model call; its known exceptions become a 4xx (or 507) with the model's message."""
    try:
        return action(*args, **kwargs)
    except tuple(_STATUS) as error:
        status = next(code for kind, code in _STATUS.items() if isinstance(error, kind))
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        abort(status, description=message)


class InsufficientStorage(HTTPException):
    """507: werkzeug has none, so without this abort(507) is a LookupError (a 500)."""
    code = 507
    description = "there is not enough free space on the disk"


def register_error_handlers(app):
    """Errors of the surroundings, from any route (a full disk, a read-only or unwritable media folder,
    an I/O error, a locked catalogue), become a 507 or 503 that says what to do; any other error of
    these kinds stays a 500."""
    app.aborter.mapping[507] = InsufficientStorage
    for kind in failures.SURROUNDINGS:
        app.register_error_handler(kind, _surroundings_error)


def _surroundings_error(error):
    failure = failures.explain(error)
    if failure is None:
        raise error
    log.warning("%s %s: %s", request.method, request.path, failure.message)     # no traceback
    response = jsonify(error=failure.message, status=failure.status)
    response.status_code = failure.status
    return response


def _send_open_file(handle, name, as_attachment):
    """The file opened by name once (no second look-up a link could be swapped into), with conditional
    and range requests."""
    try:
        status = os.fstat(handle.fileno())
        response = send_file(handle, download_name=name, as_attachment=as_attachment, conditional=False,
                             etag=f"{status.st_mtime_ns:x}-{status.st_size:x}", last_modified=status.st_mtime)
        response.content_length = status.st_size       # send_file measures only a file it opens itself
        return response.make_conditional(request, accept_ranges=True, complete_length=status.st_size)
    except BaseException:
        handle.close()
        raise


def create_media_blueprint():
    blueprint = Blueprint("media", __name__)

    @blueprint.get("/database")
    def database_page():
        return render_template("database.html", **_page_with_cameras())

    @blueprint.get("/gallery")
    def gallery_page():
        return render_template("gallery.html", **_page_with_cameras())

    @blueprint.get("/get_database")
    def get_database():
        return jsonify(_page()["entries"])

    @blueprint.post("/database/add")
    @auth.require_control
    def database_add():
        entry = answer(request_catalogue().add, field("filename"), note=field("note", required=False))
        return jsonify(entry), 201

    @blueprint.post("/database/remove")
    @auth.require_control
    def database_remove():
        filename, delete_file = field("filename"), flag("delete_file")
        answer(request_catalogue().remove, filename, delete_file=delete_file)
        return jsonify(removed=filename, file_deleted=delete_file)

    @blueprint.post("/database/new")
    @auth.require_control
    def database_new():
        if not flag("confirm"):
            abort(400, description="a new database forgets every entry and every event (the files stay): "
                                   "send confirm=yes")
        return jsonify(request_catalogue().new())         # how many entries and events it forgot

    @blueprint.get("/media/<path:name>")
    def media_file(name):
        path = answer(media_path, current_app.config["MEDIA_DIR"], name)
        handle = None
        if not path.name.startswith(".") and guess_kind(path.name) is not None:
            handle = open_regular_file(path)        # never through a symbolic link
        if handle is None:
            abort(404, description=f"{name} is not a picture or video in the media folder")
        return _send_open_file(handle, path.name, query_flag("download"))

    @blueprint.get("/thumbnails/<path:name>")
    def thumbnail(name):
        """A small JPEG of a catalogued picture or video, made once and kept (media.thumbnails)."""
        unknown = f"{name} is not a picture or video in the catalogue"
        try:
            name = media_name(name)
        except MediaNameError:
            abort(404, description=unknown)
        if request_catalogue().get(name) is None:
            abort(404, description=unknown)
        jpeg = call_blocking(make_thumbnail, current_app.config["MEDIA_DIR"], name)
        if jpeg is None:
            abort(404, description=f"{name} has no thumbnail: it is not in the media folder or cannot be decoded")
        response = current_app.response_class(jpeg, mimetype="image/jpeg")
        response.headers["Cache-Control"] = f"private, max-age={THUMBNAIL_MAX_AGE_S}"
        response.add_etag()
        return response.make_conditional(request)

    return blueprint
