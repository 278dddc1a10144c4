"""The retention timer: keep_days and max_media_gb applied by a daemon thread, now and then again."""
import os
import time

import pytest

from camera_server.media.catalogue import MediaCatalogue
from camera_server.media.retention import RetentionTimer
from conftest import wait_for

DAY = 86400


@pytest.fixture
def catalogue(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    opened = MediaCatalogue(folder / "media.db", folder)
    yield opened
    opened.close()


def add(catalogue, name, age_days, size=10):
    path = catalogue.media_dir / name
    path.write_bytes(b"x" * size)
    return catalogue.add(name, created=time.time() - age_days * DAY)


def names(catalogue):
    return sorted(entry["filename"] for entry in catalogue.entries())


def test_the_timer_prunes_at_start_and_again_at_each_interval(catalogue):
    add(catalogue, "old.jpg", age_days=10)
    add(catalogue, "new.jpg", age_days=1)
    timer = RetentionTimer(catalogue, keep_days=8.5, interval_s=0.1).start()
    try:
        assert wait_for(lambda: names(catalogue) == ["new.jpg"])
        assert not (catalogue.media_dir / "old.jpg").exists()
        add(catalogue, "later.jpg", age_days=9)         # old already when it arrives: the next round takes it
        assert wait_for(lambda: names(catalogue) == ["new.jpg"])
        assert not (catalogue.media_dir / "later.jpg").exists() and (catalogue.media_dir / "new.jpg").exists()
    finally:
        timer.stop()


def test_the_timer_keeps_the_newest_within_max_media_gb(catalogue):
    for age, name in enumerate(["c.jpg", "b.jpg", "a.jpg"]):
        add(catalogue, name, age_days=age, size=400)
    timer = RetentionTimer(catalogue, max_media_gb=900 / 1024 ** 3, interval_s=0.1).start()
    try:
        assert wait_for(lambda: names(catalogue) == ["b.jpg", "c.jpg"])
    finally:
        timer.stop()
    assert sorted(name for name in os.listdir(catalogue.media_dir) if name.endswith(".jpg")) == ["b.jpg", "c.jpg"]


def test_without_limits_no_thread_starts(catalogue):
    add(catalogue, "ancient.jpg", age_days=10000)
    timer = RetentionTimer(catalogue).start()
    timer.stop()
    assert not timer.enabled and names(catalogue) == ["ancient.jpg"]


def test_a_failing_round_is_logged_and_the_next_one_runs(catalogue, monkeypatch, caplog):
    calls = []
    real_prune = catalogue.prune

    def prune(**limits):
        calls.append(limits)
        if len(calls) == 1:
            raise OSError("the disk went away for a moment")
        return real_prune(**limits)

    monkeypatch.setattr(catalogue, "prune", prune)
    add(catalogue, "old.jpg", age_days=10)
    timer = RetentionTimer(catalogue, keep_days=1, interval_s=0.1).start()
    try:
        assert wait_for(lambda: names(catalogue) == [])
    finally:
        timer.stop()
    assert len(calls) >= 2 and "retention: pruning failed" in caplog.text
