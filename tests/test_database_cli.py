"""The catalogue's command line: through click's runner, under flask, and in a real subprocess."""
import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from camera_server.media import catalogue as media_catalogue
from camera_server.media import cli
from camera_server.media.catalogue import MediaCatalogue
from camera_server.media.cli import media_cli
from camera_server.media.files import create_locked
from conftest import ROOT
from test_media_catalogue import put


@pytest.fixture
def media_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFIG_FILE", str(tmp_path / "no-config.txt"))     # never the developer's config
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


@pytest.fixture
def run(media_dir):
    def invoke(*args, input=None):
        return CliRunner().invoke(media_cli, ["--media-dir", str(media_dir), *args], input=input)
    return invoke


def entries(media_dir):
    with MediaCatalogue(media_dir / "media.db", media_dir) as catalogue:
        return catalogue.entries()


def assert_one_line_error(result, *words):
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") or lines[0] == "Aborted!"
    for word in words:
        assert word in lines[0]


def test_add_list_and_list_json(run, media_dir):
    put(media_dir, "garden.jpg", b"12345", mtime=1_600_000_000)
    put(media_dir, "walk.mp4", b"1234567890", mtime=1_700_000_000)
    result = run("add", "garden.jpg", "--note", "roses")
    assert result.exit_code == 0 and "Added garden.jpg (picture, 5 B)" in result.output
    assert run("add", str(media_dir / "walk.mp4")).exit_code == 0      # a path into the media folder works

    table = run("list")
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "CAMERA", "KIND", "SIZE", "LENGTH", "FILE", "NOTE"]
    assert "walk.mp4" in lines[1] and "garden.jpg" in lines[2] and lines[2].endswith("roses")

    listed = json.loads(run("list", "--json").output)
    assert [entry["filename"] for entry in listed] == ["walk.mp4", "garden.jpg"]
    assert listed[1] == {"id": listed[1]["id"], "filename": "garden.jpg", "kind": "picture",
                         "created": 1_600_000_000, "size": 5, "duration": None, "width": None, "height": None,
                         "camera": None, "note": "roses"}
    assert [entry["filename"] for entry in json.loads(run("list", "--json", "--kind", "video").output)] == \
        ["walk.mp4"]


def test_list_filters_by_camera_and_shows_it(run, media_dir):
    for created, name, camera in [(1, "porch.jpg", "porch"), (2, "garden.jpg", "garden"), (3, "hand.jpg", None)]:
        put(media_dir, name, mtime=1_600_000_000 + created)
    with MediaCatalogue(media_dir / "media.db", media_dir) as catalogue:
        for name, camera in [("porch.jpg", "porch"), ("garden.jpg", "garden"), ("hand.jpg", None)]:
            catalogue.add(name, camera=camera)
    lines = run("list").output.splitlines()
    camera_column = lines[0].index("CAMERA")
    assert [line[camera_column:].split()[0] for line in lines[1:]] == ["picture", "garden", "porch"]
    result = run("list", "--camera", "porch")
    assert result.exit_code == 0
    assert [line.split()[-1] for line in result.output.splitlines()[1:]] == ["porch.jpg"]
    assert "porch" in result.output.splitlines()[1].split()
    assert [entry["filename"] for entry in json.loads(run("list", "--json", "--camera", "garden").output)] == \
        ["garden.jpg"]
    assert json.loads(run("list", "--json", "--camera", "garden", "--kind", "video").output) == []
    nothing = run("list", "--camera", "attic")
    assert nothing.exit_code == 0
    assert nothing.output == "No media from the camera attic yet (the catalogue knows garden, porch).\n"


def test_an_empty_list_says_so(run):
    result = run("list")
    assert result.exit_code == 0 and result.output == "No media yet.\n"
    assert json.loads(run("list", "--json").output) == []


def test_add_with_a_kind(run, media_dir):
    put(media_dir, "moment.jpg")
    assert run("add", "moment.jpg", "--kind", "motion").exit_code == 0
    assert entries(media_dir)[0]["kind"] == "motion"


def test_remove_keeps_or_deletes_the_file(run, media_dir):
    put(media_dir, "a.jpg")
    put(media_dir, "b.jpg")
    run("add", "a.jpg")
    run("add", "b.jpg")
    result = run("remove", "a.jpg")
    assert result.exit_code == 0 and "the file stays" in result.output
    assert (media_dir / "a.jpg").exists()
    result = run("remove", "b.jpg", "--delete-file")
    assert result.exit_code == 0 and "deleted the file" in result.output
    assert not (media_dir / "b.jpg").exists()
    assert entries(media_dir) == []


def test_scan_adds_and_reports(run, media_dir):
    put(media_dir, "known.jpg")
    run("add", "known.jpg")
    (media_dir / "known.jpg").unlink()
    put(media_dir, "found.mp4")
    put(media_dir, ".partial-xyz")
    result = run("scan")
    assert result.exit_code == 0
    assert "added    found.mp4 (video" in result.output
    assert "missing  known.jpg: the file is gone" in result.output
    assert "1 added, 1 missing (scan --remove-missing removes them)." in result.output
    result = run("scan", "--remove-missing")
    assert result.exit_code == 0 and "removed  known.jpg" in result.output
    assert [entry["filename"] for entry in entries(media_dir)] == ["found.mp4"]


def test_prune_by_age_with_dry_run_first(run, media_dir):
    put(media_dir, "old.jpg", mtime=1_000_000_000)
    put(media_dir, "new.jpg")
    run("add", "old.jpg")
    run("add", "new.jpg")
    result = run("prune", "--days", "30", "--dry-run")
    assert result.exit_code == 0 and "would remove  old.jpg" in result.output and "new.jpg" not in result.output
    assert len(entries(media_dir)) == 2 and (media_dir / "old.jpg").exists()
    result = run("prune", "--days", "30")
    assert result.exit_code == 0 and "removed  old.jpg" in result.output
    assert [entry["filename"] for entry in entries(media_dir)] == ["new.jpg"]
    assert not (media_dir / "old.jpg").exists()
    assert run("prune", "--days", "30").output == "Nothing to prune.\n"


def test_prune_by_size_with_dry_run_first(run, media_dir):
    for index, mtime in enumerate([1_000, 2_000, 3_000]):
        put(media_dir, f"clip{index}.mp4", b"x" * 1000, mtime=1_600_000_000 + mtime)
        run("add", f"clip{index}.mp4")
    limit = str(1500 / 1024 ** 3)
    result = run("prune", "--max-gb", limit, "--dry-run")
    assert result.exit_code == 0
    assert "would remove  clip0.mp4" in result.output and "would remove  clip1.mp4" in result.output
    assert "clip2" not in result.output and "2 entries, 2.0 KB would be freed." in result.output
    assert len(entries(media_dir)) == 3
    result = run("prune", "--max-gb", limit)
    assert result.exit_code == 0
    assert [entry["filename"] for entry in entries(media_dir)] == ["clip2.mp4"]
    assert sorted(path.name for path in media_dir.glob("*.mp4")) == ["clip2.mp4"]


def test_prune_takes_its_limits_from_config(run, media_dir, tmp_path, monkeypatch):
    config = tmp_path / "config.txt"
    config.write_text("[SETTINGS]\ncamera = demo\nkeep_days = 30\n")
    monkeypatch.setenv("CONFIG_FILE", str(config))
    put(media_dir, "old.jpg", mtime=1_000_000_000)
    run("add", "old.jpg")
    result = run("prune", "--dry-run")
    assert result.exit_code == 0 and "would remove  old.jpg" in result.output


@pytest.mark.parametrize("args", [["--days", "0"], ["--max-gb", "0"], ["--days", "0", "--max-gb", "0"]])
def test_prune_zero_means_no_limit_as_in_config(run, media_dir, args):
    put(media_dir, "old.jpg", mtime=1_000_000_000)
    run("add", "old.jpg")
    assert_one_line_error(run("prune", *args), "no limit to prune by", "0 means no limit")
    assert [entry["filename"] for entry in entries(media_dir)] == ["old.jpg"] and (media_dir / "old.jpg").exists()


def test_prune_with_days_zero_applies_only_the_size_limit(run, media_dir):
    for index, mtime in enumerate([1_000, 2_000]):
        put(media_dir, f"clip{index}.mp4", b"x" * 1000, mtime=1_000_000_000 + mtime)
        run("add", f"clip{index}.mp4")
    result = run("prune", "--days", "0", "--max-gb", str(1500 / 1024 ** 3))
    assert result.exit_code == 0
    assert [entry["filename"] for entry in entries(media_dir)] == ["clip1.mp4"]


def test_new_asks_first(run, media_dir):
    put(media_dir, "a.jpg")
    run("add", "a.jpg")
    with MediaCatalogue(media_dir / "media.db", media_dir) as catalogue:
        catalogue.add_event(1e9, "motion", end=1e9 + 5)
    declined = run("new", input="n\n")
    assert declined.exit_code != 0 and "Forget all 1 entries and all 1 events" in declined.output
    assert len(entries(media_dir)) == 1
    accepted = run("new", input="y\n")
    assert accepted.exit_code == 0 and "Forgot 1 entries and 1 events" in accepted.output
    assert entries(media_dir) == [] and (media_dir / "a.jpg").exists()
    with MediaCatalogue(media_dir / "media.db", media_dir) as catalogue:
        assert catalogue.events() == []


def test_new_with_yes_does_not_ask_and_creates_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFIG_FILE", str(tmp_path / "no-config.txt"))
    folder = tmp_path / "fresh" / "media"
    result = CliRunner().invoke(media_cli, ["--media-dir", str(folder), "new", "--yes"])
    assert result.exit_code == 0 and "?" not in result.output
    assert (folder / "media.db").exists()


def test_db_option_puts_the_catalogue_elsewhere(media_dir, tmp_path):
    put(media_dir, "a.jpg")
    other = tmp_path / "other.db"
    result = CliRunner().invoke(media_cli, ["--db", str(other), "--media-dir", str(media_dir), "add", "a.jpg"])
    assert result.exit_code == 0
    assert not (media_dir / "media.db").exists()
    with MediaCatalogue(other, media_dir) as catalogue:
        assert catalogue.get("a.jpg") is not None


def test_defaults_come_from_config(tmp_path, monkeypatch):
    folder = tmp_path / "configured"
    folder.mkdir()
    put(folder, "a.jpg")
    config = tmp_path / "config.txt"
    config.write_text(f"[SETTINGS]\ncamera = demo\nmedia_dir = {folder}\n")
    monkeypatch.setenv("CONFIG_FILE", str(config))
    assert CliRunner().invoke(media_cli, ["add", "a.jpg"]).exit_code == 0
    assert (folder / "media.db").exists()
    config.write_text("[SETTINGS]\nmedia_dir = relative/media\n")
    assert cli._default_media_dir() == ROOT / "relative" / "media"


def test_under_flask_the_app_media_dir_is_the_default(tmp_path, monkeypatch):
    from flask import Flask
    from flask.cli import FlaskGroup
    monkeypatch.setenv("CONFIG_FILE", str(tmp_path / "no-config.txt"))
    folder = tmp_path / "app-media"
    folder.mkdir()
    put(folder, "a.jpg")
    app = Flask("camera")
    app.config["MEDIA_DIR"] = str(folder)
    app.cli.add_command(media_cli, "media")
    flask_cli = FlaskGroup(create_app=lambda: app, load_dotenv=False, set_debug_flag=False)
    assert CliRunner().invoke(flask_cli, ["media", "add", "a.jpg"]).exit_code == 0
    result = CliRunner().invoke(flask_cli, ["media", "list", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)[0]["filename"] == "a.jpg"
    result = CliRunner().invoke(flask_cli, ["media", "remove", "b.jpg"])
    assert_one_line_error(result, "b.jpg is not in the catalogue")


def test_the_command_line_does_not_import_flask():
    code = "import sys, database_manager; sys.exit('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# -- every error is one line and a non-zero exit -----------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["remove", "unknown.jpg"], ["unknown.jpg is not in the catalogue"]),
    (["remove", "unknown.jpg", "--delete-file"], ["not in the catalogue"]),
    (["add", "absent.jpg"], ["absent.jpg is not in the media folder"]),
    (["add", "../escape.jpg"], ["not a plain file name"]),
    (["add", "/etc/passwd"], ["not a plain file name"]),
    (["add", "sub/dir.jpg"], ["not a plain file name"]),
    (["add", "bad\x00name.jpg"], ["control characters"]),
    (["add", "notes.txt"], ["must end in"]),
    (["add", "noextension"], ["needs an extension"]),
    (["remove", "../../etc/passwd"], ["not a plain file name"]),
    (["add", "a.jpg", "--kind", "sound"], ["--kind"]),
    (["add"], ["Missing argument"]),
    (["list", "--bogus"], ["--bogus"]),
    (["frobnicate"], ["No such command"]),
    (["prune", "--days", "-1"], ["--days"]),
    (["prune", "--max-gb", "inf"], ["--max-gb", "'inf' is not a finite number"]),
    (["prune", "--max-gb", "nan"], ["--max-gb", "'nan' is not a finite number"]),
    (["prune", "--days", "inf"], ["--days", "not a finite number"]),
    (["prune", "--days", "nan"], ["--days", "not a finite number"]),
    (["prune"], ["--days", "--max-gb"]),
])
def test_errors_are_one_line(run, media_dir, args, words):
    put(media_dir, "a.jpg")
    assert_one_line_error(run(*args), *words)


def test_the_file_being_recorded_is_neither_added_nor_deleted(run, media_dir):
    descriptor = create_locked(media_dir / "live.mp4")           # as the server's recorder holds it
    try:
        assert_one_line_error(run("add", "live.mp4"), "live.mp4 is being recorded")
        with MediaCatalogue(media_dir / "media.db", media_dir) as catalogue:
            catalogue.put("live.mp4", "video", created=1e9)
        assert_one_line_error(run("remove", "live.mp4", "--delete-file"), "stop the recording first")
        assert run("prune", "--days", "1").output.strip() == "Nothing to prune."
        assert (media_dir / "live.mp4").exists()
    finally:
        os.close(descriptor)


def test_adding_twice_is_one_line(run, media_dir):
    put(media_dir, "a.jpg")
    run("add", "a.jpg")
    assert_one_line_error(run("add", "a.jpg"), "already in the catalogue")


def test_a_missing_media_folder_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFIG_FILE", str(tmp_path / "no-config.txt"))
    result = CliRunner().invoke(media_cli, ["--media-dir", str(tmp_path / "nowhere"), "list"])
    assert_one_line_error(result, "does not exist")


def test_a_broken_database_is_one_line(run, media_dir):
    (media_dir / "media.db").write_bytes(b"not a database at all " * 100)
    assert_one_line_error(run("list"), "is not a database")


def test_a_bad_config_is_one_line(tmp_path, monkeypatch):
    config = tmp_path / "config.txt"
    config.write_text("[SETTINGS]\ncolour = blue\n")
    monkeypatch.setenv("CONFIG_FILE", str(config))
    assert_one_line_error(CliRunner().invoke(media_cli, ["list"]), "unknown key 'colour'")


def test_a_locked_catalogue_is_one_line_that_says_to_wait(run, media_dir, monkeypatch):
    put(media_dir, "a.jpg")
    run("add", "a.jpg")
    monkeypatch.setattr(media_catalogue, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(media_dir / "media.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")                   # another program's long change
    try:
        assert_one_line_error(run("remove", "a.jpg", "--delete-file"), "locked by another program", "try again")
    finally:
        holder.close()
    assert (media_dir / "a.jpg").exists() and [entry["filename"] for entry in entries(media_dir)] == ["a.jpg"]


def test_declining_new_is_one_line(run, media_dir):
    put(media_dir, "a.jpg")
    run("add", "a.jpg")
    result = run("new", input="n\n")
    assert result.exit_code != 0 and result.stderr.strip() == "Aborted!"


# -- the CLI and the server at the same time ---------------------------------------------------------


CLI_LOOP = """
import sys
from camera_server.media.cli import media_cli
db, media, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()                    # start together with the threads
for index in range(count):
    media_cli(["--db", db, "--media-dir", media, "add", f"cli-{index}.jpg"], standalone_mode=False)
    media_cli(["--db", db, "--media-dir", media, "list", "--json"], standalone_mode=False)
"""


def test_cli_and_server_threads_write_at_the_same_time(media_dir, tmp_path):
    cli_count, threads_count, per_thread = 40, 4, 25
    for index in range(cli_count):
        put(media_dir, f"cli-{index}.jpg")
    for thread in range(threads_count):
        for index in range(per_thread):
            put(media_dir, f"server-{thread}-{index}.jpg")
    db_path = media_dir / "media.db"
    catalogue = MediaCatalogue(db_path, media_dir)
    errors = []

    def server_thread(thread):
        try:
            for index in range(per_thread):
                catalogue.add(f"server-{thread}-{index}.jpg", camera=f"thread {thread}")
                catalogue.entries(limit=5)
        except Exception as error:          # reported by the assertion below
            errors.append(repr(error))

    cli_process = subprocess.Popen([sys.executable, "-c", CLI_LOOP, str(db_path), str(media_dir), str(cli_count)],
                                   cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
    threads = [threading.Thread(target=server_thread, args=(thread,)) for thread in range(threads_count)]
    try:
        assert cli_process.stdout.readline() == "ready\n"
        cli_process.stdin.write("go\n")
        cli_process.stdin.flush()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _, cli_errors = cli_process.communicate(timeout=60)
    finally:
        if cli_process.poll() is None:
            cli_process.kill()
    try:
        assert cli_process.returncode == 0, cli_errors
        assert "locked" not in cli_errors
        assert errors == []
        names = {entry["filename"] for entry in catalogue.entries()}
        expected = {f"cli-{index}.jpg" for index in range(cli_count)}
        expected |= {f"server-{thread}-{index}.jpg"
                     for thread in range(threads_count) for index in range(per_thread)}
        assert names == expected
    finally:
        catalogue.close()


def test_the_script_runs_on_its_own(media_dir):
    put(media_dir, "a.jpg")
    script = str(ROOT / "database_manager.py")
    added = subprocess.run([sys.executable, script, "--media-dir", str(media_dir), "add", "a.jpg"],
                           capture_output=True, text=True)
    assert added.returncode == 0 and "Added a.jpg" in added.stdout
    failed = subprocess.run([sys.executable, script, "--media-dir", str(media_dir), "remove", "b.jpg"],
                            capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == ["Error: b.jpg is not in the catalogue"]


def test_a_path_to_a_link_names_the_link_not_what_it_points_at(run, media_dir):
    put(media_dir, "a.jpg")
    put(media_dir, "x.jpg")
    run("add", "a.jpg")
    run("add", "x.jpg")
    (media_dir / "x.jpg").unlink()
    os.symlink(media_dir / "a.jpg", media_dir / "x.jpg")     # put in its place behind the catalogue's back
    result = run("remove", str(media_dir / "x.jpg"), "--delete-file")
    assert result.exit_code == 0, result.output
    assert "Removed x.jpg" in result.output and not os.path.lexists(media_dir / "x.jpg")
    assert (media_dir / "a.jpg").exists() and [entry["filename"] for entry in entries(media_dir)] == ["a.jpg"]
