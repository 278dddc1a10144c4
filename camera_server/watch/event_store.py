"""The scene watch's events, pictures and messages: handed over by the watch thread, which never waits,
and written by the app's catalogue writer (media/writer.py), which retries while the catalogue is
locked by another program or its disk is full.

Each event's whole state is kept here from its start until the catalogue has its end: it is added
once, then updated, so writing it again is harmless, and only its newest state is written (one job
per event). Each change is notified after the write attempt that includes it, with the catalogue's
id of the event (None while the catalogue has not taken it): where the catalogue answers, nobody
hears of an event it does not hold. When the catalogue refuses, the changes go out after that round
(at most ``retry_s`` later for those handed over meanwhile), and the changes of one event go out in
order. An event the writer gives up on (the catalogue refused it for 10 minutes) is dropped once it
has ended; while it goes on, its next change tries again, with its snapshot and clip. A picture the
catalogue cannot list stays in the media folder, and the next start lists it.
"""
import dataclasses
import functools
import logging
import threading

from camera_server.media.fields import UnknownEvent

log = logging.getLogger(__name__)

CLOSE_S = 5.0               # how long close() waits for the writer's last round of the watch's writes


@dataclasses.dataclass
class StoredEvent:
    """One event on its way; the writer thread alone changes the fields below ``changes``."""
    event: object                     # the newest events.Event
    snapshot: str | None = None
    clip: str | None = None
    changes: list = dataclasses.field(default_factory=list)   # the EventChanges not notified yet
    written: object = None            # the Event the catalogue holds, None before the first write
    catalogue_id: int | None = None   # None until the catalogue has added the event
    refusals: int = 0                 # rounds in a row that did not write it

    @property
    def saved(self):
        return self.written is self.event

    def describe(self):
        event = self.event
        return f"event {event.id} ({event.kind}, {'ended' if event.end is not None else 'going on'})"

    def files_left(self):
        files = " and ".join(name for name in (self.snapshot, self.clip) if name)
        return f"; {files} stay in the media folder" if files else ""


class EventStore:
    """Events, their notifications and picture entries: handed over by any thread, written by the writer.
    ``camera_name``: the camera whose events these are, stored with each event and sent in each message."""

    def __init__(self, writer, notifiers=(), camera_name=None):
        self.writer = writer
        self.notifiers = notifiers
        self.camera_name = camera_name
        self._lock = threading.Lock()
        self._events = {}             # StoredEvents by the event's id, until the catalogue has the end
        self._closed = False

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
        self.writer.submit(("event", event.id), functools.partial(self._write, stored),
                           refused=functools.partial(self._refused, stored),
                           done=functools.partial(self._done, stored))

    def add_picture(self, filename, kind, **fields):
        """Take a picture saved in the media folder to list in the catalogue (fields as catalogue.add's)."""
        self.writer.submit(("media", filename), lambda catalogue: catalogue.add(filename, kind, **fields),
                           done=functools.partial(_picture_done, filename))

    @property
    def unsaved(self):
        with self._lock:
            return [stored for stored in self._events.values() if not stored.saved]

    def close(self, timeout=CLOSE_S):
        """Take no more events; give the writer up to timeout seconds to try what waits, so that the
        messages go out before the notifiers close. What it has not written, it tries until it closes."""
        with self._lock:
            self._closed = True
        self.writer.flush(timeout)

    # -- the writer thread's side --------------------------------------------------------------
    def _write(self, stored, catalogue):
        """The event's job: write its newest state, then notify the changes that state includes."""
        with self._lock:
            event, changes, stored.changes = stored.event, stored.changes, []
        try:
            self._store(stored, event, catalogue)
        finally:
            self._notify(stored, changes)
        if stored.refusals:
            log.info("event %s saved after %d refused rounds", event.id, stored.refusals)
        stored.written, stored.refusals = event, 0
        if event.end is not None:
            self._forget(stored)

    def _store(self, stored, event, catalogue):
        fields = {"kind": event.kind, "end": event.end, "peak_score": event.peak_score, "labels": sorted(event.labels)}
        if stored.catalogue_id is not None:
            try:
                catalogue.update_event(stored.catalogue_id, **fields)
                return
            except UnknownEvent:
                stored.catalogue_id = None
                log.warning("event %s: the catalogue forgot it while it lasted (a new database?): added again",
                            event.id)
        stored.catalogue_id = catalogue.add_event(event.start, snapshot=stored.snapshot, clip=stored.clip,
                                                  camera=self.camera_name, **fields)

    def _refused(self, stored, error):
        """A round went by without writing the event: its changes go out now, with the id known so far."""
        with self._lock:
            changes, stored.changes = stored.changes, []
        stored.refusals += 1
        if stored.refusals == 1:
            log.warning("%s not saved yet: %s; trying again every %g s", stored.describe(), error,
                        self.writer.retry_s)
        self._notify(stored, changes)

    def _done(self, stored, reason):
        """The event's job left the writer; ``reason``: why it was given up (None: written or replaced)."""
        if reason is None:
            return
        with self._lock:
            changes, stored.changes = stored.changes, []
            ended = stored.event.end is not None or self._closed
        if ended:
            log.error("%s dropped: %s%s", stored.describe(), reason, stored.files_left())
            self._forget(stored)
        else:
            log.warning("%s not saved for now: %s; tried again, with its pictures, when it changes",
                        stored.describe(), reason)
        self._notify(stored, changes)

    def _forget(self, stored):
        with self._lock:
            if self._events.get(stored.event.id) is stored:
                del self._events[stored.event.id]

    def _notify(self, stored, changes):
        for change in changes:
            message = {**change.to_dict(), "snapshot": stored.snapshot, "clip": stored.clip,
                       "catalogue_id": stored.catalogue_id, "camera": self.camera_name}
            for notifier in self.notifiers:
                notifier.notify(message)


def _picture_done(filename, reason):
    if reason is not None:
        log.warning("%s is saved but not catalogued (%s): the next start lists it", filename, reason)


def close_interrupted_events(catalogue):
    """Give an end to the events a crash or kill left open (their start: the last time known)."""
    interrupted = [event for event in catalogue.events() if event["end"] is None]
    for event in interrupted:
        catalogue.update_event(event["id"], end=event["start"])
    if interrupted:
        log.warning("closed %d events left open by the last run: %s", len(interrupted),
                    ", ".join(str(event["id"]) for event in interrupted))
    return len(interrupted)
