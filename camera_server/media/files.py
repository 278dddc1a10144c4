"""Files in the media folder: names users may choose, writes that never overwrite or half-write, and
the lock a writer holds on a file while it is being written (a recording), which others can test."""
import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import stat
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 128           # characters, the extension included
MAX_NAME_BYTES = 255            # the file system's limit on one name, in UTF-8 bytes
TEMPORARY_PREFIX = ".partial-"  # hidden: scans, listings and /media skip it
TRASH_PREFIX = TEMPORARY_PREFIX + "removed-"     # a file set aside to be deleted
_ALLOWED = re.compile(r"^\w[\w .()+-]*$")


class MediaNameError(ValueError):
    """A name a user gave cannot be used; the message says why."""


class MediaExists(FileExistsError):
    """A file of that name is already in the media folder."""


class MediaFolderGone(OSError):
    """The media folder is not there (an unplugged disk, an unmounted share): nothing is written in its
    place on the disk below. ENODEV, which failures.py explains as a disk that is gone."""

    def __init__(self, folder):
        super().__init__(errno.ENODEV, "the media folder is not there", str(folder))


class WriterLockError(OSError):
    """The writer's lock cannot be taken (some network file systems have no flock); the message says why."""


def check_media_name(name, extensions):
    """Return ``name`` (with the first extension added when it has none) or raise MediaNameError.

    Only a plain file name is accepted: no folders, no '..', no NUL or control characters. The
    checks apply to the final name, the extension included.
    """
    if not isinstance(name, str) or not name.strip():
        raise MediaNameError("the file name is empty")
    name = name.strip()
    if "\x00" in name or any(ord(char) < 32 for char in name):
        raise MediaNameError("the file name contains control characters")
    if "/" in name or "\\" in name or ".." in name:
        raise MediaNameError(f"{name!r} is not a plain file name: no folders and no '..'")
    if name.endswith("."):
        raise MediaNameError(f"{name!r} ends in '.': leave the extension out or write it whole")
    suffix = Path(name).suffix.lower()
    if not suffix:
        name += extensions[0]
    elif suffix not in extensions:
        raise MediaNameError(f"{name!r} must end in {' or '.join(extensions)}")
    if len(name) > MAX_NAME_LENGTH:
        raise MediaNameError(f"the file name {name[:20]}... has {len(name)} characters; at most "
                             f"{MAX_NAME_LENGTH} are allowed, the extension included")
    if not _ALLOWED.match(name):
        raise MediaNameError(f"{name!r} may only contain letters, digits, spaces and . _ - + ( )")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise MediaNameError(f"the file name {name[:20]}... is too long for the file system: at most "
                             f"{MAX_NAME_BYTES} bytes in UTF-8 (letters outside English take 2 to 4)")
    return name


def media_path(media_dir, name):
    """The path of the plain name ``name`` in ``media_dir``; anything else (folders, '..') is refused.

    The folder may be a symbolic link (the user's choice); the name is never resolved, so a symbolic
    link in the folder stays the link: the callers open it with O_NOFOLLOW, lstat it, rename it.
    """
    if "\x00" in name:
        raise MediaNameError("the file name contains a NUL byte")
    base = Path(media_dir).resolve()
    path = base / name
    if name in ("", ".", "..") or "/" in name or path.parent != base:
        raise MediaNameError(f"{name!r} is outside the media folder")
    return path


def regular_file_stat(path):
    """The stat of the plain file at ``path``, not following a symbolic link; None when there is none
    (absent, a link, a folder)."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None


def open_regular_file(path, writable=False):
    """The plain file at ``path`` open for reading (and with ``writable`` writing), never through a
    symbolic link (and never waiting on a FIFO); None when there is no plain file there (absent, a
    link, a folder)."""
    access = os.O_RDWR if writable else os.O_RDONLY
    try:
        descriptor = os.open(path, access | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in _NO_PLAIN_FILE:
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            return None
        return os.fdopen(descriptor, "r+b" if writable else "rb")
    except BaseException:
        os.close(descriptor)
        raise


# What opening a name that holds no plain file answers: absent, a symbolic link (ELOOP), a socket
# (ENXIO), a folder opened for writing, or a name longer than the file system takes.
_NO_PLAIN_FILE = (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENAMETOOLONG)


def timestamped_name(prefix, extension, when=None):
    return time.strftime(f"{prefix}_%Y-%m-%d_%H-%M-%S", time.localtime(when)) + extension


@contextlib.contextmanager
def refused_long_names(name):
    """A name this file system finds too long (ENAMETOOLONG) becomes a MediaNameError."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:
            raise
        raise MediaNameError(f"the file name {name[:20]}... is too long for this file system") from None


def create_temporary(directory, suffix=""):
    """A new hidden file for writing: (descriptor, path). Unlike mkstemp's 0600, its mode follows the
    umask like any new file (0644 under the usual 022), so the media stay readable once renamed.
    MediaFolderGone when the folder is not there: it is never made again here (it would be made on
    the disk below an unplugged one)."""
    while True:
        path = Path(directory) / f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), path
        except FileExistsError:
            continue
        except FileNotFoundError:
            if not Path(directory).is_dir():
                raise MediaFolderGone(directory) from None
            raise


def write_new_file(media_dir, name, data):
    """Write ``data`` as ``name``: complete or not at all, and never over an existing file."""
    path = media_path(media_dir, name)
    descriptor, temporary = create_temporary(path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        give_new_name(temporary, path)
    finally:
        _remove_temporary(temporary)
    return path


def give_new_name(source, path):
    """Give the file ``source`` the name ``path`` too, never over an existing file (MediaExists). A hard
    link does it in one step; a file system without them (FAT, exFAT on a USB stick) gets the name
    reserved with an empty file, then replaced by ``source`` (then ``source`` is gone)."""
    try:
        with refused_long_names(path.name):
            os.link(source, path, follow_symlinks=False)
        return
    except FileExistsError:
        raise MediaExists(f"{path.name} already exists in the media folder; choose another name") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    except FileExistsError:
        raise MediaExists(f"{path.name} already exists in the media folder; choose another name") from None
    os.replace(source, path)


def _remove_temporary(temporary):
    """The hidden temporary goes (when it has not become the file); when it cannot, the next start
    removes it (remove_leftover_temporaries), and the write's own outcome stands."""
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("could not remove the temporary %s: %s", temporary.name, error)


def write_unique_file(media_dir, name, data):
    """Like write_new_file, adding -1, -2... to a generated name that is already taken."""
    stem, suffix = os.path.splitext(name)
    for attempt in range(1000):
        candidate = name if attempt == 0 else f"{stem}-{attempt}{suffix}"
        try:
            return write_new_file(media_dir, candidate, data)
        except MediaExists:
            continue
    raise MediaExists(f"too many files named {name}")


# -- the writer's lock: flock, which every open file (in this process or another) sees -----------


def lock_for_writing(descriptor, wait=True):
    """Take the writer's lock on an open file; without ``wait``, answer False when another holds it."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def create_locked(path):
    """Create ``path`` empty (MediaExists when the name is taken) and hold the writer's lock on it:
    until the returned descriptor is closed, ``being_written(path)`` is true in every process."""
    try:
        with refused_long_names(path.name):
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise MediaExists(f"{path.name} already exists in the media folder; choose another name") from None
    try:
        lock_for_writing(descriptor)
    except OSError as error:            # the empty file must not stay, nor its descriptor
        os.close(descriptor)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise WriterLockError(f"cannot lock {path.name} for writing: {error.strerror or error} (the media "
                              f"folder's file system must support flock)") from error
    return descriptor


def being_written(path):
    """Whether a writer holds its lock on the file at ``path`` (a recording in progress); never for a
    symbolic link."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)            # and with it the shared lock just taken


def remove_leftover_temporaries(media_dir, min_age_s=60.0, now=None):
    """Delete the hidden temporaries a kill left behind (a rewrite or a delete cut short); a live
    writer's are locked or young. Answers the names removed."""
    now = time.time() if now is None else now
    removed = []
    for path in Path(media_dir).glob(TEMPORARY_PREFIX + "*"):
        try:
            status = path.lstat()
            # A file set aside for a delete (renamed a moment ago by another process) keeps the picture's
            # mtime: its rename, the ctime, says how old it is.
            changed = status.st_ctime if path.name.startswith(TRASH_PREFIX) else status.st_mtime
            young = now - changed < min_age_s
            if young or not stat.S_ISREG(status.st_mode) or being_written(path):
                continue
            path.unlink()
            removed.append(path.name)
        except OSError as error:
            log.warning("could not remove the leftover temporary %s: %s", path.name, error)
    if removed:
        log.info("removed %d temporary files a crash left in the media folder", len(removed))
    return removed
