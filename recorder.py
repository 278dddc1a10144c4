"""Recording: camera frames through a bounded queue to an H.264 MP4 writer thread.

A feeder thread takes each live frame from ``camera.frames()`` (which holds the camera open) and
puts it in a queue bounded in bytes (QUEUE_BYTES); when the writer falls behind, frames are dropped
and counted, so the camera never waits and memory stays flat. The writer thread encodes H.264
yuv420p with PyAV into a fragmented MP4 (video_file.VideoFileWriter), so a crash or kill -9 leaves a
playable file. A clean stop remuxes it (no re-encode) into a regular MP4 with the index in front.
The file is locked (media_files.create_locked) from its reservation to its end, so start-up repair,
the catalogue's deletes and other processes leave it alone.
"""
import contextlib
import errno
import logging
import os
import queue
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import simplejpeg

import failures
from catalogue_fields import CatalogueError
from media_files import MediaExists, WriterLockError, check_media_name, create_locked, media_path, timestamped_name
from video_file import (EncoderQuality, VideoFileWriter, default_encoders, probe, rewrite_with_index_in_front,
                        trim_to_complete_fragments)

log = logging.getLogger(__name__)

MB = 1024 * 1024
DISK_CHECK_INTERVAL = 1.0       # seconds between free-space checks (and fsyncs) while recording
FEEDER_JOIN_TIMEOUT = 2.0
QUEUE_BYTES = 32 * MB           # pictures waiting for the writer: 36 at 640x480 (1.2 s), 5 at 1920x1080
ERROR_REASONS = ("disk_full", "write_error")
LATE_ENTRY_RETRY_S = 5.0        # a finished recording the catalogue refused is put again this often,
LATE_ENTRY_GIVE_UP_S = 600.0    # for this long; start-up repair fixes what is left


class RecordingError(RuntimeError):
    """A recording cannot be started or stopped; the message says why."""


class RecordingBusy(RecordingError):
    """A recording is already running."""


class NotRecording(RecordingError):
    """No recording is running."""


class InsufficientSpace(RecordingError):
    """The media folder has less free space than recording needs."""


def free_bytes(path):
    return shutil.disk_usage(path).free


class Recorder:
    """Start and stop recordings of one camera into the media folder, one at a time."""

    def __init__(self, camera, media_dir, *, catalogue=None, camera_name="", max_seconds=0,
                 min_free_mb=200, queue_frames=60, queue_bytes=QUEUE_BYTES, encoder="auto",
                 quality=EncoderQuality()):
        self.camera = camera
        self.media_dir = Path(media_dir)
        self.catalogue = catalogue
        self.camera_name = camera_name
        self.max_seconds = max_seconds or 0
        self.min_free_mb = min_free_mb or 0
        self.queue_frames = queue_frames
        self.queue_bytes = queue_bytes
        if encoder == "auto":
            self.encoders = default_encoders()
        else:
            self.encoders = (encoder,) if encoder == "libx264" else (encoder, "libx264")
        self.quality = quality
        self.late_entries = _LateEntries(catalogue)
        self._lock = threading.Lock()
        self._current = None
        self._last = None
        self._closed = False

    def start(self, filename=None, preroll=()):
        """Start recording into ``filename`` (default video_<date>_<time>.mp4); answer the status.

        ``preroll``: encoded frames from before the start (anything with seq, timestamp and jpeg,
        oldest first, as events.PreRoll gives them), written ahead of the live frames.
        """
        with self._lock:
            if self._closed:
                raise RecordingError("the recorder is shut down")
            if self._current is not None:
                raise RecordingBusy(f"already recording {self._current.name}; stop it first")
            candidates = self._names(filename)
            os.makedirs(self.media_dir, exist_ok=True)
            free = free_bytes(self.media_dir)
            if free < self.min_free_mb * MB:
                raise InsufficientSpace(f"only {free / MB:.0f} MB free in the media folder; recording "
                                        f"needs at least {self.min_free_mb} MB")
            name, path, lock = self._reserve(candidates)
            self._current = _Recording(self, name, path, lock, preroll)
            self._current.start()
        log.info("recording %s started", name)
        return self.status()

    def stop(self, filename=None, timeout=60.0):
        """Stop the running recording and answer what was saved, once the file is complete.

        With ``filename``, stop only that recording: an event clip that already ended must not stop
        a recording a person started since.
        """
        with self._lock:
            recording = self._current
            if recording is None:
                raise NotRecording("no recording is running")
            if filename is not None and recording.name != filename:
                raise NotRecording(f"{filename} is not being recorded (the recording is {recording.name})")
            recording.request_stop("stopped")
        if not recording.join(timeout):
            raise RecordingError(f"{recording.name} is still being finished; see the status")
        return recording.result

    def status(self):
        with self._lock:
            recording, last = self._current, self._last or {}
        status = {"recording": recording is not None, "file": None, "started": None, "elapsed_s": 0.0,
                  "frames": 0, "dropped": 0, "queued": 0, "encoder": last.get("encoder"),
                  "encode_ms_per_frame": None, "last_error": last.get("error"), "last_file": last.get("file"),
                  "last_reason": last.get("reason")}
        if recording is not None:
            status.update(recording.progress())
        return status

    def close(self, timeout=30.0):
        """Shutdown: stop a running recording cleanly; later starts are refused."""
        with self._lock:
            self._closed = True
            recording = self._current
            if recording is not None:
                recording.request_stop("shutdown")
        if recording is not None and not recording.join(timeout):
            log.warning("recording %s: not finished %.0f s after shutdown began", recording.name, timeout)
        self.late_entries.stop()

    @staticmethod
    def _names(filename):
        """The name to record into (MediaNameError when it is bad), or for a default one, choices."""
        if filename is not None:
            return [check_media_name(filename, (".mp4",))]
        stem, suffix = os.path.splitext(timestamped_name("video", ".mp4"))
        return [stem + suffix] + [f"{stem}-{number}{suffix}" for number in range(1, 100)]

    def _reserve(self, candidates):
        """Create the file empty and locked, so no other writer can take the name while the camera
        starts; answers (name, path, the lock's descriptor)."""
        for name in candidates:
            path = media_path(self.media_dir, name)
            try:
                return name, path, create_locked(path)
            except MediaExists:
                if name == candidates[-1]:
                    raise
            except WriterLockError as error:
                raise RecordingError(str(error)) from error

    def _finished(self, recording):
        with self._lock:
            if self._current is recording:
                self._current = None
            self._last = recording.result


class _Recording:
    """One recording: its feeder and writer threads, counters and outcome."""

    def __init__(self, recorder, name, path, lock, preroll=()):
        self.recorder = recorder
        self.name, self.path = name, path
        self._file_lock = lock          # the writer's lock on the file, released when it is finished
        self._preroll = list(preroll)
        self._after_seq = self._preroll[-1].seq if self._preroll else 0
        self.started = self._preroll[0].timestamp if self._preroll else time.time()
        self._started_monotonic = time.monotonic()
        self.queue = queue.Queue()      # bounded by _room(), in bytes and in pictures
        self.frames = self.dropped = 0
        self.cpu_seconds = 0.0
        self.reason = self.error = None
        self.result = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._reason_lock = threading.Lock()
        self._file = None
        self._feeder = threading.Thread(target=self._feed, name="recorder-feeder", daemon=True)
        self._writer = threading.Thread(target=self._write_all, name="recorder-writer", daemon=True)

    def start(self):
        self._feeder.start()
        self._writer.start()

    def join(self, timeout):
        """Wait until the file is finished (and, briefly, until the feeder lets the camera go).

        The feeder leaves at the camera's next frame, which a hung device may never deliver; the
        answer is whether the file is finished.
        """
        self._writer.join(timeout)
        self._feeder.join(FEEDER_JOIN_TIMEOUT)
        return self.done.is_set()

    def request_stop(self, reason, error=None):
        """Ask both threads to finish; the first reason given is the one reported."""
        with self._reason_lock:
            if self.reason is None:
                self.reason, self.error = reason, error
        self._stop.set()

    def progress(self):
        return {"file": self.name, "started": self.started, "frames": self.frames, "dropped": self.dropped,
                "queued": self.queue.qsize(),
                "elapsed_s": round(time.monotonic() - self._started_monotonic, 2),
                "encoder": self._file.encoder if self._file else None,
                "encode_ms_per_frame": self._cpu_ms_per_frame(), "last_error": self.error}

    def _cpu_ms_per_frame(self):
        return round(self.cpu_seconds * 1000 / self.frames, 3) if self.frames else None

    # -- the feeder thread: camera -> queue, never blocking the camera -----------------------
    def _feed(self):
        # Checks every 0.5 s for a stopped camera or recording, even while a hung device sends nothing.
        frames = self.recorder.camera.frames(timeout=0.5, until=self._stop)
        try:
            for frame in frames:
                if not frame.live or frame.seq <= self._after_seq:
                    continue            # "no signal" frames (the video holds the last picture), pre-roll
                # The capture time on the monotonic clock: the Pi's wall clock may jump when NTP syncs.
                age = min(max(time.time() - frame.timestamp, 0.0), 1.0)
                if self.queue.qsize() >= self._room(frame.image):
                    self.dropped += 1   # this thread alone puts, so the queue cannot outgrow _room
                else:
                    self.queue.put_nowait((time.monotonic() - age, frame.image))
            self.request_stop("camera_stopped", "the camera stopped")
        except Exception as error:      # the thread's top level
            log.exception("recording %s: the feeder failed", self.name)
            self.request_stop("camera_error", f"{type(error).__name__}: {error}")
        finally:
            frames.close()              # releases the camera

    def _room(self, image):
        """How many pictures like ``image`` the queue may hold: queue_bytes' worth, at most queue_frames."""
        return max(1, min(self.recorder.queue_frames, self.recorder.queue_bytes // image.nbytes))

    # -- the writer thread: queue -> H.264 MP4 -----------------------------------------------
    def _write_all(self):
        try:
            self._write_preroll()
            next_disk_check = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_disk_check:
                    self._check_free_space()
                    if self._file is not None:
                        self._file.sync()
                    next_disk_check = time.monotonic() + DISK_CHECK_INTERVAL
                self._check_length()
                try:
                    self._write(*self.queue.get(timeout=0.1))
                except queue.Empty:
                    continue
            while True:                 # frames captured before the stop still belong in the file
                try:
                    self._write(*self.queue.get_nowait())
                except queue.Empty:
                    break
        except OSError as error:        # av.error.OSError is one too
            full = error.errno == errno.ENOSPC
            log.error("recording %s: %s", self.name, error)
            self.request_stop("disk_full" if full else "write_error",
                              f"{'the disk is full' if full else 'cannot write the file'}: {error}")
        except Exception as error:      # the thread's top level
            log.exception("recording %s: the writer failed", self.name)
            self.request_stop("write_error", f"{type(error).__name__}: {error}")
        finally:
            self._stop.set()
            self._finish()

    def _write_preroll(self):
        """The frames from before the start, at their capture times on the monotonic clock."""
        preroll, self._preroll = self._preroll, []
        now_wall, now_monotonic = time.time(), time.monotonic()
        for frame in preroll:
            image = simplejpeg.decode_jpeg(frame.jpeg, colorspace="BGR")
            self._write(now_monotonic - max(now_wall - frame.timestamp, 0.0), image)

    def _check_length(self):
        limit = self.recorder.max_seconds
        if limit and time.monotonic() - self._started_monotonic >= limit:
            self.request_stop("max_length", f"reached the maximum length of {limit:g} s")

    def _check_free_space(self):
        minimum = self.recorder.min_free_mb
        if not minimum:
            return
        free = free_bytes(self.recorder.media_dir)
        if free < minimum * MB:
            self.request_stop("low_disk", f"free disk space fell below {minimum} MB "
                                          f"({free / MB:.0f} MB left)")

    def _write(self, captured, image):
        started = time.thread_time()
        if self._file is None:
            height, width = image.shape[:2]
            self._file = VideoFileWriter(self.path, width, height, self.recorder.encoders,
                                         self.recorder.quality)
        self._file.write(image, captured)
        self.frames += 1
        self.cpu_seconds += time.thread_time() - started
        if self.frames == 1:            # the file exists now, with its first fragment on the way
            self._catalogue("put", self.name, "video", created=self.started, **self._picture_fields())

    # -- finishing ---------------------------------------------------------------------------
    def _finish(self):
        """Finish the file and catalogue it; whatever fails on the way, the recorder is released, so
        the next recording can start."""
        self.request_stop("stopped")            # a no-op unless something asked for the stop before
        fragmented, frames, duration, size = True, self.frames, self._file.duration if self._file else 0.0, None
        try:
            fragmented = self._close_file() if self._file is not None else False
            frames, duration, size = self._saved()
            if not frames:
                self._discard()
            else:
                self._catalogue_at_end(size, duration)
        except Exception as error:      # the writer thread's last step: a stat or unlink that failed
            log.error("recording %s: finishing the file failed: %s", self.name, error)
            self.error = self.error or f"finishing the file failed: {error}"
        finally:
            self._release_file()
        self.result = {"file": self.name if frames else None, "duration": round(duration, 3), "size": size,
                       "frames": frames, "dropped": self.dropped, "reason": self.reason, "error": self.error,
                       "encoder": self._file.encoder if self._file else None, "fragmented": fragmented,
                       "encode_ms_per_frame": self._cpu_ms_per_frame()}
        log.info("recording %s ended (%s): %d frames, %.1f s, %d dropped%s", self.name, self.reason, frames,
                 duration, self.dropped, f"; {self.error}" if self.error else "")
        self.done.set()
        self.recorder._finished(self)

    def _catalogue_at_end(self, size, duration):
        """Add or replace the entry (whatever listed the name meanwhile, it is this file); when the
        catalogue refuses, it is put again later (late_entries)."""
        fields = dict(created=self.started, size=size, duration=round(duration, 3), **self._picture_fields())
        if not self._catalogue("put", self.name, "video", **fields) and self.recorder.catalogue is not None:
            self.recorder.late_entries.add(self.name, fields)

    def _release_file(self):
        """Let go of the writer's lock: from now on the file may be deleted."""
        try:
            os.close(self._file_lock)
        except OSError as error:
            log.warning("recording %s: closing the file's lock failed: %s", self.name, error)

    def _close_file(self):
        """Close the encoder and container, then rewrite with the index in front when that is safe.

        Answers whether the file stays fragmented (after a write error, or without room to rewrite).
        """
        clean = self.reason not in ERROR_REASONS
        try:
            self._file.close(flush=clean)
        except Exception as error:      # e.g. ENOSPC while writing the last fragment
            log.error("recording %s: closing the file failed: %s", self.name, error)
            self.error = self.error or f"closing the file failed: {error}"
            clean = False
        try:
            if not clean:
                trim_to_complete_fragments(self._file_lock, self.name)
                return True
            if free_bytes(self.recorder.media_dir) < os.fstat(self._file_lock).st_size + 16 * MB:
                log.warning("recording %s: kept fragmented, too little free space to rewrite it", self.name)
                return True
            old_lock = self._file_lock
            self._file_lock = rewrite_with_index_in_front(self.path, source=old_lock)
            os.close(old_lock)          # the lock on the replaced file; the new one is locked already
            return False
        except Exception as error:      # the fragmented file stays, and it plays
            log.warning("recording %s: kept fragmented, rewriting failed: %s", self.name, error)
            return True

    def _saved(self):
        """(frames, duration in s, size) of the file on disk; no frames when it is absent or empty."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0, 0.0, 0
        if size == 0:
            return 0, 0.0, 0
        try:
            frames, duration = probe(self.path)
            return frames, duration, size
        except Exception as error:      # unreadable: keep the file for a person to look at
            log.warning("recording %s: cannot read the file back: %s", self.name, error)
            self.error = self.error or f"cannot read the file back: {error}"
            return self.frames, self._file.duration if self._file else 0.0, size

    def _discard(self):
        """No frame was saved: the file goes, and the catalogue must not list it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._catalogue("remove", self.name, missing_ok=True)

    def _picture_fields(self):
        return {"width": self._file.width, "height": self._file.height, "camera": self.recorder.camera_name}

    def _catalogue(self, action, *args, **fields):
        """Call the catalogue, if any; answer whether that worked. A failure never stops a recording."""
        catalogue = self.recorder.catalogue
        if catalogue is None:
            return False
        try:
            getattr(catalogue, action)(*args, **fields)
            return True
        except Exception as error:      # the catalogue's scan can catch up later
            log.warning("recording %s: catalogue %s failed: %s", self.name, action, error)
            self.error = self.error or f"catalogue {action} failed: {error}"
            return False


class _LateEntries:
    """Finished recordings whose entry the catalogue refused (locked by another program, its disk full):
    put again every few seconds from one daemon thread, until the catalogue takes them or a while has
    passed (then start-up repair does it)."""

    def __init__(self, catalogue):
        self.catalogue = catalogue
        self.retry_s, self.give_up_s = LATE_ENTRY_RETRY_S, LATE_ENTRY_GIVE_UP_S
        self._waiting = {}              # name -> (fields, give-up time on the monotonic clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def add(self, name, fields):
        with self._lock:
            self._waiting[name] = (fields, time.monotonic() + self.give_up_s)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="recorder-late-entries", daemon=True)
                self._thread.start()

    def stop(self, timeout=5.0):
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self):
        while not self._stop.wait(self.retry_s):
            try:
                self._put_waiting()
            except Exception:           # the thread's top level: try again at the next round
                log.exception("recording catalogue retries failed")
            with self._lock:
                if not self._waiting:
                    self._thread = None
                    return

    def _put_waiting(self):
        with self._lock:
            waiting = dict(self._waiting)
        for name, (fields, give_up_at) in waiting.items():
            try:
                self.catalogue.put(name, "video", **fields)
                log.info("recording %s: catalogued its size and duration now that the catalogue takes it", name)
            except (CatalogueError, sqlite3.Error, OSError, ValueError) as error:
                if failures.situation(error) is not None and time.monotonic() < give_up_at:
                    continue            # still locked or full: the next round
                log.warning("recording %s: gave up cataloguing its size and duration (%s); the next start "
                            "does it", name, error)
            with self._lock:
                if self._waiting.get(name) == (fields, give_up_at):    # not added again meanwhile
                    del self._waiting[name]
