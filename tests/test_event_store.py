"""event_store.py: an event is added once and then updated; a catalogue that is locked or on a full
disk delays the write (retried at most every retry_s), and after max_attempts the event is dropped
with a log line. Nothing raises."""
import dataclasses
import errno
import logging
import sqlite3
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalogue_fields import UnknownEvent  # noqa: E402
from event_store import EventStore  # noqa: E402
from events import Event  # noqa: E402

STARTED = Event("a1b2", "motion", 100.0, None, 100.0, 0.1)
UPDATED = dataclasses.replace(STARTED, kind="object", labels=frozenset({"person"}), last_seen=102.0)
ENDED = dataclasses.replace(UPDATED, end=102.0)

LOCKED = sqlite3.OperationalError("database is locked")
FAILURES = [LOCKED, sqlite3.OperationalError("database or disk is full"),
            OSError(errno.ENOSPC, "No space left on device")]


class Catalogue:
    """The catalogue's event calls; ``failing``: the error each call raises, while set."""

    def __init__(self):
        self.calls = []
        self.rows = {}
        self.failing = None

    def add_event(self, start, kind, **fields):
        self.calls.append("add")
        if self.failing:
            raise self.failing
        event_id = len(self.rows) + 1
        self.rows[event_id] = {"start": start, "kind": kind, **fields}
        return event_id

    def update_event(self, event_id, /, **fields):
        self.calls.append("update")
        if self.failing:
            raise self.failing
        if event_id not in self.rows:
            raise UnknownEvent(f"there is no event {event_id!r}")
        self.rows[event_id].update(fields)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def catalogue():
    return Catalogue()


@pytest.fixture
def clock():
    return Clock()


def test_an_event_is_added_once_then_updated(catalogue, clock):
    store = EventStore(catalogue, clock=clock)
    stored = store.save(STARTED, snapshot="motion_1.jpg", clip="video_1.mp4")
    assert stored.catalogue_id == 1 and stored.saved
    store.save(UPDATED)
    store.save(ENDED)
    assert catalogue.calls == ["add", "update", "update"]
    assert catalogue.rows == {1: {"start": 100.0, "kind": "object", "end": 102.0, "peak_score": 0.1,
                                  "labels": ["person"], "snapshot": "motion_1.jpg", "clip": "video_1.mp4"}}
    assert store.unsaved == []


@pytest.mark.parametrize("error", FAILURES, ids=["locked", "sqlite full", "ENOSPC"])
def test_a_failed_start_is_saved_whole_when_the_catalogue_answers_again(catalogue, clock, error, caplog):
    caplog.set_level(logging.INFO)
    store = EventStore(catalogue, retry_s=5.0, clock=clock)
    catalogue.failing = error
    assert store.save(STARTED, snapshot="motion_1.jpg").catalogue_id is None      # no exception
    store.save(UPDATED)                     # the retry is not due: no attempt
    store.retry()
    assert catalogue.calls == ["add"]
    catalogue.failing = None
    clock.now += 5.0
    store.save(ENDED)                       # due now: the whole event in one add
    assert catalogue.calls == ["add", "add"] and store.unsaved == []
    assert catalogue.rows[1]["end"] == 102.0 and catalogue.rows[1]["labels"] == ["person"]
    assert catalogue.rows[1]["snapshot"] == "motion_1.jpg"
    assert "event a1b2 (motion, going on) not saved yet" in caplog.text and "trying again every 5 s" in caplog.text
    assert "event a1b2 saved after 1 failed attempts" in caplog.text


def test_a_failed_update_is_retried_by_retry(catalogue, clock):
    store = EventStore(catalogue, retry_s=5.0, clock=clock)
    store.save(STARTED)
    catalogue.failing = LOCKED
    store.save(ENDED)
    catalogue.failing = None
    store.retry()
    assert catalogue.rows[1]["end"] is None                  # not due yet
    clock.now += 5.0
    store.retry()
    assert catalogue.rows[1]["end"] == 102.0 and store.unsaved == []


@pytest.mark.parametrize("error", FAILURES, ids=["locked", "sqlite full", "ENOSPC"])
def test_an_event_is_dropped_with_a_log_line_after_max_attempts(catalogue, clock, error, caplog):
    store = EventStore(catalogue, retry_s=5.0, max_attempts=3, clock=clock)
    catalogue.failing = error
    store.save(STARTED, snapshot="motion_1.jpg", clip="video_1.mp4")
    for _ in range(10):
        clock.now += 5.0
        store.retry()
    assert catalogue.calls == ["add"] * 3 and store.unsaved == []
    dropped = [record for record in caplog.records if "dropped" in record.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.ERROR
    assert "in 3 attempts" in dropped[0].getMessage() and str(error) in dropped[0].getMessage()
    assert "motion_1.jpg and video_1.mp4 stay in the media folder" in dropped[0].getMessage()


def test_an_event_the_catalogue_forgot_while_it_lasted_is_added_again(catalogue, clock):
    store = EventStore(catalogue, clock=clock)
    store.save(STARTED)
    catalogue.rows.clear()                                   # /database/new
    assert store.save(ENDED).catalogue_id == 1
    assert catalogue.calls == ["add", "update", "add"] and catalogue.rows[1]["end"] == 102.0


def test_close_makes_a_last_attempt_and_names_what_is_lost(catalogue, clock, caplog):
    store = EventStore(catalogue, retry_s=5.0, clock=clock)
    catalogue.failing = LOCKED
    store.save(STARTED)
    store.close()                                            # not waiting for the retry
    assert catalogue.calls == ["add", "add"] and store.unsaved == []
    assert "event a1b2 (motion, going on) dropped" in caplog.text
