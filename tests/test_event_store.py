"""event_store.py over the catalogue writer (media/writer.py): an event is added once and then updated, and
each change is notified after the write that includes it; a catalogue that is locked or on a full disk
delays the write (retried at most every retry_s), never the hand-over; an event the writer gives up on
is dropped once it ended, and otherwise added whole at its next change. Nothing raises. Most tests drive
the writer's rounds (write_due) with a fake clock; the last ones run its thread."""
import dataclasses
import errno
import logging
import sqlite3
import threading

import pytest

from camera_server.media.fields import InvalidValue, UnknownEvent
from camera_server.media.writer import CatalogueWriter
from camera_server.watch.event_store import EventStore
from camera_server.watch.events import ENDED, STARTED, UPDATED, Event, EventChange
from conftest import wait_for

BEGUN = Event("a1b2", "motion", 100.0, None, 100.0, 0.1)
LABELLED = dataclasses.replace(BEGUN, kind="object", labels=frozenset({"person"}), last_seen=102.0)
FINISHED = dataclasses.replace(LABELLED, end=102.0)
START = EventChange(STARTED, BEGUN, 100.0)
UPDATE = EventChange(UPDATED, LABELLED, 102.0)
END = EventChange(ENDED, FINISHED, 107.0)

LOCKED = sqlite3.OperationalError("database is locked")
FAILURES = [LOCKED, sqlite3.OperationalError("database or disk is full"),
            OSError(errno.ENOSPC, "No space left on device")]


class Catalogue:
    """The catalogue's event and add calls; ``failing``: the error each call raises, while set;
    ``gate`` cleared: add_event waits for it."""

    def __init__(self):
        self.calls = []
        self.rows = {}
        self.pictures = []
        self.failing = None
        self.gate = threading.Event()
        self.gate.set()

    def add_event(self, start, kind, **fields):
        self.calls.append("add")
        self.gate.wait(30)
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

    def add(self, filename, kind=None, **fields):
        self.calls.append(f"list {filename}")
        if self.failing:
            raise self.failing
        self.pictures.append((filename, kind, fields))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Messages:
    def __init__(self):
        self.received = []

    def notify(self, message):
        self.received.append(message)

    def sent(self):
        return [(message["type"], message["catalogue_id"]) for message in self.received]


@pytest.fixture
def catalogue():
    return Catalogue()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def messages():
    return Messages()


@pytest.fixture
def writer(catalogue, clock):
    """The catalogue writer without its thread: the tests make its rounds (write_due)."""
    return CatalogueWriter(catalogue, retry_s=5.0, give_up_s=10.0, clock=clock)


@pytest.fixture
def store(writer, messages):
    return EventStore(writer, [messages])


def test_an_event_is_added_once_then_updated_and_each_change_notified_after_its_write(catalogue, writer, store,
                                                                                      messages):
    store.save(START, snapshot="motion_1.jpg", clip="video_1.mp4")
    assert catalogue.calls == [] and messages.received == []       # handed over: the writer does the rest
    writer.write_due()
    assert messages.sent() == [("started", 1)]
    store.save(UPDATE)
    writer.write_due()
    store.save(END)
    writer.write_due()
    assert catalogue.calls == ["add", "update", "update"]
    assert catalogue.rows == {1: {"start": 100.0, "kind": "object", "end": 102.0, "peak_score": 0.1,
                                  "labels": ["person"], "snapshot": "motion_1.jpg", "clip": "video_1.mp4",
                                  "camera": None}}
    assert messages.sent() == [("started", 1), ("updated", 1), ("ended", 1)]
    assert messages.received[2]["snapshot"] == "motion_1.jpg" and messages.received[2]["clip"] == "video_1.mp4"
    assert store.unsaved == [] and writer.waiting == []


def test_each_event_and_message_names_the_store_s_camera(catalogue, writer, messages):
    store = EventStore(writer, [messages], camera_name="porch")
    store.save(START)
    writer.write_due()
    catalogue.failing = LOCKED              # a message of a refused write names it too
    store.save(END)
    writer.write_due()
    assert catalogue.rows[1]["camera"] == "porch"
    assert [(message["type"], message["camera"]) for message in messages.received] == [("started", "porch"),
                                                                                         ("ended", "porch")]


def test_changes_handed_over_between_writes_are_written_once_as_the_newest_state(catalogue, writer, store,
                                                                                 messages):
    for change in (START, UPDATE, END):
        store.save(change)
    writer.write_due()
    assert catalogue.calls == ["add"] and catalogue.rows[1]["end"] == 102.0
    assert messages.sent() == [("started", 1), ("updated", 1), ("ended", 1)]


@pytest.mark.parametrize("error", FAILURES, ids=["locked", "sqlite full", "ENOSPC"])
def test_a_failed_start_is_saved_whole_when_the_catalogue_answers_again(catalogue, clock, writer, store, messages,
                                                                        error, caplog):
    caplog.set_level(logging.INFO)
    catalogue.failing = error
    store.save(START, snapshot="motion_1.jpg")
    writer.write_due()                      # no exception; the message goes out after the refused write
    assert messages.sent() == [("started", None)]
    store.save(UPDATE)
    writer.write_due()                      # the retry is not due: no attempt, the change waits for it
    assert catalogue.calls == ["add"] and messages.sent() == [("started", None)]
    catalogue.failing = None
    clock.now += 5.0
    store.save(END)
    writer.write_due()                      # due now: the whole event in one add
    assert catalogue.calls == ["add", "add"] and store.unsaved == []
    assert catalogue.rows[1]["end"] == 102.0 and catalogue.rows[1]["labels"] == ["person"]
    assert catalogue.rows[1]["snapshot"] == "motion_1.jpg"
    assert messages.sent() == [("started", None), ("updated", 1), ("ended", 1)]
    assert "event a1b2 (motion, going on) not saved yet" in caplog.text and "trying again every 5 s" in caplog.text
    assert "event a1b2 saved after 1 refused rounds" in caplog.text


def test_a_failed_update_is_retried_when_due(catalogue, clock, writer, store, messages):
    store.save(START)
    writer.write_due()
    catalogue.failing = LOCKED
    store.save(END)
    writer.write_due()
    catalogue.failing = None
    writer.write_due()
    assert catalogue.rows[1]["end"] is None                  # not due yet
    clock.now += 5.0
    writer.write_due()
    assert catalogue.rows[1]["end"] == 102.0 and store.unsaved == []
    assert messages.sent() == [("started", 1), ("ended", 1)]     # the id was known before the failure


@pytest.mark.parametrize("error", FAILURES, ids=["locked", "sqlite full", "ENOSPC"])
def test_an_ended_event_is_dropped_with_a_log_line_when_the_writer_gives_up(catalogue, clock, writer, store,
                                                                          messages, error, caplog):
    store.save(START, snapshot="motion_1.jpg", clip="video_1.mp4")
    store.save(END)
    catalogue.failing = error
    for _ in range(10):
        writer.write_due()
        clock.now += 5.0
    assert catalogue.calls == ["add"] * 3 and store.unsaved == [] and writer.waiting == []
    dropped = [record for record in caplog.records if "dropped" in record.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.ERROR
    assert "did not take it in 10 s" in dropped[0].getMessage() and str(error) in dropped[0].getMessage()
    assert "motion_1.jpg and video_1.mp4 stay in the media folder" in dropped[0].getMessage()
    assert messages.sent() == [("started", None), ("ended", None)]      # each once


def test_an_event_given_up_while_it_lasts_is_added_whole_at_its_next_change(catalogue, clock, writer, store,
                                                                           messages, caplog):
    catalogue.failing = LOCKED
    store.save(START, snapshot="motion_1.jpg", clip="video_1.mp4")
    for _ in range(4):
        writer.write_due()
        clock.now += 5.0
    assert writer.waiting == [] and "not saved for now" in caplog.text and "dropped" not in caplog.text
    catalogue.failing = None                 # the catalogue answers again while the event still lasts
    store.save(END)
    writer.write_due()
    assert catalogue.rows == {1: {"start": 100.0, "kind": "object", "end": 102.0, "peak_score": 0.1,
                                  "labels": ["person"], "snapshot": "motion_1.jpg", "clip": "video_1.mp4",
                                  "camera": None}}
    assert messages.sent() == [("started", None), ("ended", 1)]
    assert (messages.received[-1]["snapshot"], messages.received[-1]["clip"]) == ("motion_1.jpg", "video_1.mp4")
    assert store.unsaved == []


def test_an_event_the_catalogue_refuses_for_another_reason_is_given_up_at_once(catalogue, writer, store, caplog):
    catalogue.failing = InvalidValue("labels must be a list of words")
    store.save(START)
    store.save(END)
    writer.write_due()
    assert catalogue.calls == ["add"] and store.unsaved == [] and writer.waiting == []
    assert "event a1b2 (object, ended) dropped: the catalogue refused it: labels must be" in caplog.text


def test_an_event_the_catalogue_forgot_while_it_lasted_is_added_again(catalogue, writer, store, messages):
    store.save(START)
    writer.write_due()
    catalogue.rows.clear()                                   # /database/new
    store.save(END)
    writer.write_due()
    assert catalogue.calls == ["add", "update", "add"] and catalogue.rows[1]["end"] == 102.0
    assert messages.sent() == [("started", 1), ("ended", 1)]


def test_pictures_are_listed_and_those_behind_a_refused_one_wait_for_the_next_round(catalogue, clock, writer,
                                                                                    store, caplog):
    store.add_picture("change_1.jpg", "change", created=1.0, note="score 400")
    writer.write_due()
    assert catalogue.pictures == [("change_1.jpg", "change", {"created": 1.0, "note": "score 400"})]
    catalogue.failing = LOCKED
    for number in (2, 3, 4):
        store.add_picture(f"change_{number}.jpg", "change")
    writer.write_due()
    assert catalogue.calls[-1] == "list change_2.jpg"        # one wait for the lock, not three
    catalogue.failing = None
    clock.now += 5.0
    writer.write_due()
    assert [picture[0] for picture in catalogue.pictures] == [f"change_{number}.jpg" for number in (1, 2, 3, 4)]
    catalogue.failing = LOCKED
    store.add_picture("change_5.jpg", "change")
    for _ in range(4):
        writer.write_due()
        clock.now += 5.0
    assert "change_5.jpg is saved but not catalogued (the catalogue did not take it in 10 s (database is locked)): " \
           "the next start lists it" in caplog.text


def test_close_makes_a_last_attempt_and_names_what_is_lost(catalogue, writer, store, messages, caplog):
    catalogue.failing = LOCKED
    store.save(START)
    writer.write_due()
    store.save(END)
    store.close()                                            # not waiting for the retry
    assert catalogue.calls == ["add", "add"]
    assert messages.sent() == [("started", None), ("ended", None)]     # before the notifiers close
    writer.close()                                           # the app closes the writer later
    assert catalogue.calls == ["add", "add", "add"] and store.unsaved == []
    assert "event a1b2 (object, ended) dropped: the close came before the catalogue took it" in caplog.text
    assert messages.sent() == [("started", None), ("ended", None)]
    store.save(START)                                        # after the close: refused with a log line
    assert "came after the close" in caplog.text and store.unsaved == []


def test_the_writer_thread_writes_then_notifies_while_the_hand_over_never_waits(catalogue, messages):
    writer = CatalogueWriter(catalogue).start()
    store = EventStore(writer, [messages])
    catalogue.gate.clear()                                   # the catalogue holds the writer in add_event
    store.save(START)
    assert wait_for(lambda: catalogue.calls == ["add"])
    store.save(UPDATE)                                       # handed over while the writer waits
    store.save(END)
    store.add_picture("motion_1.jpg", "motion")
    assert messages.received == [] and catalogue.rows == {}
    catalogue.gate.set()
    assert wait_for(lambda: messages.sent() == [("started", 1), ("updated", 1), ("ended", 1)])
    assert wait_for(lambda: catalogue.pictures and store.unsaved == [])
    assert catalogue.rows[1]["end"] == 102.0
    store.close()
    writer.close()


def test_close_gives_up_on_a_write_the_catalogue_holds_and_says_what_is_lost(catalogue, messages, caplog):
    writer = CatalogueWriter(catalogue).start()
    store = EventStore(writer, [messages])
    catalogue.gate.clear()
    store.save(START)
    store.add_picture("motion_1.jpg", "motion")
    assert wait_for(lambda: catalogue.calls == ["add"])
    try:
        store.close(timeout=0.2)                             # both return though add_event still waits
        writer.close(timeout=0.2)
        assert "event a1b2 (motion, going on) dropped: the close came before the catalogue took it" in caplog.text
        assert "motion_1.jpg is saved but not catalogued (the close came before" in caplog.text
    finally:
        catalogue.gate.set()
