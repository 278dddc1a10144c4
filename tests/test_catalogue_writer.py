"""The catalogue writer (media/writer.py): jobs written in order by one thread, the newest per key; a round
ends at the first refusal of the surroundings and the next comes retry_s later; a job is given up after
give_up_s (or at once for a refusal that is not the surroundings'), and close() makes a last attempt.
Most tests make the rounds (write_due) with a fake clock; the last ones run the thread against a real,
locked catalogue."""
import sqlite3
import threading

import pytest

from camera_server.media.catalogue import MediaCatalogue
from camera_server.media.writer import CatalogueWriter
from conftest import wait_for

LOCKED = sqlite3.OperationalError("database is locked")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Catalogue:
    """Keeps what the jobs write; ``failing``: the error every write raises while it is set."""

    def __init__(self):
        self.written, self.tried = [], []
        self.failing = None

    def write(self, what):
        self.tried.append(what)
        if self.failing is not None:
            raise self.failing
        self.written.append(what)


def writes(what):
    return lambda catalogue: catalogue.write(what)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def catalogue():
    return Catalogue()


@pytest.fixture
def writer(catalogue, clock):
    return CatalogueWriter(catalogue, retry_s=5.0, give_up_s=60.0, clock=clock)


def outcomes():
    """A done callback that keeps what it hears: None (written or replaced) or why it was given up."""
    heard = []
    return heard, heard.append


def test_jobs_are_written_in_order_and_the_newest_of_a_key_takes_the_place_of_the_waiting_one(writer, catalogue):
    heard, done = outcomes()
    writer.submit("a", writes("a1"), done=done)
    writer.submit("b", writes("b1"))
    writer.submit("a", writes("a2"))                     # replaces a1, before b
    assert heard == [None]                               # a1 left: a newer write took its place
    writer.write_due()
    assert catalogue.written == ["a2", "b1"] and writer.waiting == []


def test_a_round_ends_at_the_first_refusal_and_the_next_comes_retry_s_later(writer, catalogue, clock):
    refusals = []
    for name in ("a", "b", "c"):
        writer.submit(name, writes(name), refused=refusals.append)
    catalogue.failing = LOCKED
    writer.write_due()
    assert catalogue.tried == ["a"] and refusals == [LOCKED] * 3     # one wait for the lock, not three
    catalogue.failing = None
    writer.write_due()
    assert catalogue.written == []                       # not due yet
    clock.now += 5.0
    writer.write_due()
    assert catalogue.written == ["a", "b", "c"] and writer.waiting == []


def test_a_job_is_given_up_give_up_s_after_it_was_handed_over(writer, catalogue, clock):
    heard, done = outcomes()
    writer.submit("a", writes("a"), done=done)
    catalogue.failing = LOCKED
    for _ in range(13):
        writer.write_due()
        clock.now += 5.0
    assert len(catalogue.tried) == 13 and writer.waiting == []
    assert [str(reason) for reason in heard] == ["the catalogue did not take it in 60 s (database is locked)"]


def test_a_refusal_that_is_not_the_surroundings_gives_the_job_up_at_once_and_the_round_goes_on(writer, catalogue):
    heard, done = outcomes()

    def bad(catalogue):
        raise ValueError("no such kind")

    writer.submit("bad", bad, done=done)
    writer.submit("good", writes("good"))
    writer.write_due()
    assert catalogue.written == ["good"] and writer.waiting == []
    assert [str(reason) for reason in heard] == ["the catalogue refused it: no such kind"]


def test_close_makes_a_last_attempt_then_gives_up_the_rest(writer, catalogue):
    heard, done = outcomes()
    writer.submit("a", writes("a"), done=done)
    catalogue.failing = LOCKED
    writer.write_due()
    writer.close()                                       # not waiting for the retry
    assert catalogue.tried == ["a", "a"]
    assert [str(reason) for reason in heard] == ["the close came before the catalogue took it (database is locked)"]
    later, done = outcomes()
    writer.submit("b", writes("b"), done=done)
    assert [str(reason) for reason in later] == ["it came after the close"] and catalogue.tried == ["a", "a"]


def test_a_callback_that_fails_is_logged_and_the_round_goes_on(writer, catalogue, caplog):
    def broken(reason):
        raise RuntimeError("bug in a callback")

    writer.submit("a", writes("a"), done=broken)
    writer.submit("b", writes("b"))
    writer.write_due()
    assert catalogue.written == ["a", "b"] and "a job's callback failed" in caplog.text


# -- the thread, against a real catalogue held by another connection ---------------------------------------


@pytest.fixture
def media_catalogue(tmp_path):
    catalogue = MediaCatalogue(tmp_path / "media.db", tmp_path, busy_timeout=0.2)
    yield catalogue
    catalogue.close()


def test_the_thread_writes_once_the_lock_goes_and_wait_answers_within_a_round(media_catalogue, tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    writer = CatalogueWriter(media_catalogue, retry_s=0.05).start()
    holder = sqlite3.connect(tmp_path / "media.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")                    # another program's long change
    try:
        job = writer.submit(("media", "a.jpg"), lambda catalogue: catalogue.put("a.jpg", "picture"))
        assert writer.wait(job, 10) is False and "locked" in str(job.error)   # answered: refused, not written
        assert writer.waiting == [("media", "a.jpg")]
    finally:
        holder.rollback()
        holder.close()
    assert wait_for(lambda: media_catalogue.get("a.jpg") is not None)
    assert job.written and writer.waiting == []
    writer.close()


def test_flush_waits_for_a_round_and_close_joins_the_thread(media_catalogue, tmp_path):
    writer = CatalogueWriter(media_catalogue).start()
    gate, entered = threading.Event(), threading.Event()

    def held(catalogue):
        entered.set()
        gate.wait(10)

    writer.submit("held", held)
    assert entered.wait(10)
    writer.flush(0.1)                                    # returns though the round is not over
    gate.set()
    writer.flush(10)
    assert writer.waiting == []
    writer.close()
    assert not writer._thread.is_alive()
