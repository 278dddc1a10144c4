"""The media catalogue library: schema, migration, entries, files, scan, prune, events."""
import contextlib
import datetime
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from camera_server import failures
from camera_server.media import catalogue as media_catalogue
from camera_server.media import fields as catalogue_fields
from camera_server.media.catalogue import (CatalogueError, DuplicateMedia, FileInUse, InvalidValue, MediaCatalogue,
                                           MissingFile, UnknownEvent, UnknownMedia)
from camera_server.media.files import TRASH_PREFIX, MediaNameError, create_locked
from conftest import ROOT

BAD_NAMES = ["../escape.jpg", "a/b.jpg", "/etc/passwd", "..", "x\x00.jpg", "a\\b.jpg", "", "   ", "noextension",
             "notes.txt"]


def put(folder, name, data=b"data", mtime=None):
    path = folder / name
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def make_original_db(path, rows):
    """A media.db as the original project made it: media(id, date, fileName), no version."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE media (id INTEGER PRIMARY KEY, date TEXT, fileName TEXT)")
        db.executemany("INSERT INTO media (id, date, fileName) VALUES (?, ?, ?)", rows)
    db.close()


def raw(path, query, parameters=()):
    db = sqlite3.connect(path)
    try:
        return db.execute(query, parameters).fetchall()
    finally:
        db.close()


@pytest.fixture
def media_dir(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


@pytest.fixture
def db_path(media_dir):
    return media_dir / "media.db"


@pytest.fixture
def catalogue(db_path, media_dir):
    opened = MediaCatalogue(db_path, media_dir)
    yield opened
    opened.close()


# -- schema, WAL, versions -----------------------------------------------------------------------


def test_a_new_catalogue_has_the_schema_its_version_and_wal(catalogue, db_path):
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(db_path, "PRAGMA user_version") == [(2,)]
    tables = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"media", "events"} <= tables
    indexes = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"media_created", "media_camera", "events_start", "events_camera"} <= indexes
    assert catalogue._db().execute("PRAGMA busy_timeout").fetchone()[0] == 10000


def test_the_schema_file_runs_twice_without_harm(tmp_path):
    db = sqlite3.connect(tmp_path / "twice.db")
    script = media_catalogue.SCHEMA_PATH.read_text()
    db.executescript(script)
    db.execute("INSERT INTO media (filename, kind, created) VALUES ('a.jpg', 'picture', 1)")
    db.commit()
    db.executescript(script)
    assert db.execute("SELECT filename FROM media").fetchall() == [("a.jpg",)]
    db.close()


def test_reopening_changes_nothing(db_path, media_dir):
    put(media_dir, "a.jpg")
    with MediaCatalogue(db_path, media_dir) as first:
        first.add("a.jpg", note="kept")
        before = first.entries()
    with MediaCatalogue(db_path, media_dir) as second:
        assert second.entries() == before


def test_a_kind_outside_the_list_is_refused_by_the_schema_too(catalogue, db_path):
    with pytest.raises(sqlite3.IntegrityError):
        with sqlite3.connect(db_path) as db:
            db.execute("INSERT INTO media (filename, kind, created) VALUES ('x.jpg', 'sound', 1)")


def test_a_newer_schema_version_is_refused(db_path, media_dir):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(CatalogueError, match="newer"):
        MediaCatalogue(db_path, media_dir)


def test_a_file_that_is_not_a_database_is_refused(db_path, media_dir):
    db_path.write_bytes(b"this is not sqlite, just some text " * 50)
    with pytest.raises(CatalogueError, match="is not a database"):
        MediaCatalogue(db_path, media_dir)


def test_a_missing_media_folder_is_refused(tmp_path):
    with pytest.raises(CatalogueError, match="does not exist"):
        MediaCatalogue(tmp_path / "media.db", tmp_path / "nowhere")


# -- migration from version 1 (events without their camera) -----------------------------------------

VERSION_1_SCHEMA = """
CREATE TABLE media (id INTEGER PRIMARY KEY, filename TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('picture', 'video', 'change', 'motion')), created REAL NOT NULL,
    size INTEGER, duration REAL, width INTEGER, height INTEGER, camera TEXT, note TEXT);
CREATE INDEX media_created ON media (created);
CREATE TABLE events (id INTEGER PRIMARY KEY, start REAL NOT NULL, "end" REAL, kind TEXT NOT NULL,
    peak_score REAL, labels TEXT, snapshot TEXT, clip TEXT);
CREATE INDEX events_start ON events (start);
INSERT INTO media (id, filename, kind, created, size, camera) VALUES (4, 'porch.jpg', 'picture', 10, 5, 'porch');
INSERT INTO events (id, start, "end", kind, peak_score, labels) VALUES (8, 20, 25, 'motion', 0.5, '["cat"]');
INSERT INTO events (id, start, kind) VALUES (9, 30, 'change');
PRAGMA user_version = 1;
"""


def make_version_1_db(path):
    db = sqlite3.connect(path)
    db.executescript(VERSION_1_SCHEMA)
    db.close()


def test_a_version_1_catalogue_is_migrated_in_place_keeping_every_row(db_path, media_dir):
    make_version_1_db(db_path)
    with MediaCatalogue(db_path, media_dir) as catalogue:
        assert [(entry["id"], entry["filename"], entry["camera"]) for entry in catalogue.entries()] == [
            (4, "porch.jpg", "porch")]
        assert [(event["id"], event["kind"], event["labels"], event["camera"]) for event in catalogue.events()] == [
            (9, "change", [], None), (8, "motion", ["cat"], None)]
        catalogue.add_event(40.0, "motion", camera="garden")
        assert [event["id"] for event in catalogue.events(camera="garden")] == [10]
    assert raw(db_path, "PRAGMA user_version") == [(2,)]
    indexes = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"media_camera", "events_camera"} <= indexes
    with MediaCatalogue(db_path, media_dir) as again:          # opened again: nothing more to do
        assert len(again.events()) == 3


def test_a_version_1_migration_that_fails_leaves_it_untouched(db_path, media_dir, monkeypatch):
    make_version_1_db(db_path)

    def failing_statements():            # the column is added, then a statement fails: all is rolled back
        statements, version = schema()
        return [*statements[:-1], "CREATE INDEX broken ON nowhere (nothing)", statements[-1]], version
    schema = media_catalogue._schema
    monkeypatch.setattr(media_catalogue, "_schema", failing_statements)
    with pytest.raises(sqlite3.OperationalError):
        MediaCatalogue(db_path, media_dir)
    assert raw(db_path, "PRAGMA user_version") == [(1,)]
    assert "camera" not in {row[1] for row in raw(db_path, "PRAGMA table_info(events)")}
    assert raw(db_path, "SELECT id FROM events ORDER BY id") == [(8,), (9,)]


# -- migration from the original media(id, date, fileName) -----------------------------------------


def test_an_original_database_is_migrated_in_place_without_losing_rows(db_path, media_dir):
    put(media_dir, "snap.jpg", b"12345")
    put(media_dir, "clip.mp4", b"1234567", mtime=1_500_000_000)
    put(media_dir, "2019-04-12 13:45:12.png", b"png")
    make_original_db(db_path, [
        (3, "2019-04-12 13:45:12", "snap.jpg"),
        (7, "garbage date", "clip.mp4"),
        (9, "1555076712", "gone.avi"),
        (12, "04/12/2019", "2019-04-12 13:45:12.png"),
        (15, None, "gone-without-date.webm"),
    ])
    with MediaCatalogue(db_path, media_dir) as catalogue:
        by_name = {entry["filename"]: entry for entry in catalogue.entries()}
        assert {entry["id"] for entry in by_name.values()} == {3, 7, 9, 12, 15}
        snap = by_name["snap.jpg"]
        assert (snap["id"], snap["kind"], snap["size"]) == (3, "picture", 5)
        assert snap["created"] == datetime.datetime(2019, 4, 12, 13, 45, 12).timestamp()
        clip = by_name["clip.mp4"]
        assert (clip["kind"], clip["size"], clip["created"]) == ("video", 7, 1_500_000_000)
        gone = by_name["gone.avi"]
        assert (gone["kind"], gone["size"], gone["created"]) == ("video", None, 1555076712.0)
        assert by_name["2019-04-12 13:45:12.png"]["created"] == datetime.datetime(2019, 4, 12).timestamp()
        assert by_name["gone-without-date.webm"]["created"] > 1_600_000_000      # now
        # A name from the original catalogue (':' is no longer allowed) can still be removed.
        catalogue.remove("2019-04-12 13:45:12.png", delete_file=True)
        assert not (media_dir / "2019-04-12 13:45:12.png").exists()
    assert raw(db_path, "PRAGMA user_version") == [(2,)]
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    tables = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"media", "events"}
    with MediaCatalogue(db_path, media_dir) as again:
        assert len(again.entries()) == 4


def test_a_migration_that_fails_leaves_the_original_untouched(db_path, media_dir, monkeypatch):
    rows = [(1, "2019-01-01 10:00:00", "a.jpg"), (2, "2019-01-02 10:00:00", "b.jpg")]
    make_original_db(db_path, rows)
    calls = []

    def failing_parse(value):
        calls.append(value)
        if len(calls) == 2:
            raise RuntimeError("power cut in the middle of the migration")
        return 1.0
    monkeypatch.setattr(media_catalogue, "parse_date", failing_parse)
    with pytest.raises(RuntimeError):
        MediaCatalogue(db_path, media_dir)
    assert raw(db_path, "SELECT id, date, fileName FROM media ORDER BY id") == rows
    assert raw(db_path, "PRAGMA user_version") == [(0,)]
    assert raw(db_path, "SELECT name FROM sqlite_master WHERE name IN ('events', 'media_original')") == []


def test_original_rows_without_a_name_or_with_a_repeated_name_are_kept(db_path, media_dir, caplog):
    make_original_db(db_path, [(1, "2019-01-01", "a.jpg"), (2, "2019-01-02", "a.jpg"), (3, "2019-01-03", None),
                               (4, "2019-01-04 10:00:00", " a.jpg"), (5, None, "b.jpg")])
    with MediaCatalogue(db_path, media_dir) as catalogue:
        entries = {entry["id"]: entry for entry in catalogue.entries()}
    assert sorted(entries) == [1, 3, 5]                 # filename is unique: one entry a file
    assert entries[1]["filename"] == "a.jpg" and entries[1]["created"] == datetime.datetime(2019, 1, 1).timestamp()
    assert entries[1]["note"] == ("the original catalogue listed a.jpg again as row 2 dated '2019-01-02', "
                                  "row 4 dated '2019-01-04 10:00:00'")
    assert entries[3]["filename"] == "unnamed-3" and "no file name" in entries[3]["note"]
    assert entries[5]["note"] is None
    assert "2 rows repeated a file name already catalogued (a.jpg); each is kept in the note" in caplog.text


@pytest.mark.parametrize("text, expected", [
    ("2019-04-12 13:45:12", datetime.datetime(2019, 4, 12, 13, 45, 12)),
    ("2019-04-12T13:45:12.5", datetime.datetime(2019, 4, 12, 13, 45, 12, 500000)),
    ("2019-04-12_13-45-12", datetime.datetime(2019, 4, 12, 13, 45, 12)),
    ("Fri Apr 12 13:45:12 2019", datetime.datetime(2019, 4, 12, 13, 45, 12)),
    ("12.04.2019", datetime.datetime(2019, 4, 12)),
])
def test_dates_are_read_leniently(text, expected):
    assert catalogue_fields.parse_date(text) == expected.timestamp()


@pytest.mark.parametrize("text", [None, "", "yesterday", "2019", "13/45/2019"])
def test_unreadable_dates_give_none(text):
    assert catalogue_fields.parse_date(text) is None


# -- entries -----------------------------------------------------------------------------------


def test_add_takes_kind_size_and_time_from_the_file(catalogue, media_dir):
    put(media_dir, "a.jpeg", b"abc", mtime=1_600_000_000)
    entry = catalogue.add("a.jpeg")
    assert entry == {"id": entry["id"], "filename": "a.jpeg", "kind": "picture", "created": 1_600_000_000,
                     "size": 3, "duration": None, "width": None, "height": None, "camera": None, "note": None}
    put(media_dir, "b.webm")
    video = catalogue.add("b.webm", camera="demo", duration=3.5, width=640, height=480, created=5.0)
    assert (video["kind"], video["camera"], video["duration"], video["width"], video["created"]) == \
        ("video", "demo", 3.5, 640, 5.0)
    put(media_dir, "c.jpg")
    assert catalogue.add("c.jpg", "change")["kind"] == "change"
    assert catalogue.get("a.jpeg") == entry


def test_add_needs_the_file(catalogue):
    with pytest.raises(MissingFile) as caught:
        catalogue.add("absent.jpg")
    assert isinstance(caught.value, FileNotFoundError)
    assert catalogue.entries() == []


def test_add_twice_is_a_duplicate(catalogue, media_dir):
    put(media_dir, "a.jpg")
    catalogue.add("a.jpg")
    with pytest.raises(DuplicateMedia):
        catalogue.add("a.jpg")
    assert len(catalogue.entries()) == 1


@pytest.mark.parametrize("fields", [{"kind": "sound"}, {"size": -1}, {"width": 1.5}, {"created": "today"},
                                    {"duration": float("nan")}, {"note": 5}])
def test_add_refuses_bad_values(catalogue, media_dir, fields):
    put(media_dir, "a.jpg")
    with pytest.raises(InvalidValue):
        catalogue.add("a.jpg", **fields)
    assert catalogue.entries() == []


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_everywhere(catalogue, media_dir, tmp_path, name):
    put(tmp_path, "escape.jpg")
    for action in (catalogue.add, catalogue.get, catalogue.remove, catalogue.update):
        with pytest.raises(MediaNameError):
            action(name)
    with pytest.raises(MediaNameError):
        catalogue.remove(name, delete_file=True)
    with pytest.raises(MediaNameError):
        catalogue.add_event(1.0, "motion", snapshot=name)
    assert (tmp_path / "escape.jpg").exists()
    assert catalogue.entries() == []


def test_update_changes_some_fields(catalogue, media_dir):
    put(media_dir, "a.mp4")
    catalogue.add("a.mp4")
    updated = catalogue.update("a.mp4", duration=12.5, note="garden", size=99)
    assert (updated["duration"], updated["note"], updated["size"], updated["kind"]) == \
        (12.5, "garden", 99, "video")
    assert catalogue.get("a.mp4") == updated
    with pytest.raises(InvalidValue, match="filename"):
        catalogue.update("a.mp4", filename="b.mp4")
    with pytest.raises(InvalidValue):
        catalogue.update("a.mp4", created=None)
    with pytest.raises(UnknownMedia):
        catalogue.update("other.mp4", note="x")


def test_get_answers_none_for_an_unknown_file(catalogue):
    assert catalogue.get("nothing.jpg") is None


def test_entries_are_newest_first_and_filter_by_kind(catalogue, media_dir):
    for created, name in [(30, "new.jpg"), (10, "old.mp4"), (20, "middle.jpg")]:
        put(media_dir, name)
        catalogue.add(name, created=created)
    assert [entry["filename"] for entry in catalogue.entries()] == ["new.jpg", "middle.jpg", "old.mp4"]
    oldest_two = catalogue.entries(newest_first=False, limit=2)
    assert [entry["filename"] for entry in oldest_two] == ["old.mp4", "middle.jpg"]
    assert [entry["filename"] for entry in catalogue.entries(kind="video")] == ["old.mp4"]
    with pytest.raises(InvalidValue):
        catalogue.entries(kind="sound")


def test_entries_and_events_filter_by_camera(catalogue, media_dir):
    for created, name, camera in [(30, "porch-1.jpg", "porch"), (20, "garden.mp4", "garden"),
                                  (10, "porch-2.jpg", "porch"), (5, "by-hand.jpg", None)]:
        put(media_dir, name)
        catalogue.add(name, created=created, camera=camera)
    catalogue.add_event(100.0, "motion", camera="porch")
    catalogue.add_event(200.0, "change", camera="garden")
    catalogue.add_event(300.0, "change")

    assert [entry["filename"] for entry in catalogue.entries(camera="porch")] == ["porch-1.jpg", "porch-2.jpg"]
    assert [entry["filename"] for entry in catalogue.entries(camera="porch", kind="video")] == []
    assert [entry["filename"] for entry in catalogue.entries(camera="porch", limit=1, offset=1)] == ["porch-2.jpg"]
    assert catalogue.entries(camera="attic") == []             # a camera that made nothing yet
    assert len(catalogue.entries()) == 4
    assert [(event["start"], event["camera"]) for event in catalogue.events(camera="garden")] == [(200.0, "garden")]
    assert [event["camera"] for event in catalogue.events()] == [None, "garden", "porch"]
    assert catalogue.events(camera="attic", limit=5) == []
    with pytest.raises(InvalidValue):
        catalogue.entries(camera=3)
    with pytest.raises(InvalidValue):
        catalogue.add_event(1.0, "motion", camera=["porch"])


def test_cameras_are_the_names_in_media_and_events_sorted(catalogue, media_dir):
    assert catalogue.cameras() == []
    put(media_dir, "a.jpg")
    put(media_dir, "b.jpg")
    put(media_dir, "c.jpg")
    catalogue.add("a.jpg", camera="porch")
    catalogue.add("b.jpg", camera="garden")
    catalogue.add("c.jpg")                                      # no camera: not a choice
    catalogue.add_event(1.0, "motion", camera="attic")
    catalogue.add_event(2.0, "motion", camera="porch")
    assert catalogue.cameras() == ["attic", "garden", "porch"]


def test_entries_skip_an_offset_in_the_query(catalogue, media_dir):
    for created in range(5):
        put(media_dir, f"p{created}.jpg")
        catalogue.add(f"p{created}.jpg", created=created)
    assert [entry["filename"] for entry in catalogue.entries(limit=2, offset=1)] == ["p3.jpg", "p2.jpg"]
    assert [entry["filename"] for entry in catalogue.entries(offset=3)] == ["p1.jpg", "p0.jpg"]
    assert catalogue.entries(limit=2, offset=5) == []
    with pytest.raises(InvalidValue):
        catalogue.entries(offset=-1)


# -- remove: the row and the file go together ------------------------------------------------------


def test_remove_keeps_the_file_unless_asked(catalogue, media_dir):
    put(media_dir, "a.jpg")
    put(media_dir, "b.jpg")
    catalogue.add("a.jpg")
    catalogue.add("b.jpg")
    assert catalogue.remove("a.jpg")["filename"] == "a.jpg"
    assert (media_dir / "a.jpg").exists()
    catalogue.remove("b.jpg", delete_file=True)
    assert not (media_dir / "b.jpg").exists()
    assert catalogue.entries() == []
    assert [name for name in os.listdir(media_dir) if name.startswith(".")] == []


def test_removing_an_unknown_file_is_a_key_error(catalogue, media_dir):
    put(media_dir, "a.jpg")
    with pytest.raises(UnknownMedia) as caught:
        catalogue.remove("a.jpg", delete_file=True)
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == "a.jpg is not in the catalogue"
    assert (media_dir / "a.jpg").exists()


def test_remove_with_the_file_already_gone_forgets_the_row(catalogue, media_dir):
    put(media_dir, "a.jpg")
    catalogue.add("a.jpg")
    (media_dir / "a.jpg").unlink()
    catalogue.remove("a.jpg", delete_file=True)
    assert catalogue.entries() == []


def test_a_file_that_cannot_be_deleted_keeps_its_row(catalogue, media_dir, monkeypatch):
    put(media_dir, "a.jpg")
    catalogue.add("a.jpg")

    def refuse(source, target):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(media_catalogue.os, "rename", refuse)
    with pytest.raises(CatalogueError, match="cannot delete a.jpg: Permission denied"):
        catalogue.remove("a.jpg", delete_file=True)
    monkeypatch.undo()
    assert catalogue.get("a.jpg") is not None and (media_dir / "a.jpg").exists()


def test_a_row_that_cannot_be_deleted_keeps_its_file(catalogue, media_dir, db_path):
    put(media_dir, "a.jpg", b"precious")
    catalogue.add("a.jpg")
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE DELETE ON media BEGIN SELECT RAISE(ABORT, 'refused'); END")
    db.close()
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        catalogue.remove("a.jpg", delete_file=True)
    assert (media_dir / "a.jpg").read_bytes() == b"precious"
    assert catalogue.get("a.jpg") is not None
    assert [name for name in os.listdir(media_dir) if name.startswith(".partial")] == []


# -- scan ----------------------------------------------------------------------------------------


def test_scan_catalogues_new_files_and_reports_missing_ones(catalogue, media_dir, db_path):
    put(media_dir, "known.jpg")
    put(media_dir, "lost.mp4")
    catalogue.add("known.jpg")
    catalogue.add("lost.mp4")
    (media_dir / "lost.mp4").unlink()
    put(media_dir, "new.jpg", b"12", mtime=1_650_000_000)
    put(media_dir, "film.MP4")
    for ignored in (".partial-abc123", ".gitkeep", "media.db-journal", "notes.txt", ".hidden.jpg"):
        put(media_dir, ignored)
    (media_dir / "folder.jpg").mkdir()
    put(media_dir, "odd:name.jpg")

    found = catalogue.scan()
    assert sorted(entry["filename"] for entry in found["added"]) == ["film.MP4", "new.jpg"]
    new = catalogue.get("new.jpg")
    assert (new["kind"], new["size"], new["created"]) == ("picture", 2, 1_650_000_000)
    assert catalogue.get("film.MP4")["kind"] == "video"
    assert [entry["filename"] for entry in found["missing"]] == ["lost.mp4"]
    assert [skipped["filename"] for skipped in found["skipped"]] == ["odd:name.jpg"]
    assert catalogue.get("lost.mp4") is not None

    again = catalogue.scan(remove_missing=True)
    assert again["added"] == [] and [entry["filename"] for entry in again["missing"]] == ["lost.mp4"]
    assert catalogue.get("lost.mp4") is None
    assert catalogue.scan() == {"added": [], "refreshed": [], "missing": [], "skipped": again["skipped"]}


# -- prune ---------------------------------------------------------------------------------------


def add_aged(catalogue, media_dir, name, days_old, size, now):
    put(media_dir, name, b"x" * size)
    return catalogue.add(name, created=now - days_old * 86400)


def test_prune_by_age_deletes_old_files_and_rows(catalogue, media_dir):
    now = 2_000_000_000
    add_aged(catalogue, media_dir, "old.jpg", 10, 5, now)
    add_aged(catalogue, media_dir, "older.mp4", 20, 5, now)
    add_aged(catalogue, media_dir, "fresh.jpg", 1, 5, now)

    planned = catalogue.prune(max_age_days=7, dry_run=True, now=now)
    assert [entry["filename"] for entry in planned] == ["older.mp4", "old.jpg"]
    assert len(catalogue.entries()) == 3 and (media_dir / "old.jpg").exists()

    removed = catalogue.prune(max_age_days=7, now=now)
    assert removed == planned
    assert [entry["filename"] for entry in catalogue.entries()] == ["fresh.jpg"]
    assert not (media_dir / "old.jpg").exists() and not (media_dir / "older.mp4").exists()
    assert (media_dir / "fresh.jpg").exists()


def test_prune_by_size_removes_the_oldest_until_it_fits(catalogue, media_dir):
    now = 2_000_000_000
    for days, name in [(4, "a.jpg"), (3, "b.jpg"), (2, "c.jpg"), (1, "d.jpg")]:
        add_aged(catalogue, media_dir, name, days, 100, now)
    assert [entry["filename"] for entry in catalogue.prune(max_total_bytes=250, dry_run=True, now=now)] == \
        ["a.jpg", "b.jpg"]
    assert len(catalogue.entries()) == 4
    assert [entry["filename"] for entry in catalogue.prune(max_total_bytes=250, now=now)] == ["a.jpg", "b.jpg"]
    assert sorted(os.listdir(media_dir)) == ["c.jpg", "d.jpg", "media.db", "media.db-shm", "media.db-wal"]
    assert catalogue.prune(max_total_bytes=250, now=now) == []
    assert catalogue.prune() == []


def test_prune_by_age_and_size_together(catalogue, media_dir):
    now = 2_000_000_000
    add_aged(catalogue, media_dir, "ancient.jpg", 100, 10, now)
    add_aged(catalogue, media_dir, "big.mp4", 2, 1000, now)
    add_aged(catalogue, media_dir, "small.jpg", 1, 10, now)
    removed = catalogue.prune(max_age_days=30, max_total_bytes=500, now=now)
    assert [entry["filename"] for entry in removed] == ["ancient.jpg", "big.mp4"]


# -- new, events, threads, close ---------------------------------------------------------------


def test_new_forgets_everything_but_keeps_the_files(catalogue, media_dir):
    put(media_dir, "a.jpg")
    catalogue.add("a.jpg")
    catalogue.add_event(1.0, "motion")
    assert catalogue.new() == {"entries": 1, "events": 1}
    assert catalogue.entries() == [] and catalogue.events() == []
    assert (media_dir / "a.jpg").exists()


def test_events_are_stored_updated_and_listed_newest_first(catalogue):
    first = catalogue.add_event(100.0, "motion", peak_score=0.4, labels=["person"], snapshot="m.jpg")
    second = catalogue.add_event(200.0, "change")
    updated = catalogue.update_event(first, end=110.0, labels=("person", "cat"), clip="m.mp4")
    assert updated == {"id": first, "start": 100.0, "end": 110.0, "kind": "motion", "peak_score": 0.4,
                       "labels": ["person", "cat"], "snapshot": "m.jpg", "clip": "m.mp4", "camera": None}
    assert [event["id"] for event in catalogue.events()] == [second, first]
    assert catalogue.events(limit=1)[0]["labels"] == []
    with pytest.raises(UnknownEvent):
        catalogue.update_event(999, end=1.0)
    with pytest.raises(InvalidValue):
        catalogue.add_event(1.0, "motion", labels="person")
    with pytest.raises(InvalidValue):
        catalogue.update_event(first, start=None)


def test_each_thread_uses_its_own_connection(catalogue, media_dir):
    put(media_dir, "main.jpg")
    catalogue.add("main.jpg")
    seen, errors = [], []

    def work(index):
        try:
            put(media_dir, f"t{index}.jpg")
            catalogue.add(f"t{index}.jpg")
            seen.append(id(catalogue._db()))
        except Exception as error:          # reported below
            errors.append(error)
    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(catalogue.entries()) == 5
    assert id(catalogue._db()) not in seen


def test_closed_catalogue_refuses_work(db_path, media_dir):
    catalogue = MediaCatalogue(db_path, media_dir)
    catalogue.close()
    with pytest.raises(CatalogueError, match="closed"):
        catalogue.entries()


def test_unsafe_original_names_are_kept_but_never_reach_outside(db_path, media_dir, tmp_path):
    put(tmp_path, "outside.jpg", b"not ours")
    make_original_db(db_path, [(1, "2000-01-01", "../outside.jpg"), (2, "2000-01-01", "nul\x00.jpg")])
    with MediaCatalogue(db_path, media_dir) as catalogue:
        assert {entry["size"] for entry in catalogue.entries()} == {None}
        assert len(catalogue.scan()["missing"]) == 2
        with pytest.raises(MediaNameError):
            catalogue.remove("../outside.jpg", delete_file=True)
        assert len(catalogue.prune(max_age_days=1)) == 2
        assert catalogue.entries() == []
    assert (tmp_path / "outside.jpg").read_bytes() == b"not ours"


def test_the_library_imports_neither_flask_nor_click():
    code = "import sys, camera_server.media.catalogue; sys.exit(bool({'flask', 'click'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# -- the file being recorded (it holds the writer's lock) and the writer's own put -------------------


@pytest.fixture
def recording(media_dir):
    """live.mp4 as a recorder holds it: locked, a few bytes written, catalogued at its first frame."""
    descriptor = create_locked(media_dir / "live.mp4")
    os.write(descriptor, b"first fragment")
    yield media_dir / "live.mp4"
    os.close(descriptor)


def test_the_file_being_recorded_is_not_added_scanned_deleted_or_pruned(catalogue, media_dir, recording):
    reserved = create_locked(media_dir / "reserved.mp4")        # a recording without its first frame yet
    try:
        with pytest.raises(FileInUse, match="live.mp4 is being recorded"):
            catalogue.add("live.mp4")
        assert catalogue.scan()["added"] == []
        catalogue.put("live.mp4", "video", created=1e9)
        with pytest.raises(FileInUse, match="stop the recording first"):
            catalogue.remove("live.mp4", delete_file=True)
        assert catalogue.prune(max_age_days=1, max_total_bytes=0) == []
        assert recording.exists() and [entry["filename"] for entry in catalogue.entries()] == ["live.mp4"]
        assert catalogue.remove("live.mp4")["filename"] == "live.mp4" and recording.exists()   # the row only
    finally:
        os.close(reserved)


def test_pruning_around_the_recording_still_counts_its_size(catalogue, media_dir, recording):
    put(media_dir, "old.jpg", b"x" * 100, mtime=1e9)
    catalogue.add("old.jpg")
    catalogue.put("live.mp4", "video", created=1e9 - 1)            # the oldest, but being recorded
    assert [entry["filename"] for entry in catalogue.prune(max_total_bytes=50)] == ["old.jpg"]
    assert recording.exists() and not (media_dir / "old.jpg").exists()


def test_an_empty_video_is_not_scanned_a_finished_one_is(catalogue, media_dir):
    put(media_dir, "empty.mp4", b"")
    put(media_dir, "empty.jpg", b"")
    assert sorted(entry["filename"] for entry in catalogue.scan()["added"]) == ["empty.jpg"]


def test_put_adds_or_replaces_keeping_the_id(catalogue, media_dir):
    put(media_dir, "clip.mp4", b"12345")
    first = catalogue.put("clip.mp4", "video", created=1e9, width=64, height=48, camera="usb")
    assert (first["size"], first["width"], first["duration"]) == (5, 64, None)
    put(media_dir, "clip.mp4", b"1234567890")
    second = catalogue.put("clip.mp4", "video", created=1e9, duration=2.5)
    assert second["id"] == first["id"] and (second["size"], second["duration"], second["width"]) == (10, 2.5, None)
    with pytest.raises(MissingFile):
        catalogue.put("absent.mp4")


def test_remove_with_missing_ok_forgets_nothing_quietly(catalogue):
    assert catalogue.remove("never-listed.mp4", missing_ok=True) is None
    with pytest.raises(UnknownMedia):
        catalogue.remove("never-listed.mp4")


def test_a_rebuilt_catalogue_keeps_the_scene_watch_s_kinds(catalogue, media_dir):
    for name in ("change_2026-11-21_10-00-00.jpg", "motion_2026-11-21_10-00-01.jpg", "snapshot_x.jpg"):
        put(media_dir, name)
    catalogue.scan()
    assert [catalogue.get(name)["kind"] for name in ("change_2026-11-21_10-00-00.jpg",
            "motion_2026-11-21_10-00-01.jpg", "snapshot_x.jpg")] == ["change", "motion", "picture"]


# -- a delete the full disk refuses ---------------------------------------------------------------------


@pytest.fixture
def full_disk_commits(monkeypatch):
    """The next ``count`` write transactions fail as on a full disk (SQLITE_FULL), after their body ran."""
    real = MediaCatalogue._transaction
    failing = []

    @contextlib.contextmanager
    def transaction(self):
        with real(self) as db:
            yield db
            if failing:
                failing.pop()
                raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(MediaCatalogue, "_transaction", transaction)
    return lambda count: failing.extend([True] * count)


def test_a_delete_the_full_disk_refuses_deletes_the_files_first_and_then_the_rows(catalogue, media_dir,
                                                                                 full_disk_commits, caplog):
    put(media_dir, "a.jpg")
    put(media_dir, "b.jpg", mtime=1e9)
    catalogue.add("a.jpg")
    catalogue.add("b.jpg")
    full_disk_commits(1)
    assert catalogue.remove("a.jpg", delete_file=True)["filename"] == "a.jpg"
    full_disk_commits(1)
    assert [entry["filename"] for entry in catalogue.prune(max_age_days=1)] == ["b.jpg"]
    assert catalogue.entries() == [] and os.listdir(media_dir) == [name for name in os.listdir(media_dir)
                                                                   if name.startswith("media.db")]
    assert "the disk was full" in caplog.text


def test_a_delete_that_fails_twice_on_a_full_disk_says_what_happened(catalogue, media_dir, full_disk_commits):
    put(media_dir, "a.jpg")
    put(media_dir, "kept.jpg")
    catalogue.add("a.jpg")
    catalogue.add("kept.jpg")
    full_disk_commits(2)
    with pytest.raises(CatalogueError, match="deleted a.jpg to free space, but the catalogue still lists") as caught:
        catalogue.remove("a.jpg", delete_file=True)
    assert failures.explain(caught.value).status == 507
    assert not (media_dir / "a.jpg").exists() and catalogue.get("a.jpg") is not None
    assert [entry["filename"] for entry in catalogue.scan(remove_missing=True)["missing"]] == ["a.jpg"]
    full_disk_commits(1)
    with pytest.raises(sqlite3.OperationalError):       # without delete_file no space is freed
        catalogue.remove("kept.jpg")
    assert (media_dir / "kept.jpg").exists() and catalogue.get("kept.jpg") is not None


# -- symbolic links in the media folder are never followed --------------------------------------------


@pytest.fixture
def links(media_dir, db_path, tmp_path):
    """A picture, and links to the catalogue, to that picture, to a file outside, to a folder, to nothing."""
    put(media_dir, "picture.jpg", b"the picture")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"outside " * 1000)
    targets = {"to-db.jpg": db_path, "to-picture.jpg": media_dir / "picture.jpg", "to-outside.jpg": outside,
               "to-folder.jpg": tmp_path, "dangling.jpg": media_dir / "gone.jpg"}
    for name, target in targets.items():
        os.symlink(target, media_dir / name)
    return sorted(targets)


def test_links_are_neither_scanned_added_nor_put(catalogue, media_dir, links):
    assert [entry["filename"] for entry in catalogue.scan()["added"]] == ["picture.jpg"]
    for name in links:
        for action in (catalogue.add, catalogue.put):
            with pytest.raises(MissingFile, match="not a file|not in the media folder"):
                action(name)
    assert [entry["filename"] for entry in catalogue.entries()] == ["picture.jpg"]


@pytest.fixture
def listed_then_linked(catalogue, media_dir, links):
    """Entries whose files were replaced by links behind the catalogue's back (or listed by an older
    version): deleting one may remove only the link."""
    catalogue.add("picture.jpg")
    for name in links:
        (media_dir / name).rename(media_dir / f".{name}")
        put(media_dir, name)
        catalogue.add(name)
        (media_dir / f".{name}").replace(media_dir / name)
    return links


def test_deleting_an_entry_that_is_a_link_removes_only_the_link(catalogue, media_dir, db_path, tmp_path,
                                                                  listed_then_linked):
    for name in listed_then_linked:
        catalogue.remove(name, delete_file=True)
        assert not os.path.lexists(media_dir / name)
    assert db_path.is_file() and raw(db_path, "SELECT filename FROM media") == [("picture.jpg",)]
    assert (media_dir / "picture.jpg").read_bytes() == b"the picture"
    assert (tmp_path / "outside.jpg").exists() and tmp_path.is_dir()


def test_links_do_not_count_in_retention_and_are_never_pruned_through(catalogue, media_dir, tmp_path,
                                                                       listed_then_linked):
    assert catalogue.prune(max_total_bytes=len(b"the picture")) == []      # the 8000 bytes outside do not count
    removed = catalogue.prune(max_age_days=0)
    assert sorted(entry["filename"] for entry in removed) == sorted(listed_then_linked + ["picture.jpg"])
    assert (tmp_path / "outside.jpg").exists() and (media_dir / "media.db").is_file()
    assert sorted(os.listdir(media_dir)) == [name for name in sorted(os.listdir(media_dir))
                                             if name.startswith("media.db")]


def test_a_delete_put_back_never_replaces_a_new_file_of_that_name(catalogue, media_dir, monkeypatch, caplog):
    """The name is free while the file is set aside: a snapshot may take it before the delete fails."""
    (media_dir / "a.jpg").write_bytes(b"old picture")
    catalogue.add("a.jpg")
    set_aside = catalogue._set_aside

    def set_aside_then_a_new_file_takes_the_name(name, files):
        set_aside(name, files)
        (media_dir / "a.jpg").write_bytes(b"new snapshot")
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(catalogue, "_set_aside", set_aside_then_a_new_file_takes_the_name)
    with pytest.raises(sqlite3.OperationalError):
        catalogue.remove("a.jpg", delete_file=True)
    assert (media_dir / "a.jpg").read_bytes() == b"new snapshot"
    hidden = [path for path in media_dir.iterdir() if path.name.startswith(TRASH_PREFIX)]
    assert [path.read_bytes() for path in hidden] == [b"old picture"]
    assert "a new file has that name" in caplog.text and catalogue.get("a.jpg") is not None


def list_the_catalogue_itself(db_path):
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.execute("INSERT INTO media (filename, kind, created) VALUES ('media.db', 'picture', 0)")


def test_rows_that_name_the_catalogue_itself_are_not_migrated_and_never_delete_it(db_path, media_dir, caplog):
    """An original media.db may list media.db or its -wal: listed, a delete or prune removed the catalogue."""
    make_original_db(db_path, [(1, "2019-01-01", "a.jpg"), (2, "2019-01-03", "media.db"),
                               (3, "2019-01-04", "media.db-wal")])
    with MediaCatalogue(db_path, media_dir) as catalogue:
        assert [entry["filename"] for entry in catalogue.entries()] == ["a.jpg"]
        assert "row 2 ('media.db', dated '2019-01-03')" in caplog.text and "row 3 ('media.db-wal'" in caplog.text
        list_the_catalogue_itself(db_path)          # as an earlier version migrated it
        catalogue.remove("media.db", delete_file=True)
        assert db_path.exists() and [entry["filename"] for entry in catalogue.entries()] == ["a.jpg"]
        list_the_catalogue_itself(db_path)
        assert [entry["filename"] for entry in catalogue.prune(max_age_days=30)] == ["media.db", "a.jpg"]
        assert db_path.exists() and catalogue.entries() == []
