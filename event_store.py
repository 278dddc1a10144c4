"""The scene watch's writes to the catalogue, made by one writer thread so the watch never waits for SQLite.

The watch thread hands over each event change (``save``) and each picture to list (``add_picture``)
and goes on at once. Each event's whole state is kept here from its start until the catalogue has
its end: it is added once, then updated, so writing it again is harmless, and only its newest state
is written. Each change is notified after the write attempt that includes it, with the catalogue's
id of the event (None while the catalogue has not taken it): where the catalogue answers, nobody
hears of an event it does not hold. The changes of one event go out in order.

A write that fails (the database locked by another process for longer than its busy timeout, or a
full disk) is tried again every ``retry_s`` seconds, and the changes in between are notified without
waiting for it; after ``max_attempts`` failed writes the event is dropped with a log line. A picture
the catalogue cannot list stays in the media folder, and the next start lists it. ``close()`` makes
a last attempt at what is not saved, for at most ``timeout`` seconds, and logs what is lost.
"""
import dataclasses
import logging
import math
import sqlite3
import threading
import time

from catalogue_fields import CatalogueError, UnknownEvent

log = logging.getLogger(__name__)

RETRY_S = 5.0               # a failed write is tried again after this long
MAX_ATTEMPTS = 60           # failed writes in a row before an event is dropped: 5 minutes, 15 if each waits for a lock
CLOSE_S = 5.0               # how long close() waits for the last attempt
SAVE_ERRORS = (sqlite3.Error, OSError, CatalogueError)     # locked, disk full, closed, ...


@dataclasses.dataclass
class StoredEvent:
    """One event on its way; the writer thread alone changes the fields below ``changes``."""
    event: object                     # the newest events.Event
    snapshot: str | None = None
    clip: str | None = None
    changes: list = dataclasses.field(default_factory=list)   # the EventChanges not notified yet
    written: object = None            # the Event the catalogue holds, None before the first write
    catalogue_id: int | None = None   # None until the catalogue has added the event
    failures: int = 0                 # failed writes in a row
    retry_at: float = 0.0             # the clock's time of the next attempt after a failure

    @property
    def saved(self):
        return self.written is self.event

    def describe(self):
        event = self.event
        return f"event {event.id} ({event.kind}, {'ended' if event.end is not None else 'going on'})"

    def files_left(self):
        files = " and ".join(name for name in (self.snapshot, self.clip) if name)
        return f"; {files} stay in the media folder" if files else ""


@dataclasses.dataclass(frozen=True)
class Picture:
    filename: str
    kind: str
    fields: dict                      # created, width, height, camera, note


class EventStore:
    """Events, their notifications and picture entries: handed over by any thread, written by one."""

    def __init__(self, catalogue, notifiers=(), retry_s=RETRY_S, max_attempts=MAX_ATTEMPTS, clock=time.monotonic):
        self.catalogue = catalogue
        self.notifiers = notifiers
        self.retry_s, self.max_attempts = retry_s, max_attempts
        self._clock = clock
        self._lock = threading.Lock()
        self._events = {}             # StoredEvents by the event's id, until the catalogue has the end
        self._pictures = []           # Pictures not listed yet
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._deadline = math.inf     # when the last attempt gives up
        self._thread = None

    def start(self):
        """Start the writer thread, unless it runs or the store is closed; answers the store."""
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="catalogue-writer", daemon=True)
                self._thread.start()
        return self

    # -- handing over: never waits for the catalogue -----------------------------------------
    def save(self, change, snapshot=None, clip=None):
        """Take an event change (and the event's snapshot and clip at its start) to write, then notify."""
        event = change.event
        with self._lock:
            if self._closed:
                log.warning("event %s %s came after the close: not saved, not notified", event.id, change.change)
                return
            stored = self._events.get(event.id)
            if stored is None:
                stored = self._events[event.id] = StoredEvent(event, snapshot, clip)
            stored.event = event
            stored.changes.append(change)
        self._wake.set()

    def add_picture(self, filename, kind, **fields):
        """Take a picture saved in the media folder to list in the catalogue (fields as catalogue.add's)."""
        with self._lock:
            if self._closed:
                _not_catalogued([Picture(filename, kind, fields)], "it came after the close")
                return
            self._pictures.append(Picture(filename, kind, fields))
        self._wake.set()

    @property
    def unsaved(self):
        with self._lock:
            return [stored for stored in self._events.values() if not stored.saved]

    def close(self, timeout=CLOSE_S):
        """Take nothing more; a last attempt at what is not saved, for up to timeout seconds; log what is lost."""
        with self._lock:
            self._closed = True
            self._deadline = self._clock() + timeout
            thread = self._thread
        self._stop.set()
        if thread is None:
            self._last_round()
            return
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():             # stuck in a write: whatever it has not done yet is lost
            self._log_lost("the catalogue did not answer before the close")

    # -- the writer thread -------------------------------------------------------------------
    def _run(self):
        while not self._stop.is_set():
            self._wake.wait(self._wait_s())
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.write_due()
            except Exception:           # the thread's top level: report, back off, go on
                log.exception("catalogue writer: writing the scene watch's events failed")
                self._stop.wait(self.retry_s)
        try:
            self._last_round()
        except Exception:               # still the top level: the next start lists the pictures, closes events
            log.exception("catalogue writer: the last attempt failed")

    def _wait_s(self):
        """Seconds until the next retry is due; None (until something is handed over) without one."""
        with self._lock:
            retries = [stored.retry_at for stored in self._events.values() if not stored.saved]
        return max(min(retries) - self._clock(), 0.0) if retries else None

    def write_due(self, last_attempt=False):
        """One round of the writer: write each event whose write is due (while closing, each unsaved one
        until the deadline) and notify its changes; then list the pictures. ``last_attempt``: a failed
        write drops its event."""
        with self._lock:
            events = list(self._events.values())
        for stored in events:
            self._write_event(stored, last_attempt)
        self._add_pictures()

    def _last_round(self):
        self.write_due(last_attempt=True)
        self._log_lost("the close came before the catalogue took it")

    def _write_event(self, stored, last_attempt):
        with self._lock:
            event, changes, stored.changes = stored.event, stored.changes, []
        if stored.written is not event and self._due(stored) and self._write(stored, event, last_attempt):
            changes += self._forget(stored)     # changes that came in while a dropped event was written
        for change in changes:
            self._notify(stored, change)

    def _due(self, stored):
        """A retry waited retry_s; while closing, every write until the deadline."""
        if self._stop.is_set():
            return self._clock() < self._deadline
        return self._clock() >= stored.retry_at

    def _write(self, stored, event, last_attempt):
        """Write the event's state; True when the store is done with it (its end saved, or dropped)."""
        try:
            self._store(stored, event)
        except SAVE_ERRORS as error:
            return self._failed(stored, error, last_attempt)
        if stored.failures:
            log.info("event %s saved after %d failed attempts", event.id, stored.failures)
        stored.written, stored.failures, stored.retry_at = event, 0, 0.0
        return event.end is not None

    def _store(self, stored, event):
        fields = {"kind": event.kind, "end": event.end, "peak_score": event.peak_score, "labels": sorted(event.labels)}
        if stored.catalogue_id is not None:
            try:
                self.catalogue.update_event(stored.catalogue_id, **fields)
                return
            except UnknownEvent:
                stored.catalogue_id = None
                log.warning("event %s: the catalogue forgot it while it lasted (a new database?): added again",
                            event.id)
        stored.catalogue_id = self.catalogue.add_event(event.start, snapshot=stored.snapshot, clip=stored.clip,
                                                       **fields)

    def _failed(self, stored, error, last_attempt):
        """Count a failed write; True when the event is dropped."""
        stored.failures += 1
        if last_attempt or stored.failures >= self.max_attempts:
            log.error("%s dropped: the catalogue did not take it in %d attempts (%s)%s", stored.describe(),
                      stored.failures, error, stored.files_left())
            return True
        stored.retry_at = self._clock() + self.retry_s
        if stored.failures == 1:
            log.warning("%s not saved yet: %s; trying again every %g s", stored.describe(), error, self.retry_s)
        return False

    def _forget(self, stored):
        """Leave the event out from now on; the changes handed over since the write began."""
        with self._lock:
            if self._events.get(stored.event.id) is stored:
                del self._events[stored.event.id]
            changes, stored.changes = stored.changes, []
        return changes

    def _notify(self, stored, change):
        message = {**change.to_dict(), "snapshot": stored.snapshot, "clip": stored.clip,
                   "catalogue_id": stored.catalogue_id}
        for notifier in self.notifiers:
            notifier.notify(message)

    def _add_pictures(self):
        """List the pictures; when the catalogue refuses one, those behind it are not tried (each would
        wait for the lock as long): the next start lists them."""
        with self._lock:
            pictures, self._pictures = self._pictures, []
        for index, picture in enumerate(pictures):
            if self._stop.is_set() and self._clock() >= self._deadline:
                _not_catalogued(pictures[index:], "the close came first")
                return
            try:
                self.catalogue.add(picture.filename, picture.kind, **picture.fields)
            except SAVE_ERRORS as error:
                _not_catalogued(pictures[index:], error)
                return

    def _log_lost(self, reason):
        """Forget, with a log line, the events not saved and the pictures not listed."""
        with self._lock:
            lost = [stored for stored in self._events.values() if not stored.saved]
            self._events.clear()
            pictures, self._pictures = self._pictures, []
        for stored in lost:
            log.error("%s not saved: %s%s", stored.describe(), reason, stored.files_left())
        if pictures:
            _not_catalogued(pictures, reason)


def _not_catalogued(pictures, reason):
    names = ", ".join(picture.filename for picture in pictures)
    verb, pronoun = ("is", "it") if len(pictures) == 1 else ("are", "them")
    log.warning("%s %s saved but not catalogued (%s): the next start lists %s", names, verb, reason, pronoun)


def close_interrupted_events(catalogue):
    """Give an end to the events a crash or kill left open (their start: the last time known)."""
    interrupted = [event for event in catalogue.events() if event["end"] is None]
    for event in interrupted:
        catalogue.update_event(event["id"], end=event["start"])
    if interrupted:
        log.warning("closed %d events left open by the last run: %s", len(interrupted),
                    ", ".join(str(event["id"]) for event in interrupted))
    return len(interrupted)
