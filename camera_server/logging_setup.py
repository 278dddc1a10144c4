"""Logging for the running server: camera messages in the terminal too, everything in the log file.

The log file is rotated by size (``log_max_mb``), keeping ``BACKUPS`` older files (flask.log.1 is the
newest of them), so months of access lines cannot fill the disk. gunicorn's access and error lines
reach it through the root logger (``gunicorn_logconfig``); only the worker process, which calls
``configure``, writes the file.
"""
import logging
import logging.handlers
import os

CAMERA_LOGGER = "camera_server.capture"      # every capture module logs under it
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TERMINAL_TIME = "%H:%M:%S"
BACKUPS = 3
TAIL_BLOCK = 64 * 1024


def configure(log_file, max_bytes, level=logging.INFO):
    root = logging.getLogger()
    root.setLevel(level)
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=BACKUPS,
                                                        encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(file_handler)
    terminal = logging.StreamHandler()
    terminal.setFormatter(logging.Formatter("%(asctime)s camera: %(message)s", TERMINAL_TIME))
    logging.getLogger(CAMERA_LOGGER).addHandler(terminal)


def gunicorn_logconfig():
    """gunicorn.conf.py's logconfig_dict (a new one each time: logging.config changes what it is given).

    Access and error lines propagate to the root logger, which in the worker writes the rotating log
    file; gunicorn's own messages (starting, listening, a worker booting or stopping) also go to the
    terminal, the only place the master process writes (the journal under systemd).
    """
    return {
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["terminal"], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
        "handlers": {
            "terminal": {"class": "logging.StreamHandler", "formatter": "terminal", "stream": "ext://sys.stderr"},
        },
        "formatters": {
            "terminal": {"format": "%(asctime)s server: %(message)s", "datefmt": TERMINAL_TIME},
        },
    }


def tail(log_file, count):
    """The last ``count`` lines of the log, continued from its rotated files when it is shorter.

    Reads blocks from the end of each file, so a big log costs no more than the lines asked for.
    """
    lines = []
    for path in [log_file] + [f"{log_file}.{number}" for number in range(1, BACKUPS + 1)]:
        try:
            lines = _last_lines(path, count - len(lines)) + lines
        except FileNotFoundError:
            break
        if len(lines) >= count:
            break
    return b"".join(lines).decode("utf-8", errors="replace")


def _last_lines(path, count):
    """The last ``count`` lines of one file (bytes, each with its newline but perhaps the last)."""
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        blocks, newlines = [], 0
        while position > 0 and newlines <= count:
            step = min(TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            blocks.append(handle.read(step))
            newlines += blocks[-1].count(b"\n")
    data = b"".join(reversed(blocks))
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    if position > 0:
        lines = lines[1:]         # began inside a line: the block boundary cut it
    return lines[-count:] if count > 0 else []
