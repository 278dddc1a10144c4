"""The scene watch's events on their way into the catalogue.

Each event's whole state is kept here from its start until the catalogue has its end: it is added
once, then updated, so writing it again is harmless. A write that fails (the database locked by
another process for longer than its busy timeout, or a full disk) is tried again at most every
``retry_s`` seconds by ``retry()``, which the watch thread calls at each frame; after
``max_attempts`` failed writes the event is dropped with a log line. Nothing here raises a
catalogue error: an event whose start could not be saved still ends, and its clip still stops.
"""
import dataclasses
import logging
import sqlite3
import time

from catalogue_fields import CatalogueError, UnknownEvent

log = logging.getLogger(__name__)

RETRY_S = 5.0               # a failed write is tried again after this long
MAX_ATTEMPTS = 60           # failed writes in a row before an event is dropped: about 5 minutes
SAVE_ERRORS = (sqlite3.Error, OSError, CatalogueError)     # locked, disk full, closed, ...


@dataclasses.dataclass
class StoredEvent:
    event: object                     # the newest events.Event
    snapshot: str | None = None
    clip: str | None = None
    catalogue_id: int | None = None   # None until the catalogue has added the event
    saved: bool = False               # the catalogue holds the newest state
    failures: int = 0                 # failed writes in a row
    retry_at: float = 0.0             # the clock's time of the next attempt after a failure


class EventStore:
    """Open and unsaved events by their id; feed it from one thread (the watch thread)."""

    def __init__(self, catalogue, retry_s=RETRY_S, max_attempts=MAX_ATTEMPTS, clock=time.monotonic):
        self.catalogue = catalogue
        self.retry_s, self.max_attempts = retry_s, max_attempts
        self._clock = clock
        self._events = {}

    def save(self, event, snapshot=None, clip=None):
        """Take the event's newest state (its snapshot and clip at the start) and write it, unless a
        failed write is waiting for its retry; answers the StoredEvent."""
        stored = self._events.get(event.id)
        if stored is None:
            stored = self._events[event.id] = StoredEvent(event, snapshot, clip)
        stored.event, stored.saved = event, False
        if self._clock() >= stored.retry_at:
            self._write(stored)
        return stored

    def retry(self):
        """Write again the events whose failed write has waited retry_s."""
        now = self._clock()
        for stored in [stored for stored in self._events.values() if not stored.saved and now >= stored.retry_at]:
            self._write(stored)

    @property
    def unsaved(self):
        return [stored for stored in self._events.values() if not stored.saved]

    def close(self):
        """A last attempt for what is not saved; log each event that is lost."""
        for stored in self.unsaved:
            self._write(stored, last_attempt=True)

    def _write(self, stored, last_attempt=False):
        try:
            self._store(stored)
        except SAVE_ERRORS as error:
            self._failed(stored, error, last_attempt)
            return
        if stored.failures:
            log.info("event %s saved after %d failed attempts", stored.event.id, stored.failures)
        stored.saved, stored.failures, stored.retry_at = True, 0, 0.0
        if stored.event.end is not None:
            del self._events[stored.event.id]

    def _store(self, stored):
        event = stored.event
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
        stored.failures += 1
        event = stored.event
        what = f"event {event.id} ({event.kind}, {'ended' if event.end is not None else 'going on'})"
        if last_attempt or stored.failures >= self.max_attempts:
            del self._events[event.id]
            files = " and ".join(name for name in (stored.snapshot, stored.clip) if name)
            log.error("%s dropped: the catalogue did not take it in %d attempts (%s)%s", what, stored.failures,
                      error, f"; {files} stay in the media folder" if files else "")
            return
        stored.retry_at = self._clock() + self.retry_s
        if stored.failures == 1:
            log.warning("%s not saved yet: %s; trying again every %g s", what, error, self.retry_s)
