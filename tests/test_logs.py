"""The log file: rotated by size, its tail read from the end (across rotation) and off the gevent loop."""
import logging
from pathlib import Path

import pytest

from camera_server import logging_setup
from conftest import Held, other_greenlets_run_while_held


@pytest.fixture
def rotating_log(tmp_path):
    """The server's logging (logging_setup.configure) with a 2000-byte log file."""
    log_file = tmp_path / "flask.log"
    logging_setup.configure(log_file, max_bytes=2000)
    yield log_file          # conftest's server_logging_put_back takes the handlers away again


def test_the_log_file_is_rotated_by_size_and_three_old_files_are_kept(rotating_log):
    log = logging.getLogger("test_logs")
    for number in range(500):
        log.info("line %04d %s", number, "x" * 40)
    files = sorted(path.name for path in rotating_log.parent.iterdir())
    assert files == ["flask.log", "flask.log.1", "flask.log.2", "flask.log.3"]
    for path in rotating_log.parent.iterdir():
        assert path.stat().st_size <= 2000
    assert "line 0499" in rotating_log.read_text()
    assert "line 0000" not in "".join(path.read_text() for path in rotating_log.parent.iterdir())


def test_the_tail_continues_into_the_rotated_file(rotating_log):
    log = logging.getLogger("test_logs")
    for number in range(60):
        log.info("line %04d", number)
    current = rotating_log.read_text().splitlines()
    assert len(current) < 40 and (rotating_log.parent / "flask.log.1").exists()
    tail = logging_setup.tail(str(rotating_log), 40).splitlines()
    assert [line[-9:] for line in tail] == [f"line {number:04d}" for number in range(20, 60)]


def test_the_tail_reads_blocks_from_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(logging_setup, "TAIL_BLOCK", 7)       # every line crosses a block boundary
    log_file = tmp_path / "flask.log"
    log_file.write_bytes(b"".join(b"line %d \xc3\xa9\n" % number for number in range(100)) + b"no newline")
    assert logging_setup.tail(str(log_file), 3) == "line 98 \u00e9\nline 99 \u00e9\nno newline"
    assert logging_setup.tail(str(log_file), 1) == "no newline"
    assert logging_setup.tail(str(log_file), 1000).count("\n") == 100
    log_file.write_text("one\ntwo\n")
    assert logging_setup.tail(str(log_file), 1) == "two\n"
    assert logging_setup.tail(str(log_file), 5) == "one\ntwo\n"
    log_file.write_text("")
    assert logging_setup.tail(str(log_file), 5) == ""
    assert logging_setup.tail(str(tmp_path / "missing.log"), 5) == ""


def test_logs_answers_the_tail_across_rotation(client, settings):
    log_file = Path(settings.log_file)
    log_file.with_name("flask.log.1").write_text("old one\nold two\n")
    log_file.write_text("new one\n")
    response = client.get("/logs?lines=2", headers={"X-User-Key": "sesame"})
    assert response.status_code == 200 and response.get_data(as_text=True) == "old two\nnew one\n"


def test_reading_the_logs_does_not_stop_other_greenlets(app, settings, monkeypatch):
    held = Held(logging_setup.tail)
    monkeypatch.setattr(logging_setup, "tail", held)
    response = other_greenlets_run_while_held(
        lambda: app.test_client().get("/logs", headers={"X-User-Key": "sesame"}), held)
    assert response.status_code == 200
