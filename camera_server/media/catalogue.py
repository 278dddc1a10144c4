"""The media catalogue: pictures, videos and detector events in SQLite.

``MediaCatalogue(db_path, media_dir)`` imports no Flask and no click: WAL mode and one connection per
thread, so the server and the command line (database_manager.py) can use one database at the same
time; every change is one transaction.
"""
import errno
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
import weakref
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.request import pathname2url

from camera_server.media.fields import (EVENT_FIELDS, MEDIA_FIELDS, CatalogueError, DuplicateMedia, FileInUse,
                                        MissingFile, UnknownEvent, UnknownMedia, check_fields, check_kind, check_number,
                                        guess_kind, media_name, parse_date)
# The kinds an entry can have, and the error for a bad value, are part of the catalogue's interface too.
from camera_server.failures import is_disk_full
from camera_server.media.fields import KINDS, InvalidValue  # noqa: F401
from camera_server.media.files import (TRASH_PREFIX, MediaExists, MediaFolderGone, MediaNameError, being_written,
                                       give_new_name, media_path, regular_file_stat)
from camera_server.media.thumbnails import remove_thumbnail
from camera_server.settings import PROJECT_DIR

log = logging.getLogger(__name__)
SCHEMA_PATH = PROJECT_DIR / "media_schema.sql"      # at the top of the project, where the user asked for it
DB_NAME = "media.db"
BUSY_TIMEOUT_S = 10.0       # how long a change waits for another program's write lock


def _schema():
    """(statements, version) of media_schema.sql, read when a catalogue opens."""
    script = SCHEMA_PATH.read_text(encoding="utf-8")
    found = re.search(r"PRAGMA\s+user_version\s*=\s*(\d+)", script, re.IGNORECASE)
    if not found:
        raise CatalogueError(f"{SCHEMA_PATH.name} does not set PRAGMA user_version")
    statements, statement = [], ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            statements.append(statement.strip())
            statement = ""
    return statements, int(found.group(1))


class _Connection(sqlite3.Connection):
    """A plain sqlite3 connection that a WeakSet can hold, so close() reaches every thread's one."""


# ---------------------------------------------------------------------------------------------
# The catalogue


class MediaCatalogue:
    """The media catalogue in ``db_path`` for the files in ``media_dir``; safe to share between threads."""

    def __init__(self, db_path, media_dir, *, busy_timeout=None):
        self.db_path = Path(db_path)
        self.media_dir = Path(media_dir).resolve()
        if not self.media_dir.is_dir():
            raise CatalogueError(f"the media folder {self.media_dir} does not exist")
        self.busy_timeout = BUSY_TIMEOUT_S if busy_timeout is None else busy_timeout
        self._local = threading.local()
        self._connections = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._created = False         # the database exists: later connections must not make it again
        self._prepare()

    def __repr__(self):
        return f"MediaCatalogue({str(self.db_path)!r}, {str(self.media_dir)!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close every thread's connection; the catalogue cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    # -- media ------------------------------------------------------------------------------

    def add(self, filename, kind=None, *, created=None, size=None, duration=None, width=None, height=None,
            camera=None, note=None):
        """Catalogue a file already in the media folder; kind, size and created default from the file.

        A file being recorded is refused (FileInUse): its recorder catalogues it with ``put``.
        """
        name = media_name(filename)
        if being_written(media_path(self.media_dir, name)):
            raise FileInUse(f"{name} is being recorded; it is catalogued when the recording ends")
        return self._store(name, dict(kind=kind, created=created, size=size, duration=duration, width=width,
                                      height=height, camera=camera, note=note), replace=False)

    def put(self, filename, kind=None, **fields):
        """Like add, but an entry of the same name is replaced (keeping its id) instead of refused:
        how the writer of a file catalogues it, whatever listed the name before (a stale entry whose
        file was deleted outside the app, or the writer's own entry from its first frame)."""
        return self._store(media_name(filename), dict(fields, kind=kind), replace=True)

    def update(self, filename, /, **fields):
        """Change some of kind, created, size, duration, width, height, camera, note; answer the entry."""
        name = self._lookup_name(filename)
        changes = check_fields(MEDIA_FIELDS, fields, "update")
        with self._transaction() as db:
            entry = self._existing(db, name)
            if changes:
                assignments = ", ".join(f"{key} = ?" for key in changes)
                db.execute(f"UPDATE media SET {assignments} WHERE id = ?", (*changes.values(), entry["id"]))
            return self._entry(db, entry["id"])

    def get(self, filename):
        """The entry for ``filename``, or None."""
        return self._find(self._db(), self._lookup_name(filename))

    def remove(self, filename, delete_file=False, missing_ok=False):
        """Forget an entry (and with ``delete_file`` delete its file in the same step); answer the entry
        (None when there was none and ``missing_ok``). The file of a recording is not deleted (FileInUse)."""
        name = self._lookup_name(filename)

        def chosen(db):
            if delete_file and self._being_written(name):
                raise FileInUse(f"{name} is being recorded: stop the recording first")
            if missing_ok and self._find(db, name) is None:
                return []
            return [self._existing(db, name)]
        removed = self._forget(chosen, delete_file)
        return removed[0] if removed else None

    def entries(self, kind=None, newest_first=True, limit=None, offset=0, camera=None):
        """The entries as dicts, newest first unless told otherwise; ``offset`` skips that many first.
        ``kind`` and ``camera`` (a camera's name, matched exactly) keep only those entries."""
        conditions, parameters = [], []
        if kind is not None:
            conditions.append("kind = ?")
            parameters.append(check_kind("kind", kind))
        if camera is not None:
            conditions.append("camera = ?")
            parameters.append(_camera_name(camera))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "DESC" if newest_first else "ASC"
        query = f"SELECT * FROM media {where} ORDER BY created {order}, id {order}"
        if limit is not None or offset:
            query += " LIMIT ? OFFSET ?"        # SQLite: LIMIT -1 is no limit
            parameters += [-1 if limit is None else check_number("limit", limit, whole=True),
                           check_number("offset", offset, whole=True, required=True)]
        return [dict(row) for row in self._db().execute(query, parameters)]

    def scan(self, remove_missing=False, read_duration=None):
        """Catalogue media files the catalogue lacks, refresh the size of those whose size on disk
        changed (a recording the catalogue refused at its end, one repaired after a crash), and report
        entries whose file is gone (with remove_missing, drop them). With ``read_duration`` (path ->
        seconds or None), a video added or refreshed, or listed without one (added by hand), gets its
        duration too.

        Answers ``{"added", "refreshed", "missing": [entries], "skipped": [{"filename", "reason"}]}``;
        skipped are files with a media extension whose name the catalogue cannot take. A file being
        recorded (or an empty video, whose recording has not started) is left for its recorder;
        symbolic links are neither listed nor followed.
        """
        added, refreshed, skipped, without_duration = [], [], [], []
        with self._transaction() as db:
            known = {row["filename"]: dict(row) for row in db.execute("SELECT * FROM media")}
            for path in sorted(self.media_dir.iterdir()):
                name, entry = path.name, known.get(path.name)
                stat = self._scannable(path)
                if stat is None or being_written(path):
                    continue
                if entry is not None and entry["size"] == stat.st_size:
                    if entry["kind"] == "video" and entry["duration"] is None:
                        without_duration.append(entry)
                    continue
                if entry is not None:
                    db.execute("UPDATE media SET size = ? WHERE id = ?", (stat.st_size, entry["id"]))
                    refreshed.append(self._entry(db, entry["id"]))
                    continue
                try:
                    media_name(name)
                except MediaNameError as error:
                    skipped.append({"filename": _printable(name), "reason": str(error)})
                    continue
                cursor = db.execute("INSERT INTO media (filename, kind, created, size) VALUES (?, ?, ?, ?)",
                                    (name, guess_kind(name), stat.st_mtime, stat.st_size))
                added.append(self._entry(db, cursor.lastrowid))
            missing = [entry for name, entry in known.items() if not self._file_exists(name)]
            if remove_missing:
                db.executemany("DELETE FROM media WHERE id = ?", [(entry["id"],) for entry in missing])
        if read_duration is not None:
            self._note_durations(added + refreshed + without_duration, read_duration)
        return {"added": added, "refreshed": refreshed, "missing": missing, "skipped": skipped}

    def _scannable(self, path):
        """The stat of a file scan may list: a media file that is a plain file (no link, no folder), not
        hidden or the catalogue's own, and not an empty video whose recording has not started."""
        name = path.name
        if self._ignored(name) or guess_kind(name) is None:
            return None
        stat = regular_file_stat(path)
        if stat is None or (stat.st_size == 0 and guess_kind(name) == "video"):
            return None
        return stat

    def _note_durations(self, entries, read_duration):
        """Read the duration of the videos among ``entries`` (outside the write lock) and store it."""
        durations = []
        for entry in entries:
            if entry["kind"] == "video":
                seconds = read_duration(self.media_dir / entry["filename"])
                if seconds is not None:
                    entry["duration"] = round(seconds, 3)
                    durations.append((entry["duration"], entry["id"]))
        if durations:
            with self._transaction() as db:
                db.executemany("UPDATE media SET duration = ? WHERE id = ?", durations)

    def prune(self, max_age_days=None, max_total_bytes=None, dry_run=False, now=None):
        """Delete the oldest entries and their files: older than max_age_days, then until the files fit
        in max_total_bytes. Answers the entries removed (or, with dry_run, that would be). The file being
        recorded is kept, though its size counts."""
        max_age_days = check_number("max_age_days", max_age_days)
        max_total_bytes = check_number("max_total_bytes", max_total_bytes)
        if max_age_days is None and max_total_bytes is None:
            return []
        now = time.time() if now is None else now

        def chosen(db):
            oldest_first = [dict(row) for row in db.execute("SELECT * FROM media ORDER BY created, id")]
            doomed = []
            if max_age_days is not None:
                cutoff = now - max_age_days * 86400
                doomed = [entry for entry in oldest_first
                          if entry["created"] < cutoff and not self._being_written(entry["filename"])]
            if max_total_bytes is not None:
                doomed_ids = {entry["id"] for entry in doomed}
                kept = [(entry, self._disk_size(entry)) for entry in oldest_first
                        if entry["id"] not in doomed_ids]
                total = sum(size for _, size in kept)
                for entry, size in kept:
                    if total <= max_total_bytes:
                        break
                    if not self._being_written(entry["filename"]):
                        doomed.append(entry)
                        total -= size
            return doomed
        return chosen(self._db()) if dry_run else self._forget(chosen, delete_files=True)

    def new(self):
        """Forget every entry and event; the files stay. Answers how many: {"entries": n, "events": m}."""
        with self._transaction() as db:
            entries = db.execute("DELETE FROM media").rowcount
            events = db.execute("DELETE FROM events").rowcount
        return {"entries": entries, "events": events}

    # -- events -----------------------------------------------------------------------------

    def add_event(self, start, kind, *, end=None, peak_score=None, labels=(), snapshot=None, clip=None,
                  camera=None):
        """Record a detector event (``camera``: the name of the camera that saw it); answers its id."""
        fields = check_fields(EVENT_FIELDS, dict(start=start, kind=kind, end=end, peak_score=peak_score,
                                                 labels=labels, snapshot=snapshot, clip=clip), "add_event")
        fields["camera"] = None if camera is None else _camera_name(camera)
        with self._transaction() as db:
            columns = ", ".join(f'"{key}"' for key in fields)
            cursor = db.execute(f"INSERT INTO events ({columns}) VALUES (?{', ?' * (len(fields) - 1)})",
                                tuple(fields.values()))
            return cursor.lastrowid

    def update_event(self, event_id, /, **fields):
        """Change some of an event's fields (end, peak_score, labels, clip...); answers the event."""
        changes = check_fields(EVENT_FIELDS, fields, "update_event")
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is None:
                raise UnknownEvent(f"there is no event {event_id!r}")
            if changes:
                assignments = ", ".join(f'"{key}" = ?' for key in changes)
                db.execute(f"UPDATE events SET {assignments} WHERE id = ?", (*changes.values(), event_id))
            return _event(db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone())

    def events(self, limit=None, camera=None):
        """The events, newest first, with labels as a list; with ``camera``, only that camera's."""
        query, parameters = "SELECT * FROM events", []
        if camera is not None:
            query += " WHERE camera = ?"
            parameters.append(_camera_name(camera))
        query += " ORDER BY start DESC, id DESC"
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(check_number("limit", limit, whole=True))
        return [_event(row) for row in self._db().execute(query, parameters)]

    def count_events(self, since=None):
        """How many events there are, or how many started at ``since`` (Unix s) or later."""
        if since is None:
            return self._db().execute("SELECT COUNT(*) FROM events").fetchone()[0]
        since = check_number("since", since, required=True)
        return self._db().execute("SELECT COUNT(*) FROM events WHERE start >= ?", (since,)).fetchone()[0]

    def cameras(self):
        """The names of the cameras that made media or saw events, sorted: the choices of a camera filter."""
        rows = self._db().execute("SELECT camera FROM media WHERE camera IS NOT NULL AND camera != '' "
                                  "UNION SELECT camera FROM events WHERE camera IS NOT NULL AND camera != '' "
                                  "ORDER BY camera")
        return [row["camera"] for row in rows]

    # -- connections and transactions --------------------------------------------------------

    def _db(self):
        """This thread's connection, opened on first use."""
        if self._closed:
            raise CatalogueError("the media catalogue is closed")
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._connections.add(connection)
        return connection

    def _connect(self):
        """A new connection. Only the first one, which prepares the schema, may create the database:
        later ones open it read-write or fail, so a media folder that went away (an unplugged disk)
        never gets an empty catalogue in its place."""
        created = self._created
        if created and not self.db_path.exists():
            raise CatalogueError(f"the catalogue {self.db_path} is not there any more") from MediaFolderGone(
                self.media_dir)
        target = f"file:{pathname2url(str(self.db_path))}" + ("?mode=rw" if created else "")
        try:
            connection = sqlite3.connect(target, uri=True, timeout=self.busy_timeout, isolation_level=None,
                                         check_same_thread=False, factory=_Connection)
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            connection.execute("PRAGMA synchronous = NORMAL")      # durable enough with WAL, and faster
        except sqlite3.Error as error:
            raise CatalogueError(f"cannot open the catalogue {self.db_path}: {error}") from (
                _read_only(self.media_dir) or error)
        connection.row_factory = sqlite3.Row
        return connection

    @contextmanager
    def _transaction(self):
        """One write transaction: committed when the body ends, rolled back when it raises."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")       # take the write lock now, so busy_timeout applies
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _forget(self, chosen, delete_files):
        """Delete the entries ``chosen(db)`` picks under the write lock, and with ``delete_files`` their
        files: rows and files change together. Each file is set aside (renamed out of sight) first, put
        back if the rows cannot be deleted, and deleted once they are. On a full disk SQLite cannot even
        write a delete: then the files set aside are deleted first, which frees space, and the delete is
        tried once more. Answers the entries."""
        set_aside = []
        try:
            with self._transaction() as db:
                doomed = chosen(db)
                for entry in doomed if delete_files else ():
                    self._set_aside(entry["filename"], set_aside)
                db.executemany("DELETE FROM media WHERE id = ?", [(entry["id"],) for entry in doomed])
        except BaseException as error:
            if not (set_aside and is_disk_full(error)):
                _put_back(set_aside)
                raise
            _delete_set_aside(set_aside)            # frees the space the delete needs
            self._forget_deleted(doomed, error)
        else:
            _delete_set_aside(set_aside)
        return doomed

    def _forget_deleted(self, doomed, error):
        """The second try of a delete the full disk refused, now that its files are gone: forget the
        entries whose file is gone."""
        gone = [entry for entry in doomed if not self._file_exists(entry["filename"])]
        names = ", ".join(entry["filename"] for entry in gone)
        try:
            with self._transaction() as db:
                db.executemany("DELETE FROM media WHERE id = ? AND filename = ?",
                               [(entry["id"], entry["filename"]) for entry in gone])
        except (sqlite3.Error, CatalogueError) as again:
            raise CatalogueError(f"deleted {names} to free space, but the catalogue still lists them ({again}); "
                                 f"the next start (or database_manager.py scan --remove-missing) forgets "
                                 f"them") from again
        log.warning("the disk was full (%s): deleted %s first, then forgot them", error, names)

    def _set_aside(self, name, set_aside):
        """Move a file to be deleted out of sight (the rename is atomic); a missing file is fine. The
        catalogue's own files and hidden ones are never deleted, whatever a row says."""
        try:
            original = media_path(self.media_dir, name)
        except ValueError:          # an original-catalogue name outside the folder, or with a NUL
            return
        if self._ignored(name):
            log.warning("%s is not deleted: it is the catalogue's own or a hidden file, not media", name)
            return
        hidden = original.with_name(f"{TRASH_PREFIX}{uuid.uuid4().hex}")
        try:
            os.rename(original, hidden)
        except FileNotFoundError:
            return
        except OSError as error:
            raise CatalogueError(f"cannot delete {name}: {error.strerror}") from error
        set_aside.append((hidden, original))

    def _prepare(self):
        """WAL mode, then the schema: created, or migrated from the original ``media(id, date, fileName)``
        or from version 1 (events without their camera), in one transaction that keeps every row."""
        statements, version = _schema()
        db = self._db()
        self._created = True
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            current = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise CatalogueError(f"{self.db_path} is not a usable SQLite database: {error}") from error
        if mode.lower() != "wal":
            log.warning("%s: journal mode is %s, not WAL", self.db_path, mode)
        if current == version:
            return
        with self._transaction() as db:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            if current > version:
                raise CatalogueError(f"{self.db_path} has schema version {current}, newer than this "
                                     f"program's {version}; update the program")
            columns = {row["name"].lower() for row in db.execute("PRAGMA table_info(media)")}
            original = current == 0 and bool(columns) and "kind" not in columns
            if original:
                if not {"date", "filename"} <= columns:
                    raise CatalogueError(f"{self.db_path} has a media table with unknown columns "
                                         f"({', '.join(sorted(columns))}); move it away to start afresh")
                db.execute("ALTER TABLE media RENAME TO media_original")
            _add_missing_columns(db)
            for statement in statements:
                db.execute(statement)
            if original:
                self._copy_original_rows(db)
                db.execute("DROP TABLE media_original")

    def _copy_original_rows(self, db):
        """Each file of the original catalogue becomes one entry (filename is UNIQUE now); the rows that
        repeated its name are kept in its note, with their ids and dates."""
        rows_by_name, not_media = {}, []
        for row in db.execute("SELECT id, date, filename FROM media_original ORDER BY id").fetchall():
            name = (row["filename"] or "").strip() or f"unnamed-{row['id']}"
            if self._catalogue_file(name):
                not_media.append(f"row {row['id']} ({name!r}, dated {row['date']!r})")
                continue
            rows_by_name.setdefault(name, []).append(row)
        if not_media:       # listed, a delete through it would remove the catalogue itself
            log.warning("%s: not migrated, because they name the catalogue's own files: %s",
                        self.db_path, "; ".join(not_media))
        for name, (row, *repeats) in rows_by_name.items():
            notes = [] if (row["filename"] or "").strip() else ["the original catalogue row had no file name"]
            if repeats:
                notes.append(f"the original catalogue listed {name} again as "
                             + ", ".join(f"row {repeat['id']} dated {repeat['date']!r}" for repeat in repeats))
            stat = self._stat_if_inside(name)
            created = parse_date(row["date"])
            if created is None:
                created = stat.st_mtime if stat else time.time()
            db.execute("INSERT INTO media (id, filename, kind, created, size, note) VALUES (?, ?, ?, ?, ?, ?)",
                       (row["id"], name, guess_kind(name) or "picture", created, stat.st_size if stat else None,
                        "; ".join(notes) or None))
        log.info("%s: migrated %d entries from the original catalogue", self.db_path, len(rows_by_name))
        repeated = [name for name, rows in rows_by_name.items() if len(rows) > 1]
        if repeated:
            log.warning("%s: %d rows repeated a file name already catalogued (%s); each is kept in the note of "
                        "that file's entry", self.db_path, sum(len(rows_by_name[name]) - 1 for name in repeated),
                        ", ".join(repeated))

    # -- helpers -----------------------------------------------------------------------------

    def _store(self, name, fields, replace):
        """Insert the entry of a file in the folder, or with ``replace`` overwrite the one of that name."""
        path = media_path(self.media_dir, name)
        with self._transaction() as db:
            stat = regular_file_stat(path)
            if stat is None and os.path.lexists(path):
                raise MissingFile(f"{name} in the media folder is not a file (a symbolic link or a folder); "
                                  f"the catalogue lists only files")
            if stat is None:
                raise MissingFile(f"{name} is not in the media folder {self.media_dir}")
            existing = self._find(db, name)
            if existing is not None and not replace:
                raise DuplicateMedia(f"{name} is already in the catalogue")
            fields = check_fields(MEDIA_FIELDS, dict(
                fields, kind=fields.get("kind") or guess_kind(name),
                created=stat.st_mtime if fields.get("created") is None else fields["created"],
                size=stat.st_size if fields.get("size") is None else fields["size"]), "add")
            if existing is not None:
                fields.update({key: None for key in MEDIA_FIELDS if key not in fields})
                assignments = ", ".join(f"{key} = ?" for key in fields)
                db.execute(f"UPDATE media SET {assignments} WHERE id = ?", (*fields.values(), existing["id"]))
                return self._entry(db, existing["id"])
            cursor = db.execute(f"INSERT INTO media (filename, {', '.join(fields)}) "
                                f"VALUES (?{', ?' * len(fields)})", (name, *fields.values()))
            return self._entry(db, cursor.lastrowid)

    def _being_written(self, name):
        try:
            return being_written(media_path(self.media_dir, name))
        except ValueError:          # an original-catalogue name outside the folder, or with a NUL
            return False

    def _lookup_name(self, name):
        """A name to look up: strictly checked, except that a catalogued name from the original
        catalogue (say with a ':') may be used as it is when it is still a plain name in the folder."""
        try:
            return media_name(name)
        except MediaNameError:
            if not isinstance(name, str) or not _plain(name) or self._find(self._db(), name) is None:
                raise
            media_path(self.media_dir, name)
            return name

    def _find(self, db, name):
        row = db.execute("SELECT * FROM media WHERE filename = ?", (name,)).fetchone()
        return dict(row) if row else None

    def _existing(self, db, name):
        entry = self._find(db, name)
        if entry is None:
            raise UnknownMedia(f"{name} is not in the catalogue")
        return entry

    def _entry(self, db, entry_id):
        return dict(db.execute("SELECT * FROM media WHERE id = ?", (entry_id,)).fetchone())

    def _ignored(self, name):
        """Hidden files and the catalogue's own are no media, whatever their extension."""
        return name.startswith(".") or self._catalogue_file(name)

    def _catalogue_file(self, name):
        """media.db and its -wal, -shm and -journal files."""
        return name.startswith(DB_NAME) or name.startswith(self.db_path.name)

    def _stat_if_inside(self, name):
        """The stat of the plain media file ``name`` in the folder; None for anything else (a link, the
        catalogue's own files)."""
        if self._ignored(name):
            return None
        try:
            return regular_file_stat(media_path(self.media_dir, name)) if _plain(name) else None
        except (ValueError, OSError):        # MediaNameError, or a NUL byte in an original-catalogue name
            return None

    def _file_exists(self, name):
        return self._stat_if_inside(name) is not None

    def _disk_size(self, entry):
        stat = self._stat_if_inside(entry["filename"])
        return stat.st_size if stat else 0


def _put_back(set_aside):
    """Give each set-aside file its name again, unless a new file took the name meanwhile (unlike a
    rename, give_new_name never replaces one): then it stays hidden and the log says where."""
    for hidden, original in reversed(set_aside):
        try:
            give_new_name(hidden, original)
            with suppress(FileNotFoundError):
                os.unlink(hidden)
        except MediaExists:
            log.error("could not put %s back: a new file has that name; the old one is %s", original.name, hidden)
        except OSError as error:
            log.error("could not put %s back from %s: %s", original.name, hidden, error)


def _delete_set_aside(set_aside):
    """Delete the files set aside, and their thumbnails: the one place media files are deleted."""
    for hidden, original in set_aside:
        remove_thumbnail(original.parent, original.name)
        try:
            os.unlink(hidden)
        except OSError as error:
            log.error("removed %s from the catalogue but could not delete the file %s: %s",
                      original.name, hidden, error)


REOPEN_S = 5.0      # how often a catalogue that could not be opened is tried again, at the most


def _read_only(folder):
    """An OSError(EROFS) when ``folder`` lies on a read-only file system (SQLite only says it cannot
    open the database), else None."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return None
    return OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder)) if read_only else None


def open_catalogue(db_path, media_dir, retry_s=None):
    """The MediaCatalogue, or, when it cannot be opened now (its folder read-only or gone, media.db
    damaged), a stand-in that answers each use with the reason (a CatalogueError) and tries to open it
    again at most every ``retry_s`` seconds: the server starts and streams, and the catalogue comes
    back once it can, without a restart."""
    try:
        return MediaCatalogue(db_path, media_dir)
    except CatalogueError as error:
        log.error("the media catalogue cannot be opened now (%s); snapshots, recordings and the lists wait "
                  "for it, the stream goes on", error)
        return _CatalogueOpenedLater(db_path, media_dir, error, REOPEN_S if retry_s is None else retry_s)


class _CatalogueOpenedLater:
    """A MediaCatalogue that could not be opened yet: every method tries to open it (at most every
    ``retry_s``), then runs on it; until then, raises the reason."""

    def __init__(self, db_path, media_dir, error, retry_s):
        self._arguments = (db_path, media_dir)
        self._error, self._retry_s = error, retry_s
        self._tried_at = time.monotonic()
        self._catalogue = None
        self._closed = False
        self._lock = threading.Lock()

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._opened(), name)

    def close(self):
        with self._lock:
            self._closed = True
            if self._catalogue is not None:
                self._catalogue.close()

    def _opened(self):
        with self._lock:
            if self._catalogue is None and not self._closed and time.monotonic() >= self._tried_at + self._retry_s:
                self._tried_at = time.monotonic()
                try:
                    self._catalogue = MediaCatalogue(*self._arguments)
                    log.info("the media catalogue could be opened now")
                except CatalogueError as error:
                    self._error = error
            if self._catalogue is None:
                raise CatalogueError(f"the media catalogue could not be opened: {self._error}") from self._error
            return self._catalogue


# Columns later versions added to a table, that an older catalogue gets (before the schema's indexes on them).
_ADDED_COLUMNS = {"events": {"camera": "TEXT"}}      # version 2


def _add_missing_columns(db):
    for table, added in _ADDED_COLUMNS.items():
        present = {row["name"].lower() for row in db.execute(f"PRAGMA table_info({table})")}
        for column, kind in added.items():
            if present and column not in present:       # a table not there yet is made whole by the schema
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                log.info("the catalogue's %s table has a %s column now (schema version 2)", table, column)


def _camera_name(value):
    """A camera's name as stored and filtered by: text."""
    if not isinstance(value, str):
        raise InvalidValue(f"camera must be a camera's name (text), not {value!r}")
    return value


def _plain(name):
    return (name.strip() == name and name not in ("", ".", "..") and ".." not in name
            and not any(char in name for char in "/\\") and not any(ord(char) < 32 for char in name))


def _printable(name):
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _event(row):
    event = dict(row)
    event["labels"] = json.loads(event["labels"]) if event["labels"] else []
    return event
