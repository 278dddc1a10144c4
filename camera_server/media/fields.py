"""What the media catalogue accepts: its errors, media names and kinds, dates, and the checks of
each field it stores. Plain Python, no SQLite: catalogue.MediaCatalogue uses these.
"""
import datetime
import functools
import json
import math
import os

from camera_server.media.files import MediaNameError, check_media_name

KINDS = ("picture", "video", "change", "motion")
PICTURE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")
MEDIA_EXTENSIONS = PICTURE_EXTENSIONS + VIDEO_EXTENSIONS


class CatalogueError(Exception):
    """The catalogue cannot do what was asked; the message says why."""


class MissingFile(CatalogueError, FileNotFoundError):
    """The file is not in the media folder."""


class DuplicateMedia(CatalogueError):
    """The file is already catalogued."""


class FileInUse(CatalogueError):
    """The file is being recorded; it is catalogued, and may be deleted, once the recording ends."""


class InvalidValue(CatalogueError, ValueError):
    """A field or value the catalogue cannot store."""


class _NotFound(CatalogueError, KeyError):
    def __str__(self):                  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownMedia(_NotFound):
    """No catalogue entry has that file name."""


class UnknownEvent(_NotFound):
    """No event has that id."""


# ---------------------------------------------------------------------------------------------
# Names, kinds and values


def media_name(name):
    """A user-given name checked strictly: a plain file name with a media extension."""
    checked = check_media_name(name, MEDIA_EXTENSIONS)
    if checked != name.strip():
        raise MediaNameError(f"{name!r} needs an extension: {', '.join(MEDIA_EXTENSIONS)}")
    return checked


def guess_kind(name):
    """'picture' or 'video' from the extension, None when it is neither; the scene watch's
    'change_...' and 'motion_...' pictures keep their kind when a catalogue is rebuilt."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in PICTURE_EXTENSIONS:
        prefix = name.split("_", 1)[0]
        return prefix if prefix in ("change", "motion") else "picture"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def parse_date(value):
    """Unix seconds from the ways the original catalogue may have written a date; None if unreadable."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if 1e8 <= number < 1e11:        # seconds (1973 to 5138)
            return number
        if 1e11 <= number < 1e14:       # milliseconds
            return number / 1000
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    for layout in _DATE_LAYOUTS:
        try:
            return datetime.datetime.strptime(text, layout).timestamp()
        except ValueError:
            continue
    return None


_DATE_LAYOUTS = ("%Y-%m-%d_%H-%M-%S", "%Y-%m-%d %H-%M-%S", "%Y-%m-%d-%H-%M-%S", "%Y/%m/%d %H:%M:%S",
                 "%Y/%m/%d", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y",
                 "%d.%m.%Y %H:%M:%S", "%d.%m.%Y", "%a %b %d %H:%M:%S %Y", "%Y%m%d_%H%M%S", "%Y%m%d%H%M%S")


def check_number(key, value, *, whole=False, required=False):
    if value is None:
        if required:
            raise InvalidValue(f"{key} is required")
        return None
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < 0:
        wanted = "a whole number" if whole else "a number"
        raise InvalidValue(f"{key} must be {wanted} of 0 or more, not {value!r}")
    return value if whole else float(value)


def _text(key, value):
    if value is not None and not isinstance(value, str):
        raise InvalidValue(f"{key} must be text, not {value!r}")
    return value


def check_kind(key, value):
    if value not in KINDS:
        raise InvalidValue(f"{key} must be one of {', '.join(KINDS)}, not {value!r}")
    return value


def _event_kind(key, value):
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{key} must be a non-empty text, not {value!r}")
    return value.strip()


def _labels(key, value):
    if isinstance(value, (str, bytes)) or not all(isinstance(label, str) for label in value):
        raise InvalidValue(f"{key} must be a list of texts, not {value!r}")
    return json.dumps(list(value))


def _optional_name(key, value):
    return None if value is None else media_name(value)


MEDIA_FIELDS = {
    "kind": check_kind,
    "created": functools.partial(check_number, required=True),
    "size": functools.partial(check_number, whole=True),
    "duration": check_number,
    "width": functools.partial(check_number, whole=True),
    "height": functools.partial(check_number, whole=True),
    "camera": _text,
    "note": _text,
}
EVENT_FIELDS = {
    "start": functools.partial(check_number, required=True),
    "end": check_number,
    "kind": _event_kind,
    "peak_score": check_number,
    "labels": _labels,
    "snapshot": _optional_name,
    "clip": _optional_name,
}


def check_fields(checks, fields, action):
    """The values of ``fields``, each checked by its entry in ``checks``; a field without one is refused."""
    unknown = sorted(set(fields) - set(checks))
    if unknown:
        raise InvalidValue(f"{action} cannot set {', '.join(unknown)}; it sets {', '.join(checks)}")
    return {key: checks[key](key, value) for key, value in fields.items()}
