"""What an error of the surroundings means for a person: a full disk, a read-only or unwritable media
folder, a disk's I/O error, a catalogue locked by another program or damaged.

``explain(error)`` answers the HTTP status (507 for a full disk, 503 for the rest) and a message that
says what to do, or None for an error that is not the surroundings' (a bug stays a 500). Plain Python,
no Flask: the web layer's error handler and the command line both use it; model code raises as before.
"""
import dataclasses
import errno
import sqlite3

from camera_server.media.fields import CatalogueError


@dataclasses.dataclass(frozen=True)
class Failure:
    status: int
    message: str


# What happened, and what a person can do about it.
_SITUATIONS = {
    "full": (507, "the disk is full",
             "delete old media (Delete in the gallery, or database_manager.py prune) or free space on that "
             "disk, then try again"),
    "read_only": (503, "the file system is read-only",
                  "remount it read-write (a failing SD card turns read-only: check it), then try again"),
    "denied": (503, "the server's user is not allowed to do this",
               "give it write permission on the media folder and media.db (or on the file named), then try "
               "again"),
    "io": (503, "the disk reported an I/O error",
           "check the disk or SD card (dmesg says more), then try again"),
    "gone": (503, "the disk is not there any more",
             "plug it in or mount it again (an unplugged USB disk, a network share that dropped), then try again"),
    "locked": (503, "the media catalogue is locked by another program",
               "wait until it is done (a database_manager.py command, a backup) and try again"),
    "damaged": (503, "the media catalogue media.db is damaged",
                "move it away while the server is stopped; the next start lists the files anew"),
}
_ERRNOS = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EROFS: "read_only", errno.EACCES: "denied",
           errno.EPERM: "denied", errno.EIO: "io", errno.ENODEV: "gone", errno.ENXIO: "gone", errno.ESTALE: "gone",
           errno.ENOTCONN: "gone"}
# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_CODES = {13: "full", 8: "read_only", 3: "denied", 14: "denied", 10: "io", 5: "locked", 6: "locked",
                 11: "damaged", 26: "damaged"}
_SQLITE_MESSAGES = {"database or disk is full": "full", "readonly database": "read_only",
                    "disk I/O error": "io", "database is locked": "locked", "malformed": "damaged"}


# The errors that may come from the surroundings; explain() says which of them do.
SURROUNDINGS = (OSError, sqlite3.Error, CatalogueError)


def situation(error):
    """'full', 'read_only', 'denied', 'io', 'gone', 'locked' or 'damaged' for an OSError or sqlite3 error,
    also when it is the cause of another (a CatalogueError that wraps one); None otherwise."""
    while error is not None:
        found = _own_situation(error)
        if found:
            return found
        error = error.__cause__
    return None


def is_disk_full(error):
    return situation(error) == "full"


def explain(error):
    """The Failure (status and message) of an error of the surroundings, None for any other error.

    An error that wraps one (a CatalogueError saying what could not be done) keeps its own words. A
    catalogue that cannot be used for another reason (closed, its folder gone) is a 503 in its words;
    a value or name it refused (a subclass) is no surroundings' error.
    """
    found = situation(error)
    if found is None:
        return Failure(503, str(error)) if type(error) is CatalogueError else None
    status, what, advice = _SITUATIONS[found]
    detail = _detail(error) if _own_situation(error) else str(error)
    return Failure(status, f"{what} ({detail}): {advice}")


def _own_situation(error):
    if isinstance(error, OSError):
        return _ERRNOS.get(error.errno)
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return _SQLITE_CODES.get(code & 0xFF)
        text = str(error)
        return next((found for words, found in _SQLITE_MESSAGES.items() if words in text), None)
    return None


def _detail(error):
    if isinstance(error, OSError):
        where = f" on {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}"
    return str(error)
