"""Adding and removing ``[camera NAME]`` sections of config.txt, keeping every other byte.

The file is rewritten atomically (a temporary file in the same folder, flushed, synced, renamed over
it), so a crash or a full disk never leaves a half-written config.txt; an OSError propagates. The
caller checks the values (``settings.parse_camera_section``) and runs one change at a time.
"""
import configparser
import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from camera_server.settings import ConfigError, check_camera_name

NEW_FILE_HEADER = "# Written by the camera server; config.txt.example explains every setting."


class CameraExists(ConfigError):
    """config.txt has a section for this camera already."""


class CameraNotFound(KeyError):
    """config.txt has no section for this camera."""

    def __str__(self):
        return f"config.txt has no [camera {self.args[0]}] section"


def add_camera_section(path, name, values, default_camera=None):
    """Append ``[camera NAME]`` with a ``key = value`` line for each of ``values``; create the file
    if there is none.

    ``default_camera`` (the running default camera's Settings): when the file has no camera section
    yet, its camera is implicit, and would be lost once a section exists; so a section for it goes
    first, keeping it the default camera under the same name.
    """
    check_camera_name(name)
    lines = [f"{key} = {value}" for key, value in values.items()]
    for key, line in zip(values, lines):
        if any(character in line for character in "\r\n"):
            raise ConfigError(f"{key}: a value in config.txt cannot hold a line break")
    path = Path(path)
    text = path.read_bytes().decode("utf-8") if path.exists() else None
    names = _camera_names(text or "")
    implicit_camera = default_camera is not None and not names
    if name in names or (implicit_camera and name == default_camera.name):
        raise CameraExists(f"there is a camera named {name!r} in config.txt already")
    newline = "\r\n" if text and "\r\n" in text else "\n"
    sections = []
    if implicit_camera:
        sections.append([f"[camera {default_camera.name}]", f"camera = {_implicit_kind(default_camera)}"])
    sections.append([f"[camera {name}]", *lines])
    added = newline.join(newline.join(section) + newline for section in sections)
    if text is None:
        text = NEW_FILE_HEADER + newline
    _replace_file(path, (text + _separator(text, newline) + added).encode("utf-8"))


def _implicit_kind(settings):
    """The ``camera =`` of the implicit camera's section: its kind, or obdet when [SETTINGS] said obdet
    (the OpenCV camera with object detection; a plain opencv would lose the detection)."""
    written = dict(settings.camera_defaults).get("camera", "")
    return "obdet" if written.lower() == "obdet" and settings.camera == "opencv" else settings.camera


def remove_camera_section(path, name):
    """Take out ``[camera NAME]``: from its header to the next section's header (or the end), with the
    comments and blank lines inside it; CameraNotFound if there is none."""
    path = Path(path)
    if not path.exists():
        raise CameraNotFound(name)
    lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
    headers = [index for index, line in enumerate(lines) if _section(line) is not None]
    start = next((index for index in headers if _section(lines[index]) == f"camera {name}"), None)
    if start is None:
        raise CameraNotFound(name)
    end = next((index for index in headers if index > start), len(lines))
    if end == len(lines):
        # The last section: also the blank lines that kept it apart, so the file ends as it did.
        while start > 0 and not lines[start - 1].strip():
            start -= 1
    _replace_file(path, "".join(lines[:start] + lines[end:]).encode("utf-8"))


def _section(line):
    """The section a header line opens (as configparser reads it), or None."""
    match = configparser.ConfigParser.SECTCRE.match(line.strip())
    return match.group("header") if match else None


def _camera_names(text):
    headers = (_section(line) for line in text.splitlines())
    return {header[len("camera "):] for header in headers if header and header.startswith("camera ")}


def _separator(text, newline):
    """What goes between the file's text and a new section: an end to its last line, and a blank line."""
    if not text:
        return ""
    if not text.endswith(("\n", "\r")):
        return newline + newline
    last_line = text.splitlines()[-1]
    return "" if not last_line.strip() else newline


def _replace_file(path, data):
    """Write ``data`` to ``path`` atomically, keeping the file's permission bits (and owner, as root).

    Through a symbolic link the file it names is replaced, the link kept. A file nobody may write
    (no write permission bit) was made read-only on purpose: PermissionError, it stays as it is.
    """
    path = Path(os.path.realpath(path))
    old = path.stat() if path.exists() else None
    if old is not None and not (old.st_mode & 0o222 and os.access(path, os.W_OK)):
        raise PermissionError(errno.EACCES, "the file is read-only", str(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if old is not None:
            os.chmod(temporary, stat.S_IMODE(old.st_mode))
            if os.geteuid() == 0:
                os.chown(temporary, old.st_uid, old.st_gid)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder):
    """Make the rename itself durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
