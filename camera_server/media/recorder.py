"""Recording: camera frames through a bounded queue to an H.264 MP4 writer thread.

A feeder thread takes each live frame from ``camera.frames()`` (which holds the camera open) and
puts it in a queue bounded in bytes (QUEUE_BYTES); when the writer falls behind, frames are dropped
and counted, so the camera never waits and memory stays flat. The writer thread encodes H.264
yuv420p with PyAV into a fragmented MP4 (video_file.VideoFileWriter), so a crash or kill -9 leaves a
playable file. A clean stop remuxes it (no re-encode) into a regular MP4 with the index in front.
The file is locked (files.create_locked) from its reservation until the catalogue has its
entry, so start-up repair, the catalogue's deletes and other processes leave it alone.

Where the camera's live H.264 encoder has the recording's settings (``live``), a recording without
a pre-roll encodes nothing itself: the writer thread writes the live encode's initialization segment
and fragments to the file (video_file.SharedVideoFile), one encode for the viewers and the recording.

The recording's threads never touch the catalogue: its entries (at the first frame, so the file is
listed while it records, and at the end with its size and duration) are handed to the app's
catalogue writer (writer.py), which retries while the catalogue is locked or full, and which
closes the lock on the finished file once the entry is written or given up. The recorder is free
for the next recording as soon as the file is finished.
"""
import contextlib
import errno
import logging
import os
import queue
import shutil
import threading
import time
from pathlib import Path

import simplejpeg

from camera_server.media.catalogue import BUSY_TIMEOUT_S
from camera_server.media.files import (MediaExists, WriterLockError, check_media_name, create_locked, media_path,
                                       timestamped_name)
from camera_server.media.video_file import (EncoderQuality, SharedVideoFile, VideoFileWriter, encoders_for, probe,
                                            rewrite_with_index_in_front, trim_to_complete_fragments)
from camera_server.stream.h264 import EncoderUnavailable, StreamChanged

log = logging.getLogger(__name__)

MB = 1024 * 1024
DISK_CHECK_INTERVAL = 1.0       # seconds between free-space checks (and fsyncs) while recording
FEEDER_JOIN_TIMEOUT = 2.0
QUEUE_BYTES = 32 * MB           # pictures waiting for the writer: 36 at 640x480 (1.2 s), 5 at 1920x1080
ERROR_REASONS = ("disk_full", "write_error")
ENTRY_WAIT_S = BUSY_TIMEOUT_S + 5.0    # how long stop() waits for the catalogue to take the entry


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

    def __init__(self, camera, media_dir, *, catalogue_writer=None, max_seconds=0,
                 min_free_mb=200, queue_frames=60, queue_bytes=QUEUE_BYTES, encoder="auto",
                 quality=EncoderQuality(), live=None):
        """``live``: the camera's LiveH264 when its encode has the recording's settings, else None."""
        self.camera = camera
        self.live = live
        self.media_dir = Path(media_dir)
        self.catalogue_writer = catalogue_writer    # a writer.CatalogueWriter, or None: no entries
        self.max_seconds = max_seconds or 0
        self.min_free_mb = min_free_mb or 0
        self.queue_frames = queue_frames
        self.queue_bytes = queue_bytes
        self.encoders = encoders_for(encoder)
        self.quality = quality
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
            self._current = _Recording(self, name, path, lock, preroll, self._live_feed(preroll))
            self._current.start()
        log.info("recording %s started", name)
        return self.status()

    def stop(self, filename=None, timeout=60.0):
        """Stop the running recording and answer what was saved, once the file is complete and (for
        ENTRY_WAIT_S at most) the catalogue lists it; when it does not yet, the answer's error says so.

        With ``filename``, stop only that recording: an event clip that already ended must not stop
        a recording a person started since.
        """
        deadline = time.monotonic() + timeout
        recording = self._ask_to_stop(filename)
        if not recording.join(timeout):
            raise RecordingError(f"{recording.name} is still being finished; see the status")
        return recording.answer(min(max(deadline - time.monotonic(), 0.0), ENTRY_WAIT_S))

    def request_stop(self, filename=None):
        """Ask the running recording (only ``filename``, when given) to stop, without waiting for its end."""
        self._ask_to_stop(filename)

    def _ask_to_stop(self, filename):
        with self._lock:
            recording = self._current
            if recording is None:
                raise NotRecording("no recording is running")
            if filename is not None and recording.name != filename:
                raise NotRecording(f"{filename} is not being recorded (the recording is {recording.name})")
        recording.request_stop("stopped")
        return recording

    def status(self):
        with self._lock:
            recording, last = self._current, self._last or {}
        status = {"recording": recording is not None, "file": None, "started": None, "elapsed_s": 0.0,
                  "frames": 0, "dropped": 0, "queued": 0, "encoder": last.get("encoder"), "shared_encode": False,
                  "encode_ms_per_frame": None, "last_error": last.get("error"), "last_file": last.get("file"),
                  "last_reason": last.get("reason")}
        if recording is not None:
            status.update(recording.progress())
        return status

    def shut_down(self):
        """Refuse later starts and ask the running recording to stop, without waiting; answers it, or None."""
        with self._lock:
            self._closed = True
            recording = self._current
        if recording is not None:
            recording.request_stop("shutdown")
        return recording

    def close(self, timeout=30.0):
        """Shutdown: stop a running recording cleanly (its entry is left to the catalogue writer)."""
        recording = self.shut_down()
        if recording is not None and not recording.join(timeout):
            log.warning("recording %s: not finished %.0f s after shutdown began", recording.name, timeout)

    def _live_feed(self, preroll):
        """A feed of the camera's live encode to record from, or None: encode here (a pre-roll's
        pictures are not in the live encode; no encoder for it)."""
        if self.live is None or preroll:
            return None
        try:
            return self.live.join()
        except EncoderUnavailable as error:
            log.info("recording with an encode of its own: %s", error)
            return None

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

    def __init__(self, recorder, name, path, lock, preroll=(), live=None):
        """``live``: a LiveFeed to write from, instead of encoding the camera's frames here."""
        self.recorder = recorder
        self._live = live
        self.name, self.path = name, path
        self._file_lock = lock          # the writer's lock on the file, until the catalogue has its entry
        self._preroll = list(preroll)
        self._after_seq = self._preroll[-1].seq if self._preroll else 0
        self.started = self._preroll[0].timestamp if self._preroll else time.time()
        self._started_monotonic = time.monotonic()
        self.queue = queue.Queue()      # bounded by _room(), in bytes and in pictures
        self.frames = self.dropped = 0
        self.cpu_seconds = 0.0
        self.reason = self.error = None
        self.result = None
        self.entry = None               # the catalogue writer's job of the entry at the end
        self.done = threading.Event()
        self._stop = threading.Event()
        self._reason_lock = threading.Lock()
        self._file = None
        self._feeder = threading.Thread(target=self._feed, name="recorder-feeder", daemon=True)
        self._writer = threading.Thread(target=self._write_all, name="recorder-writer", daemon=True)

    def start(self):
        try:
            if self._live is None:
                self._feeder.start()
            self._writer.start()
        except BaseException:
            self._close_live()
            raise

    def join(self, timeout):
        """Wait until the file is finished (and, briefly, until the feeder lets the camera go).

        The feeder leaves at the camera's next frame, which a hung device may never deliver; the
        answer is whether the file is finished.
        """
        self._writer.join(timeout)
        if self._live is None:
            self._feeder.join(FEEDER_JOIN_TIMEOUT)
        return self.done.is_set()

    def request_stop(self, reason, error=None):
        """Ask both threads to finish; the first reason given is the one reported, and an error noted
        before stays."""
        with self._reason_lock:
            if self.reason is None:
                self.reason, self.error = reason, self.error or error
        self._stop.set()

    def note_error(self, error):
        """Keep the first error to report (any thread)."""
        with self._reason_lock:
            self.error = self.error or error

    def answer(self, timeout):
        """The result, once the catalogue has the entry or ``timeout`` s went by; the error says when it
        does not have it yet."""
        entry, writer = self.entry, self.recorder.catalogue_writer
        if entry is None or writer.wait(entry, timeout):
            return self.result
        return dict(self.result, error=self.result["error"] or _not_listed(entry, timeout))

    def progress(self):
        return {"file": self.name, "started": self.started, "frames": self.frames, "dropped": self.dropped,
                "queued": self.queue.qsize(),
                "elapsed_s": round(time.monotonic() - self._started_monotonic, 2),
                "encoder": self._file.encoder if self._file else None, "shared_encode": self._live is not None,
                "encode_ms_per_frame": self._cpu_ms_per_frame(), "last_error": self.error}

    def _cpu_ms_per_frame(self):
        return round(self.cpu_seconds * 1000 / self.frames, 3) if self.frames else None

    # -- the feeder thread: camera -> queue, never blocking the camera -----------------------
    def _feed(self):
        # Checks every 0.5 s for a stopped camera or recording, even while a hung device sends nothing.
        frames = self.recorder.camera.frames(timeout=0.5, until=self._stop.is_set)
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
                self._write_next(0.1)
            while self._write_next(0):  # frames captured before the stop still belong in the file
                pass
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
            self._close_live()
            self._finish()

    def _write_next(self, timeout):
        """Write the next picture (or, from the live encode, segment or fragment) that comes within
        ``timeout`` s; answer whether there was one."""
        if self._live is not None:
            try:
                item = self._live.next_in_stream(timeout)
            except StreamChanged as error:
                self.request_stop("camera_error", str(error))
                return False
            if item is not None:
                self._write_shared(item)
            elif self._live.ended:
                self.request_stop("camera_stopped", "the camera stopped")
            return item is not None
        try:
            self._write(*self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait())
        except queue.Empty:
            return False
        return True

    def _close_live(self):
        if self._live is not None:
            self._live.close()

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
        self._wrote_frame(started)

    def _write_shared(self, item):
        """The live encode's initialization segment (a feed starts with it), or a fragment."""
        started = time.thread_time()
        if self._file is None:
            self._file = SharedVideoFile(self.path, item)
            return
        self._file.write(item)
        self._wrote_frame(started)

    def _wrote_frame(self, started):
        self.frames += 1
        self.cpu_seconds += time.thread_time() - started
        if self.frames == 1:            # the file exists now, with its first fragment on the way: list it
            fields = dict(created=self.started, **self._picture_fields())
            self._catalogue(lambda catalogue: catalogue.put(self.name, "video", **fields), self._listed)

    # -- finishing ---------------------------------------------------------------------------
    def _finish(self):
        """Finish the file and hand its entry to the catalogue writer; whatever fails on the way, the
        recorder is released, so the next recording can start."""
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
            self.note_error(f"finishing the file failed: {error}")
        finally:
            if self.entry is None:      # else the catalogue writer lets go of the file once it has the entry
                self._release_file()
        self.result = {"file": self.name if frames else None, "duration": round(duration, 3), "size": size,
                       "frames": frames, "dropped": self.dropped, "reason": self.reason, "error": self.error,
                       "encoder": self._file.encoder if self._file else None, "fragmented": fragmented,
                       "shared_encode": self._live is not None,
                       "encode_ms_per_frame": self._cpu_ms_per_frame()}
        log.info("recording %s ended (%s): %d frames, %.1f s, %d dropped%s", self.name, self.reason, frames,
                 duration, self.dropped, f"; {self.error}" if self.error else "")
        self.done.set()
        self.recorder._finished(self)

    def _catalogue_at_end(self, size, duration):
        """Hand over the entry with the size and duration (a put: whatever listed the name meanwhile,
        it is this file), and with it the lock on the file, which the catalogue writer closes."""
        fields = dict(created=self.started, size=size, duration=round(duration, 3), **self._picture_fields())
        self.entry = self._catalogue(lambda catalogue: catalogue.put(self.name, "video", **fields), self._entered)

    def _listed(self, reason):
        """The entry at the first frame left the catalogue writer; ``reason``: why it was given up."""
        if reason is not None:
            log.warning("recording %s: not listed while it records: %s", self.name, reason)
            self.note_error(f"the catalogue did not list it while it recorded: {reason}")

    def _entered(self, reason):
        """The entry at the end left the catalogue writer: the file may be deleted from now on."""
        self._release_file()
        if reason is not None:
            log.warning("recording %s: gave up cataloguing its size and duration (%s); the next start does it",
                        self.name, reason)

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
        self._catalogue(lambda catalogue: catalogue.remove(self.name, missing_ok=True), self._forgotten)

    def _forgotten(self, reason):
        if reason is not None:
            log.warning("recording %s: its entry is not removed (%s); the next start does it", self.name, reason)

    def _picture_fields(self):
        return {"width": self._file.width, "height": self._file.height, "camera": self.recorder.camera.name}

    def _catalogue(self, write, done):
        """Hand ``write(catalogue)`` for this file to the catalogue writer (never waits); the job, None
        without a writer."""
        writer = self.recorder.catalogue_writer
        return None if writer is None else writer.submit(("media", self.name), write, done=done)


def _not_listed(entry, waited):
    """What the stop answer says about an entry the catalogue has not taken yet (None: a newer one took
    its place)."""
    if entry.finished:
        return entry.reason and f"the catalogue did not take its entry ({entry.reason}): the next start lists it"
    if entry.error is None:
        return f"the catalogue did not answer in {waited:.0f} s: the recording is listed once it does"
    return f"not in the catalogue yet ({entry.error}): the recording is listed once the catalogue takes it"
