"""Bad surroundings get an answer: a full disk (507), a read-only or unwritable media folder, an I/O
error, a locked catalogue (503), each with a message that says what to do; nothing is left half-written
and the stream keeps going."""
import errno
import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from camera_server import failures
from camera_server.media import catalogue as media_catalogue
from camera_server.media import fields as catalogue_fields
from camera_server.media import files as media_files
from camera_server.media import recorder as recorder_module
from camera_server.media.fields import CatalogueError
from camera_server.web.app import create_app, stop_services
from conftest import read_one_part, small_tmpfs, unavailable, wait_for

PICTURE = b"\xff\xd8" + os.urandom(60_000) + b"\xff\xd9"


def media_names(media_dir):
    """The media folder's files, the catalogue's own and the test's ballast left out."""
    return sorted(name for name in os.listdir(media_dir) if not name.startswith(("media.db", "ballast")))


def answer(client, control, route, data=None):
    response = client.post(route, headers=control, data=data or {})
    return response.status_code, response.get_json()["error"] if response.status_code >= 400 else None


# -- what an error means -------------------------------------------------------------------------------


@pytest.mark.parametrize("code, status, words", [
    (errno.ENOSPC, 507, "the disk is full"), (errno.EDQUOT, 507, "full"),
    (errno.EROFS, 503, "file system is read-only"), (errno.EACCES, 503, "not allowed"),
    (errno.EPERM, 503, "not allowed"), (errno.EIO, 503, "I/O error"),
])
def test_an_os_error_of_the_surroundings_has_a_status_and_advice(code, status, words):
    failure = failures.explain(OSError(code, os.strerror(code), "/srv/media/x.jpg"))
    assert failure.status == status and words in failure.message and "/srv/media/x.jpg" in failure.message
    assert "then try again" in failure.message or "try again" in failure.message


def test_sqlite_s_locked_and_full_are_explained_also_without_an_error_code(tmp_path):
    held = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    held.execute("BEGIN EXCLUSIVE")
    waiting = sqlite3.connect(tmp_path / "t.db", isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as caught:
        waiting.execute("BEGIN IMMEDIATE")
    held.close()
    waiting.close()
    locked = failures.explain(caught.value)
    assert locked.status == 503 and "locked by another program" in locked.message
    assert failures.explain(sqlite3.OperationalError("database is locked")).status == 503
    assert failures.explain(sqlite3.OperationalError("database or disk is full")).status == 507


def test_a_wrapper_keeps_its_words_and_gets_the_advice_of_what_it_wraps():
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied")
        except OSError as error:
            raise CatalogueError("cannot delete a.jpg: Permission denied") from error
    except CatalogueError as wrapper:
        failure = failures.explain(wrapper)
    assert failure.status == 503 and failure.message.startswith(
        "the server's user is not allowed to do this (cannot delete a.jpg: Permission denied): give")


@pytest.mark.parametrize("error", [ValueError("bug"), FileNotFoundError(errno.ENOENT, "gone"), KeyError("x"),
                                   sqlite3.OperationalError("no such table: media"),
                                   catalogue_fields.InvalidValue("size must be a number")])
def test_other_errors_are_not_the_surroundings(error):
    assert failures.explain(error) is None


def test_a_catalogue_that_cannot_be_used_is_a_503_in_its_own_words():
    assert failures.explain(CatalogueError("the media catalogue is closed")) == failures.Failure(
        503, "the media catalogue is closed")


# -- a catalogue locked by another program ---------------------------------------------------------------


@pytest.fixture
def quick_app(settings, monkeypatch):
    """The app with a short busy timeout, so a locked catalogue answers at once."""
    monkeypatch.setattr(media_catalogue, "BUSY_TIMEOUT_S", 0.2)
    application = create_app(settings)
    yield application
    stop_services(application)


@pytest.fixture
def quick_client(quick_app):
    return quick_app.test_client()


@pytest.fixture
def quick_control(quick_app):
    return {"X-Control-Token": quick_app.config["CONTROL_TOKEN"]}


@pytest.fixture
def lock_catalogue(settings):
    """Another program holding the catalogue's write lock (BEGIN EXCLUSIVE) until the test ends."""
    holders = []

    def lock():
        holder = sqlite3.connect(Path(settings.media_dir) / "media.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        holders.append(holder)
    yield lock
    for holder in holders:
        holder.close()


def test_changes_to_a_locked_catalogue_are_a_503_and_change_nothing(quick_app, quick_client, quick_control,
                                                                   lock_catalogue, settings, caplog):
    media_dir = Path(settings.media_dir)
    for name in ("listed.jpg", "outside.jpg", "change_1.jpg"):
        (media_dir / name).write_bytes(PICTURE)
    quick_app.extensions["catalogue"].add("listed.jpg")
    quick_app.extensions["catalogue"].add("change_1.jpg", "change")
    quick_app.extensions["camera"].current_frame()
    lock_catalogue()
    for route, data in [("/snapshot", {"filename": "porch"}), ("/manual_video", {"payload": "snapshot"}),
                        ("/database/add", {"filename": "outside.jpg"}),
                        ("/database/remove", {"filename": "listed.jpg", "delete_file": "true"}),
                        ("/database/new", {"confirm": "yes"}), ("/delete", {})]:
        status, error = answer(quick_client, quick_control, route, data)
        assert status == 503 and "locked by another program" in error and "try again" in error, route
    assert media_names(media_dir) == ["change_1.jpg", "listed.jpg", "outside.jpg"]   # no snapshot, nothing deleted
    assert read_one_part(quick_client)[1].startswith(b"\xff\xd8")                     # the stream goes on
    warnings = [record for record in caplog.records if record.name == "camera_server.web.media_routes"]
    assert len(warnings) == 6 and all(record.levelname == "WARNING" and not record.exc_info for record in warnings)


def lock_the_catalogue_for_readers(monkeypatch):
    # In WAL mode another program's write lock does not stop readers; its exclusive locking mode does.
    def locked(self, *args, **kwargs):
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(media_catalogue.MediaCatalogue, "entries", locked)
    monkeypatch.setattr(media_catalogue.MediaCatalogue, "events", locked)


@pytest.mark.parametrize("route", ["/get_database", "/gallery", "/database", "/events", "/shows"])
def test_reading_a_locked_catalogue_is_a_503(client, route, monkeypatch):
    lock_the_catalogue_for_readers(monkeypatch)
    response = client.get(route)
    assert response.status_code == 503 and "locked by another program" in response.get_json()["error"]


def test_the_live_page_loads_without_its_lists_when_the_catalogue_cannot_be_read(client, monkeypatch):
    lock_the_catalogue_for_readers(monkeypatch)
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="stream"' in page and "The media catalogue cannot be read: the media catalogue is locked" in page


# -- a read-only or unwritable media folder, an I/O error -------------------------------------------------


@pytest.fixture
def refuse(monkeypatch):
    """Make the file system refuse: snapshots' files, recordings' files and deletes fail with ``code``."""
    def refuse_with(code):
        def fail(*args, **kwargs):
            raise OSError(code, os.strerror(code))
        monkeypatch.setattr(media_files, "create_temporary", fail)
        monkeypatch.setattr(recorder_module, "create_locked", fail)
        monkeypatch.setattr(media_catalogue.os, "rename", fail)
    return refuse_with


@pytest.mark.parametrize("code, words", [(errno.EROFS, "file system is read-only"), (errno.EACCES, "not allowed"),
                                         (errno.EPERM, "not allowed"), (errno.EIO, "I/O error")])
def test_a_folder_that_refuses_writes_is_a_503_with_advice(app, client, control, settings, refuse, code, words):
    media_dir = Path(settings.media_dir)
    (media_dir / "listed.jpg").write_bytes(PICTURE)
    app.extensions["catalogue"].add("listed.jpg")
    refuse(code)
    for route, data in [("/snapshot", {}), ("/manual_video", {"payload": "snapshot"}),
                        ("/video_capture", {"action": "start"}),
                        ("/database/remove", {"filename": "listed.jpg", "delete_file": "true"})]:
        status, error = answer(client, control, route, data)
        assert status == 503 and words in error, (route, error)
    assert media_names(media_dir) == ["listed.jpg"]
    assert app.extensions["catalogue"].get("listed.jpg") is not None
    assert client.get("/status").get_json()["recording"]["recording"] is False
    assert read_one_part(client)[1].startswith(b"\xff\xd8")


def test_an_io_error_while_writing_a_snapshot_leaves_nothing(client, control, settings, monkeypatch):
    def failing_fsync(descriptor):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(media_files.os, "fsync", failing_fsync)
    status, error = answer(client, control, "/snapshot", {"filename": "porch"})
    assert status == 503 and "I/O error" in error
    assert os.listdir(settings.media_dir) == [name for name in os.listdir(settings.media_dir)
                                              if name.startswith("media.db")]       # no temporary either


# -- a full disk -----------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs for the media folder (as root; unavailable() otherwise)."""
    with small_tmpfs(tmp_path / "small") as folder:
        yield folder


def fill(folder):
    """Take the rest of the disk: the catalogue's write-ahead log is emptied first, so that its next
    change needs new space too."""
    with sqlite3.connect(folder / "media.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    descriptor = os.open(folder / "ballast", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(descriptor, bytes(4096))
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


@pytest.fixture
def app_on_a_small_disk(settings, small_disk):
    application = create_app(settings.replace(media_dir=str(small_disk)))
    yield application
    stop_services(application)


def test_a_full_disk_is_a_507_that_says_what_to_do_and_leaves_no_file(app_on_a_small_disk, small_disk):
    client = app_on_a_small_disk.test_client()
    control = {"X-Control-Token": app_on_a_small_disk.config["CONTROL_TOKEN"]}
    (small_disk / "outside.jpg").write_bytes(PICTURE)
    app_on_a_small_disk.extensions["camera"].current_frame()
    fill(small_disk)
    for route, data in [("/snapshot", {"filename": "porch"}), ("/manual_video", {"payload": "snapshot"}),
                        ("/database/add", {"filename": "outside.jpg"}), ("/video_capture", {"action": "start"})]:
        status, error = answer(client, control, route, data)
        assert status == 507 and ("disk" in error and "full" in error or "MB free" in error), (route, error)
    assert media_names(small_disk) == ["outside.jpg"]              # no snapshot, half-written or empty
    assert [name for name in os.listdir(small_disk) if name.startswith(".")] == []
    assert read_one_part(client)[1].startswith(b"\xff\xd8")


# -- deleting on a full disk frees space --------------------------------------------------------------------


def test_deleting_on_a_full_disk_works_and_frees_space(app_on_a_small_disk, small_disk):
    client = app_on_a_small_disk.test_client()
    control = {"X-Control-Token": app_on_a_small_disk.config["CONTROL_TOKEN"]}
    catalogue = app_on_a_small_disk.extensions["catalogue"]
    for name, kind in (("old.jpg", "picture"), ("change_1.jpg", "change")):
        (small_disk / name).write_bytes(PICTURE)
        catalogue.add(name, kind)
    app_on_a_small_disk.extensions["camera"].current_frame()
    fill(small_disk)
    response = client.post("/database/remove", headers=control, data={"filename": "old.jpg", "delete_file": "true"})
    assert response.status_code == 200, response.get_json()
    response = client.post("/delete", headers=control)                       # the scene changes
    assert response.status_code == 200 and response.get_json()["deleted"] == 1
    assert media_names(small_disk) == [] and catalogue.entries() == []
    assert [name for name in os.listdir(small_disk) if name.startswith(".")] == []
    assert client.post("/snapshot", headers=control).status_code == 200      # the space is free again


def test_the_command_line_and_retention_delete_on_a_full_disk(small_disk):
    from click.testing import CliRunner
    from camera_server.media.cli import media_cli
    from camera_server.media.retention import RetentionTimer
    catalogue = media_catalogue.MediaCatalogue(small_disk / "media.db", small_disk)
    try:
        for name in ("by-hand.jpg", "old.jpg"):
            (small_disk / name).write_bytes(PICTURE)
            catalogue.add(name, created=1e9 if name == "old.jpg" else None)
        fill(small_disk)
        result = CliRunner().invoke(media_cli, ["--media-dir", str(small_disk), "remove", "by-hand.jpg",
                                                "--delete-file"])
        assert result.exit_code == 0, result.output
        fill(small_disk)
        assert [entry["filename"] for entry in RetentionTimer(catalogue, keep_days=1).apply()] == ["old.jpg"]
        assert media_names(small_disk) == [] and catalogue.entries() == []
    finally:
        catalogue.close()


# -- writes stay whole: nothing half-written or empty is left in the media folder --------------------------


def test_a_recording_on_a_full_disk_leaves_no_empty_or_half_written_file(small_disk):
    from camera_server.capture.camera import Camera
    from camera_server.media.recorder import Recorder
    from camera_server.media.writer import CatalogueWriter
    from conftest import FakeSource
    camera = Camera(FakeSource(160, 120), kind="fake", width=160, height=120)
    catalogue = media_catalogue.MediaCatalogue(small_disk / "media.db", small_disk)
    writer = CatalogueWriter(catalogue).start()
    recorder = Recorder(camera, small_disk, catalogue_writer=writer, min_free_mb=0)
    try:
        fill(small_disk)
        recorder.start("no room")
        assert wait_for(lambda: not recorder.status()["recording"])          # it stops by itself
        status = recorder.status()
        assert status["last_file"] is None and status["last_reason"] == "disk_full"
    finally:
        recorder.close()
        writer.close()
        camera.stop()
        catalogue.close()
    assert media_names(small_disk) == [] and [name for name in os.listdir(small_disk) if name.startswith(".")] == []


def test_a_snapshot_whose_temporary_cannot_be_removed_is_still_saved(client, control, settings, monkeypatch,
                                                                     caplog):
    real_unlink = media_files.os.unlink

    def failing_unlink(path, *args, **kwargs):
        if os.path.basename(path).startswith(media_files.TEMPORARY_PREFIX):
            raise OSError(errno.EIO, "Input/output error")
        return real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(media_files.os, "unlink", failing_unlink)
    status, _ = answer(client, control, "/snapshot", {"filename": "porch"})
    assert status == 200
    assert (Path(settings.media_dir) / "porch.jpg").stat().st_size > 0
    assert [entry["filename"] for entry in client.get("/get_database").get_json()] == ["porch.jpg"]
    assert "could not remove the temporary" in caplog.text


@pytest.mark.parametrize("number", [errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.ENOTCONN])
def test_a_disk_that_went_away_is_a_503_that_says_so(number):
    failure = failures.explain(OSError(number, os.strerror(number), "media/a.jpg"))
    assert failure.status == 503 and "not there any more" in failure.message and "mount it again" in failure.message


def test_a_media_folder_that_went_away_is_not_made_again_and_writes_are_a_503(app, client, control, tmp_path):
    """An unplugged USB disk: nothing is written on the mount point below it, not even a new empty
    catalogue, and the stream goes on."""
    media_dir = Path(app.config["MEDIA_DIR"])
    media_dir.rename(tmp_path / "unplugged")
    response = client.post("/snapshot", headers=control)
    assert response.status_code == 503 and "not there any more" in response.get_json()["error"]
    refused = []
    reader = threading.Thread(target=lambda: refused.append(failures.explain(
        pytest.raises(CatalogueError, app.extensions["catalogue"].entries).value)))
    reader.start()
    reader.join(10)
    assert refused[0].status == 503 and "mount it again" in refused[0].message     # a new thread's connection
    assert not media_dir.exists()
    assert read_one_part(client)[1].startswith(b"\xff\xd8")


# -- a catalogue that cannot be opened at start: the server starts, streams, and says why -----------------


def test_a_damaged_catalogue_at_start_answers_503_and_comes_back_without_a_restart(settings, monkeypatch):
    media_dir = Path(settings.media_dir)
    media_dir.mkdir(parents=True)
    (media_dir / "media.db").write_bytes(os.urandom(4096))
    monkeypatch.setattr(media_catalogue, "REOPEN_S", 0.0)
    application = create_app(settings)
    try:
        client = application.test_client()
        assert read_one_part(client)[1].startswith(b"\xff\xd8")                 # the stream goes on
        page = client.get("/")
        assert page.status_code == 200 and "damaged" in page.get_data(as_text=True)
        response = client.get("/get_database")
        assert response.status_code == 503 and "move it away" in response.get_json()["error"]
        (media_dir / "media.db").rename(media_dir / "media.db.damaged")        # as the message says
        assert client.get("/get_database").get_json() == []
    finally:
        stop_services(application)


def test_a_read_only_media_folder_at_start_answers_503_and_the_stream_goes_on(settings, tmp_path):
    media_dir = tmp_path / "read-only"
    media_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(media_dir)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a read-only tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        application = create_app(settings.replace(media_dir=str(media_dir), min_free_mb=0))
        try:
            client = application.test_client()
            assert read_one_part(client)[1].startswith(b"\xff\xd8")
            control = {"X-Control-Token": application.config["CONTROL_TOKEN"]}
            for response in (client.post("/snapshot", headers=control), client.get("/get_database"),
                             client.post("/video_capture", data={"action": "start"}, headers=control)):
                assert response.status_code == 503, response.get_json()
                assert "read-only" in response.get_json()["error"]
        finally:
            stop_services(application)
    finally:
        subprocess.run(["umount", "-l", str(media_dir)], check=True)
