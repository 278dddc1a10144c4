"""The media catalogue's command line: ``python database_manager.py --help`` or ``flask --app app media --help``.

The catalogue itself is media.catalogue.MediaCatalogue; here its errors become one line on stderr.
"""
import functools
import json
import logging
import math
import os
import sqlite3
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from camera_server import failures
from camera_server import settings as settings_module
from camera_server.media.catalogue import DB_NAME, KINDS, CatalogueError, MediaCatalogue
from camera_server.media.files import MediaNameError
from camera_server.media.video_file import read_duration


class _Options:
    def __init__(self, db_path, media_dir):
        self.db_path, self.media_dir = db_path, media_dir


def _friendly_errors(command):
    """Known failures become one line on stderr and exit status 1."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (*failures.SURROUNDINGS, MediaNameError, settings_module.ConfigError) as error:
            raise click.ClickException(_one_line(error)) from None
    return run


def _one_line(error):
    """The error's message, with advice for one of the surroundings (a full disk, a locked catalogue)."""
    failure = failures.explain(error)
    if failure is not None:
        text = failure.message
    elif isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    else:
        text = f"database error: {error}" if isinstance(error, sqlite3.Error) else str(error)
    return " ".join(text.split())


def _current_app():
    """Flask's current app when running as ``flask media ...``; flask is never imported here."""
    flask = sys.modules.get("flask")
    if flask is not None and flask.has_app_context():
        return flask.current_app
    return None


def _settings():
    app = _current_app()
    if app is not None and app.config.get("SETTINGS") is not None:
        return app.config["SETTINGS"]
    return settings_module.load_settings()


def _default_media_dir():
    app = _current_app()
    if app is not None and app.config.get("MEDIA_DIR"):
        return Path(app.config["MEDIA_DIR"])
    return settings_module.project_path(settings_module.load_settings().media_dir)


def _open_catalogue(create_media_dir=False):
    options = click.get_current_context().find_object(_Options)
    media_dir = options.media_dir or _default_media_dir()
    if create_media_dir:
        media_dir.mkdir(parents=True, exist_ok=True)
    elif not media_dir.is_dir():
        raise CatalogueError(f"the media folder {media_dir} does not exist; give --media-dir")
    catalogue = MediaCatalogue(options.db_path or media_dir / DB_NAME, media_dir)
    click.get_current_context().call_on_close(catalogue.close)
    return catalogue


def _name_in(catalogue, file):
    """Accept 'media/x.jpg' for a file in the media folder; anything else goes to the name checks.
    The folder is resolved, the name is not: a symbolic link stays the link, not what it points at."""
    if ("/" in file or os.sep in file) and "\x00" not in file:
        path = Path(file)
        if path.name not in ("", ".", "..") and path.parent.resolve() == catalogue.media_dir:
            return path.name
    return file


def _when(seconds):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _size(size):
    if size is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def _table(entries):
    header = ("ID", "CREATED", "CAMERA", "KIND", "SIZE", "LENGTH", "FILE", "NOTE")
    rows = [(str(entry["id"]), _when(entry["created"]), entry["camera"] or "", entry["kind"], _size(entry["size"]),
             f"{entry['duration']:.1f} s" if entry["duration"] is not None else "", entry["filename"],
             entry["note"] or "") for entry in entries]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [header, *rows])


class _Amount(click.FloatRange):
    """A number of 0 or more that is finite: 'inf' and 'nan' are refused too."""

    def __init__(self):
        super().__init__(min=0)

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class _OneLineGroup(click.Group):
    """Usage errors in one line too: click would print the usage and a hint above them."""

    def parse_args(self, ctx, args):
        with _one_line_usage_errors():
            return super().parse_args(ctx, args)

    def invoke(self, ctx):
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextmanager
def _one_line_usage_errors():
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise
    except click.UsageError as error:
        error.ctx = None
        raise


@click.group(name="media", cls=_OneLineGroup, no_args_is_help=True)
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The catalogue database [default: MEDIA_DIR/media.db].")
@click.option("--media-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The media folder [default: media_dir from config.txt, or the app's MEDIA_DIR under flask].")
@click.pass_context
def media_cli(ctx, db_path, media_dir):
    """Manage the media catalogue: the pictures and videos in the media folder."""
    ctx.obj = _Options(db_path, media_dir)


@media_cli.command()
@click.option("--yes", is_flag=True, help="Forget every entry and event without asking.")
@_friendly_errors
def new(yes):
    """Forget every entry and every event (asks first); the files stay."""
    catalogue = _open_catalogue(create_media_dir=True)
    count, events = len(catalogue.entries()), len(catalogue.events())
    if (count or events) and not yes:
        click.confirm(f"Forget all {count} entries and all {events} events in {catalogue.db_path}? "
                      f"The files stay", abort=True)
    forgot = catalogue.new()
    click.echo(f"Forgot {forgot['entries']} entries and {forgot['events']} events; the catalogue "
               f"{catalogue.db_path} is empty now.")


@media_cli.command()
@click.argument("file")
@click.option("--kind", type=click.Choice(KINDS), help="[default: from the extension]")
@click.option("--note", help="A note to keep with the entry.")
@_friendly_errors
def add(file, kind, note):
    """Catalogue FILE, a file in the media folder."""
    catalogue = _open_catalogue()
    entry = catalogue.add(_name_in(catalogue, file), kind, note=note)
    click.echo(f"Added {entry['filename']} ({entry['kind']}, {_size(entry['size'])}).")


@media_cli.command()
@click.argument("file")
@click.option("--delete-file", is_flag=True, help="Delete the file from the media folder too.")
@_friendly_errors
def remove(file, delete_file):
    """Remove FILE from the catalogue; --delete-file deletes the file too."""
    catalogue = _open_catalogue()
    entry = catalogue.remove(_name_in(catalogue, file), delete_file=delete_file)
    outcome = "and deleted the file" if delete_file else "(the file stays)"
    click.echo(f"Removed {entry['filename']} from the catalogue {outcome}.")


@media_cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as a JSON list.")
@click.option("--kind", type=click.Choice(KINDS), help="Only entries of this kind.")
@click.option("--camera", metavar="NAME", help="Only entries this camera made (its name, as in config.txt).")
@_friendly_errors
def list_entries(as_json, kind, camera):
    """List the catalogue, newest first."""
    catalogue = _open_catalogue()
    entries = catalogue.entries(kind=kind, camera=camera)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
    elif entries:
        click.echo(_table(entries))
    elif camera is not None:
        known = catalogue.cameras()
        click.echo(f"No media from the camera {camera} yet (the catalogue knows "
                   f"{', '.join(known) if known else 'no camera names'}).")
    else:
        click.echo("No media yet.")


@media_cli.command()
@click.option("--remove-missing", is_flag=True, help="Also remove entries whose file is gone.")
@_friendly_errors
def scan(remove_missing):
    """Catalogue new files in the media folder, refresh changed sizes; report entries whose file is gone."""
    found = _open_catalogue().scan(remove_missing=remove_missing, read_duration=read_duration)
    for entry in found["added"]:
        click.echo(f"added    {entry['filename']} ({entry['kind']}, {_size(entry['size'])})")
    for entry in found["refreshed"]:
        click.echo(f"updated  {entry['filename']}: {_size(entry['size'])} on disk")
    for entry in found["missing"]:
        click.echo(f"{'removed' if remove_missing else 'missing'}  {entry['filename']}: the file is gone")
    for skipped in found["skipped"]:
        click.echo(f"skipped  {skipped['filename']}: {skipped['reason']}")
    advice = " (scan --remove-missing removes them)" if found["missing"] and not remove_missing else ""
    click.echo(f"{len(found['added'])} added, {len(found['missing'])} missing"
               f"{' and removed' if remove_missing else ''}{advice}.")


@media_cli.command()
@click.option("--days", type=_Amount(), help="Remove entries older than N days (0: no age limit).")
@click.option("--max-gb", type=_Amount(), help="Remove the oldest until the files fit in X GB (0: no size limit).")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@_friendly_errors
def prune(days, max_gb, dry_run):
    """Delete the oldest media, files and entries, by age and by total size.

    Without --days and --max-gb, keep_days and max_media_gb from config.txt apply. 0 means no limit,
    as in config.txt. 1 GB = 1024^3 bytes. The file being recorded is kept.
    """
    if days is None and max_gb is None:
        chosen = _settings()
        days, max_gb = getattr(chosen, "keep_days", 0), getattr(chosen, "max_media_gb", 0)
    days, max_gb = days or None, max_gb or None       # 0: no limit
    if days is None and max_gb is None:
        raise click.ClickException("no limit to prune by: give --days N and/or --max-gb X above 0 (0 means no "
                                   "limit), or set keep_days or max_media_gb in config.txt")
    max_bytes = None if max_gb is None else int(max_gb * 1024 ** 3)
    removed = _open_catalogue().prune(max_age_days=days, max_total_bytes=max_bytes, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for entry in removed:
        click.echo(f"{verb}  {entry['filename']} ({_when(entry['created'])}, {_size(entry['size'])})")
    if not removed:
        click.echo("Nothing to prune.")
    else:
        freed = sum(entry["size"] or 0 for entry in removed)
        click.echo(f"{len(removed)} entries, {_size(freed)}{' would be' if dry_run else ''} freed.")


def main():
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    media_cli(prog_name="database_manager.py")


if __name__ == "__main__":
    main()
