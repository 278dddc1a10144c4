"""Catalogue writes nobody waits for: one daemon thread per app makes them in order, and makes them
again while the catalogue cannot take them (locked by another program, its disk full).

What is handed over (``submit``) is a job: a recording's entry at its first frame and at its end, the
scene watch's events and pictures, start-up's closing of the events a crash left open. Each job is
keyed by what it writes (("media", name), ("event", id)); a job handed over while one of its key still
waits takes that one's place, so only the newest write of a file or an event is made. A round tries
the waiting jobs in order and ends at the first one the surroundings refuse (failures.situation:
locked, full, read-only...), so a backlog waits for a lock once a round, not once a job; the next
round comes ``retry_s`` later, or at once when somebody waits for a job. A job refused for another
reason, or still refused ``give_up_s`` after it was handed over, is given up: its ``done`` hears why
and says so in the log (start-up repair puts right what is left). ``close()`` makes a last attempt.
"""
import dataclasses
import logging
import math
import threading
import time

from camera_server import failures

log = logging.getLogger(__name__)

RETRY_S = 5.0           # after a refusal, the next round comes this much later
GIVE_UP_S = 600.0       # a job the catalogue still refuses this long after it was handed over is given up
CLOSE_S = 5.0           # how long close() waits for the last round


class NotWritten(Exception):
    """Why a job was given up; its ``done`` is called with it."""


@dataclasses.dataclass(eq=False)
class Job:
    """One write on its way. ``answered`` is set once it is written or given up, or a round went by
    without writing it (for somebody who waits a bounded time for it)."""
    key: object
    write: object                     # write(catalogue); raises when the catalogue refuses
    refused: object = None            # refused(error): a round went by without writing it
    done: object = None               # done(None): written, or replaced by a newer write; done(NotWritten)
    give_up_at: float = math.inf
    error: BaseException | None = None          # the catalogue's last refusal
    written: bool = False
    finished: bool = False
    reason: NotWritten | None = None            # why it was given up
    answered: threading.Event = dataclasses.field(default_factory=threading.Event)


class CatalogueWriter:
    """The app's background writes to the catalogue: handed over by any thread, made by one."""

    def __init__(self, catalogue, retry_s=RETRY_S, give_up_s=GIVE_UP_S, clock=time.monotonic):
        self.catalogue = catalogue
        self.retry_s, self.give_up_s = retry_s, give_up_s
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs = {}                 # the waiting jobs by key, in the order their keys came
        self._running = None            # the job being written
        self._retry_at = None           # after a refusal: when the next round is due
        self._hurry = False             # somebody waits: the next round comes now
        self._rounds_begun = self._rounds_ended = 0
        self._round_ended = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._thread = None

    def start(self):
        """Start the thread, unless it runs or the writer is closed; answers the writer."""
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="catalogue-writer", daemon=True)
                self._thread.start()
        return self

    def submit(self, key, write, *, refused=None, done=None):
        """Hand over ``write(catalogue)``, in place of the waiting job of ``key``; never waits. Answers the Job."""
        job = Job(key, write, refused, done, self._clock() + self.give_up_s)
        with self._lock:
            closed = self._closed
            replaced = None if closed else self._jobs.get(key)
            if not closed:
                self._jobs[key] = job
            if replaced is self._running:
                replaced = None         # the round finishes it after its attempt
        if closed:
            self._finish(job, NotWritten("it came after the close"))
            return job
        self._wake.set()
        if replaced is not None:
            self._finish(replaced, None)
        return job

    @property
    def waiting(self):
        """The keys of the jobs not written yet."""
        with self._lock:
            return list(self._jobs)

    def wait(self, job, timeout):
        """Make the next round now and wait up to ``timeout`` s until it answers ``job``; whether it is written."""
        if self._round_now():
            job.answered.wait(timeout)
        return job.written

    def flush(self, timeout):
        """Make a round now and wait up to ``timeout`` s for its end (every job tried, or a refusal)."""
        with self._lock:
            target = self._rounds_begun + 1
        if self._round_now():
            with self._round_ended:
                self._round_ended.wait_for(lambda: self._rounds_ended >= target, timeout)

    def close(self, timeout=CLOSE_S):
        """Take no more jobs; a last round for those waiting, for up to ``timeout`` s; the rest are given up.

        Without the thread (never started) the last round is made here, and a lock makes it wait.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is None:
            self.write_due(last_attempt=True)
        else:
            thread.join(timeout)
        with self._lock:
            left = list(self._jobs.values())
        for job in left:
            why = f" ({job.error})" if job.error is not None else ""
            self._finish(job, NotWritten(f"the close came before the catalogue took it{why}"))

    # -- the rounds --------------------------------------------------------------------------
    def write_due(self, last_attempt=False):
        """One round, when one is due: each waiting job in order, until the surroundings refuse one."""
        with self._lock:
            if not (last_attempt or self._hurry or self._retry_at is None or self._clock() >= self._retry_at):
                return
            self._hurry, self._retry_at = False, None
            self._rounds_begun += 1
            jobs = list(self._jobs.values())
        try:
            for index, job in enumerate(jobs):
                error = self._attempt(job)
                if error is not None:
                    self._pass_over(jobs[index:], error)
                    with self._lock:
                        self._retry_at = self._clock() + self.retry_s
                    return
        finally:
            with self._lock:
                self._rounds_ended += 1
                self._round_ended.notify_all()

    def _attempt(self, job):
        """Write one job; answers the catalogue's error when the surroundings refuse it (the round ends there)."""
        with self._lock:
            if self._jobs.get(job.key) is not job:
                return None             # replaced, or given up, meanwhile
            self._running = job
        try:
            job.write(self.catalogue)
        except Exception as error:      # whatever the catalogue says: a refusal, kept as the job's error
            job.error = error
            if failures.situation(error) is not None:
                return error
            self._finish(job, NotWritten(f"the catalogue refused it: {error}"))
            return None
        finally:
            with self._lock:
                self._running = None
        self._finish(job, None, written=True)
        return None

    def _pass_over(self, jobs, error):
        """After a refusal: the round leaves these jobs for the next one, or gives them up when it is time."""
        now = self._clock()
        for job in jobs:
            with self._lock:
                replaced = self._jobs.get(job.key) is not job
            if replaced:
                self._finish(job, None)
            elif now >= job.give_up_at:
                self._finish(job, NotWritten(f"the catalogue did not take it in {_duration(self.give_up_s)} "
                                             f"({job.error or error})"))
            else:
                job.error = job.error or error
                _call(job.refused, error)
                job.answered.set()

    def _finish(self, job, reason, written=False):
        """The job leaves the writer (once): its done hears why."""
        with self._lock:
            if job.finished:
                return
            job.finished, job.written, job.reason = True, written, reason
            if self._jobs.get(job.key) is job:
                del self._jobs[job.key]
        if job.done is not None:
            _call(job.done, reason)
        elif reason is not None:
            log.warning("catalogue: gave up writing %s: %s", job.key, reason)
        job.answered.set()

    def _round_now(self):
        """Have the thread make the next round at once (True), or make it here when the thread does not run."""
        with self._lock:
            self._hurry = True
            thread = self._thread
        if thread is None or not thread.is_alive():
            self.write_due()
            return False
        self._wake.set()
        return True

    # -- the thread --------------------------------------------------------------------------
    def _run(self):
        while not self._stop.is_set():
            self._wake.wait(self._wait_s())
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.write_due()
            except Exception:           # the thread's top level: report, back off, go on
                log.exception("catalogue writer: a round failed")
                self._stop.wait(self.retry_s)
        try:
            self.write_due(last_attempt=True)
        except Exception:               # still the top level: close() gives up what is left
            log.exception("catalogue writer: the last round failed")

    def _wait_s(self):
        """Seconds until the next round after a refusal; None (until something is handed over) without one."""
        with self._lock:
            if self._hurry:
                return 0.0
            return None if self._retry_at is None else max(self._retry_at - self._clock(), 0.0)


def _call(callback, *args):
    """A job's callback; its failure is logged and does not stop the round."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:                   # part of the writer's top level: the other jobs go on
        log.exception("catalogue writer: a job's callback failed")


def _duration(seconds):
    return f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds:g} s"
