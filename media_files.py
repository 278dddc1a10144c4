"""Files in the media folder: names users may choose, and writes that never overwrite or half-write."""
import os
import re
import tempfile
import time
from pathlib import Path

MAX_NAME_LENGTH = 128
_ALLOWED = re.compile(r"^\w[\w .()+-]*$")


class MediaNameError(ValueError):
    """A name a user gave cannot be used; the message says why."""


class MediaExists(FileExistsError):
    """A file of that name is already in the media folder."""


def check_media_name(name, extensions):
    """Return ``name`` (with the first extension added when it has none) or raise MediaNameError.

    Only a plain file name is accepted: no folders, no '..', no NUL or control characters.
    """
    if not isinstance(name, str) or not name.strip():
        raise MediaNameError("the file name is empty")
    name = name.strip()
    if "\x00" in name or any(ord(char) < 32 for char in name):
        raise MediaNameError("the file name contains control characters")
    if "/" in name or "\\" in name or ".." in name:
        raise MediaNameError(f"{name!r} is not a plain file name: no folders and no '..'")
    if len(name) > MAX_NAME_LENGTH:
        raise MediaNameError(f"the file name is longer than {MAX_NAME_LENGTH} characters")
    if not _ALLOWED.match(name):
        raise MediaNameError(f"{name!r} may only contain letters, digits, spaces and . _ - + ( )")
    suffix = Path(name).suffix.lower()
    if not suffix:
        return name + extensions[0]
    if suffix not in extensions:
        raise MediaNameError(f"{name!r} must end in {' or '.join(extensions)}")
    return name


def media_path(media_dir, name):
    """The path of ``name`` inside ``media_dir``, refusing anything that would resolve outside it."""
    if "\x00" in name:
        raise MediaNameError("the file name contains a NUL byte")
    base = Path(media_dir).resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise MediaNameError(f"{name!r} is outside the media folder")
    return path


def timestamped_name(prefix, extension, when=None):
    return time.strftime(f"{prefix}_%Y-%m-%d_%H-%M-%S", time.localtime(when)) + extension


def write_new_file(media_dir, name, data):
    """Write ``data`` as ``name``: complete or not at all, and never over an existing file."""
    path = media_path(media_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)        # atomic, and fails when the name is taken
        except FileExistsError:
            raise MediaExists(f"{name} already exists in the media folder; choose another name") from None
    finally:
        os.unlink(temporary)
    return path


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
