"""Scene watch: the scene-change monitor (seed 003), motion (seed 004) and object detection (seed 002)
on the live frames, turned into saved pictures, events, clips and notifications.

One daemon thread reads the camera's frames while the monitor or motion detection is on (so the
camera stays open while watched); object detection runs in its own thread on the newest frame with
motion. Nothing here slows the camera thread: it only draws the latest boxes on the stream. The
watch thread never waits for the catalogue: it hands each event change and each picture to list to
the event store, whose writes the app's catalogue writer makes before it notifies (event_store), so a
failing webhook or broker cannot lose an event, and a catalogue that cannot take it (locked, disk full)
delays neither the analysis, nor the event's end, nor its clip. An event's clip is asked to stop
without waiting for its file to be finished or catalogued (Recorder.request_stop). Pictures are saved only while the
media folder's disk has min_free_mb free, and the monitor saves at most
monitor_max_changes_per_hour changes.
"""
import logging
import math
import shutil
import threading
import time

from camera_server import failures
from camera_server.media.pictures import save_picture
from camera_server.media.recorder import NotRecording, RecordingError
from camera_server.settings import Settings
from camera_server.watch.detection import DetectionWorker, create_detector
from camera_server.watch.event_store import EventStore
from camera_server.watch.events import ENDED, STARTED, EventTracker, PreRoll
from camera_server.watch.monitor import SceneMonitor, validate_threshold
from camera_server.watch.motion import MotionDetector, draw_boxes, load_mask_file, parse_masks
from camera_server.watch.notify import MqttNotifier, WebhookNotifier

log = logging.getLogger(__name__)

NOTIFY_DRAIN_S = 5.0       # at shutdown, how long the notifiers may go on delivering what is queued
NO_FRAME_TICK_S = 0.5      # without a frame for this long (a hung device) time still passes for events
DETECTIONS_SHOWN_S = 1.0   # detection boxes stay on the stream until replaced or this old
DISK_CHECK_S = 5.0         # how often the free space of the media folder is looked at
WRITE_RETRY_S = 60.0       # after a picture could not be written (a read-only or failing disk), the next try
MB = 1024 * 1024

# The detector_* settings each detector takes, and the option of create_detector() each becomes.
_DETECTOR_SETTINGS = {
    "": {},
    "hog": {"detector_confidence": "min_confidence"},
    "haar": {"detector_model": "cascade"},
    "dnn": {"detector_model": "model", "detector_config": "config", "detector_labels": "labels",
            "detector_confidence": "min_confidence"},
}
_DETECTOR_KEYS = ("detector_model", "detector_config", "detector_labels", "detector_confidence")


class SceneWatch:
    def __init__(self, camera, catalogue, media_dir, *, writer, monitor, motion, tracker, recorder=None,
                 detector=None, preroll=None, postroll_s=5.0, record_events=False, notifiers=(),
                 show_boxes=True, min_free_mb=0):
        self.camera, self.catalogue, self.media_dir = camera, catalogue, media_dir
        self.min_free_mb = min_free_mb
        self.monitor, self.motion, self.tracker = monitor, motion, tracker
        self.recorder, self.preroll, self.postroll_s = recorder, preroll, postroll_s
        self.record_events = record_events and recorder is not None
        self.notifiers = list(notifiers)
        self.events = EventStore(writer, self.notifiers, camera.name)   # writer: the app's media.writer.CatalogueWriter
        self.show_boxes = show_boxes
        self.detector_name = type(detector).__name__ if detector else None
        self._worker = DetectionWorker(detector, self._on_detections).start() if detector else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._monitoring = self._watching_motion = False
        self._baseline_jpeg = None
        self._detections_lock = threading.Lock()
        self._new_detections = []        # handed over by the worker, not yet given to the tracker
        self._shown_detections = (0.0, ())   # the newest result and its frame time, for the overlay
        self._detections_since = math.inf    # results for frames older than this belong to no event
        self._boxes = ()                 # what the overlay draws: (box, label) pairs
        self._low_disk = None            # why no picture is saved, while the disk is below min_free_mb
        self._disk_checked_at = -math.inf
        self._write_failure = None       # (why the last picture could not be written, when to try again)
        self._clip = None                # the event clip being recorded, and when to stop it
        self._clip_stop_at = None
        self._relearn_background = True  # at the start and after "no signal": the scene may differ
        self.changes_saved = 0
        self.last_change = None

    # -- the scene-change monitor ------------------------------------------------------------
    def take_baseline(self):
        """Remember the current picture as the scene to compare with (CameraError without one)."""
        frame = self.camera.current_frame()
        self.monitor.set_baseline(frame.image)
        self._baseline_jpeg = frame.jpeg
        return {"baseline_taken": frame.timestamp}

    @property
    def baseline_jpeg(self):
        return self._baseline_jpeg

    def start_monitor(self, threshold=None):
        """Start comparing; ValueError for a bad threshold, CameraError without a baseline (and then
        the threshold stays as it was)."""
        threshold = None if threshold is None else validate_threshold(threshold)
        if not self.monitor.has_baseline:
            self.take_baseline()
        if threshold is not None:
            self.monitor.threshold = threshold
        with self._lock:
            self._monitoring = True
            self._ensure_thread()
        return self.status()["monitor"]

    def stop_monitor(self):
        with self._lock:
            self._monitoring = False
        return self.status()["monitor"]

    def delete_changes(self, camera=None):
        """Delete the saved change pictures, of ``camera`` only when given (the baseline stays); the
        number deleted."""
        entries = self.catalogue.entries(kind="change", camera=camera)
        for entry in entries:
            self.catalogue.remove(entry["filename"], delete_file=True)
        return len(entries)

    # -- motion ------------------------------------------------------------------------------
    def start_motion(self):
        with self._lock:
            if not self._watching_motion:
                self._relearn_background = True     # the watch thread resets the motion detector
                self._forget_detections(since=time.time())
                if self.show_boxes:
                    self.camera.add_overlay(self._draw_boxes)
            self._watching_motion = True
            self._ensure_thread()
        return self.status()["motion"]

    def stop_motion(self):
        with self._lock:
            self._watching_motion = False
            self._boxes = ()
            self._forget_detections(since=math.inf)
        self.camera.remove_overlay(self._draw_boxes)
        return self.status()["motion"]

    def _forget_detections(self, since):
        """Drop the results not yet used or shown; ignore those for frames older than ``since``.

        The detector may still be busy with a frame from before a stop: its result must not start an
        event when motion watching is switched on again.
        """
        with self._detections_lock:
            self._new_detections = []
            self._shown_detections = (0.0, ())
            self._detections_since = since

    def status(self):
        motion = self.motion.last_result
        event = self.tracker.current
        return {
            "monitor": {"on": self._monitoring, "threshold": self.monitor.threshold,
                        "has_baseline": self.monitor.has_baseline, "last_score": self.monitor.last_score,
                        "changes_saved": self.changes_saved, "last_change": self.last_change,
                        "max_changes_per_hour": self.monitor.max_changes_per_hour,
                        "saving_stopped": self._saving_stopped()},
            "motion": {"on": self._watching_motion, "motion": bool(motion and motion.motion),
                       "score": round(motion.score, 4) if motion else None,
                       "boxes": [list(box) for box, _ in self._boxes], "detector": self.detector_name,
                       "event": event.to_dict() if event else None, "recording_events": self.record_events},
        }

    def _saving_stopped(self):
        """Why the running monitor saves no change now ({"reason": "low_disk" or "limit", "message"}), or None."""
        if not self._monitoring:
            return None
        if self._low_disk:
            return {"reason": "low_disk", "message": self._low_disk}
        if self._write_failure:
            return {"reason": "cannot_write", "message": self._write_failure[0]}
        held_until = self.monitor.held_until(time.time())
        if held_until is None:
            return None
        return {"reason": "limit", "message": f"{self.monitor.max_changes_per_hour} changes saved this hour "
                f"(monitor_max_changes_per_hour); saving again at "
                f"{time.strftime('%H:%M', time.localtime(held_until))} or after a new baseline"}

    def close(self):
        self._stop.set()
        self.stop_motion()
        self.stop_monitor()
        thread = self._thread
        if thread is not None:
            thread.join(10)
        self.events.close()             # the last writes and messages, the open event's end among them
        if self._worker is not None:
            self._worker.stop()
        deadline = time.monotonic() + NOTIFY_DRAIN_S      # the "ended" of the event just closed, too
        for notifier in self.notifiers:
            notifier.close(timeout=max(deadline - time.monotonic(), 0.1))

    # -- the watch thread --------------------------------------------------------------------
    def _ensure_thread(self):
        """Start the watch thread if it is not running (called with the lock held)."""
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="scene-watch", daemon=True)
            self._thread.start()

    def _active(self):
        with self._lock:
            return not self._stop.is_set() and (self._monitoring or self._watching_motion)

    def _run(self):
        try:
            for frame in self._frames():
                try:
                    if frame is None:
                        self._time_passes(time.time())   # a hung device: no frame, but the clock runs
                    else:
                        self._analyse(frame)
                except Exception:       # the thread's top level: report and go on with the next frame
                    log.exception("scene watch: analysing a frame failed")
        finally:
            try:
                self._finish_events(time.time())
            except Exception:           # still the top level: the next start-up closes the event
                log.exception("scene watch: closing the open event failed")
            finally:
                with self._lock:
                    self._thread = None
                    if self._monitoring or self._watching_motion:
                        self._ensure_thread()   # switched on again while this thread was leaving

    def _frames(self):
        """Each newer frame while the watch is on; None after NO_FRAME_TICK_S without one, so a device
        that hangs (no frame, not even "no signal") still lets the watch end an event after its quiet
        time, and a stop is noticed within the tick."""
        return self.camera.frames(timeout=NO_FRAME_TICK_S, until=lambda: not self._active(), idle_ticks=True)

    def _analyse(self, frame):
        if not frame.live:
            self._relearn_background = True        # the picture that comes back may differ
            self._boxes = ()
            self._time_passes(frame.timestamp)     # "no signal" is no motion and not a change of the scene
            return
        if self._monitoring:
            self._check_scene(frame)
        if self._watching_motion:
            self._watch_motion(frame)
        else:
            self._finish_events(frame.timestamp)

    def _watch_motion(self, frame):
        if self._relearn_background:
            self._relearn_background = False
            self.motion.reset()
        if self.preroll is not None:
            self.preroll.add(frame)
        result = self.motion.process(frame.image, frame.timestamp)
        if result.motion and self._worker is not None:
            self._worker.submit(frame)
        with self._detections_lock:
            detections, self._new_detections = self._new_detections, []
            shown_at, shown = self._shown_detections
        if frame.timestamp - shown_at > DETECTIONS_SHOWN_S:
            shown = ()
        self._boxes = tuple((box, None) for box in result.boxes) + tuple(
            (detection.box, f"{detection.label} {detection.confidence:.0%}") for detection in shown)
        self._track(frame.timestamp, frame, result, detections)

    def _time_passes(self, timestamp):
        """No picture to look at (no signal, or no frame at all): for the events that is no motion."""
        if self._watching_motion:
            self._track(timestamp, None)

    def _track(self, timestamp, frame, motion=None, detections=()):
        for change in self.tracker.update(timestamp, motion, detections):
            self._on_event(change, frame)
        if self._clip_stop_at is not None and timestamp >= self._clip_stop_at:
            self._stop_clip()

    def _on_detections(self, frame, detections):
        """The worker's result: drawn until a newer one or DETECTIONS_SHOWN_S, given to the tracker once."""
        detections = tuple(detections)
        timestamp = getattr(frame, "timestamp", None) or time.time()
        with self._detections_lock:
            if timestamp < self._detections_since:
                return                  # a frame from before motion watching was switched on
            self._new_detections.extend(detections)
            self._shown_detections = (timestamp, detections)

    def _draw_boxes(self, image):
        boxes = self._boxes
        if boxes:
            draw_boxes(image, [box for box, _ in boxes], [label for _, label in boxes])
        return bool(boxes)

    # -- what comes out ----------------------------------------------------------------------
    def _check_scene(self, frame):
        """Compare the frame with the baseline; save it when it is a change and there is room."""
        if not self._room_for_pictures():
            self.monitor.compare(frame.image)      # the score stays live; no change is counted or saved
            return
        change = self.monitor.check(frame.image, frame.timestamp)
        if change is None:
            return
        name = self._save_picture(frame, "change", f"score {change.score:.0f}")
        if name is not None:
            self.changes_saved += 1
            self.last_change = {"file": name, "score": round(change.score, 1), "timestamp": frame.timestamp}
            log.info("scene change (score %.0f) saved as %s", change.score, name)

    def _on_event(self, change, frame):
        """Hand the event change (with a snapshot and a clip when it starts) to the event store, which
        writes it to the catalogue, then notifies."""
        event = change.event
        if change.change == STARTED:
            snapshot = self._save_picture(frame, "motion", f"{event.kind} event")
            self.events.save(change, snapshot, self._start_clip() if self.record_events else None)
        else:
            self.events.save(change)
            if change.change == ENDED and self._clip is not None:   # noticed event_quiet_s after the end
                self._clip_stop_at = event.end + self.postroll_s
        log.info("event %s: %s %s", change.change, event.kind, ", ".join(sorted(event.labels)))

    def _save_picture(self, frame, kind, note):
        """Save the frame's JPEG as a ``kind`` picture for the event store to catalogue; its name, None
        when not saved.

        A picture the catalogue cannot take (locked, disk full) stays: start-up repair lists it, by
        its name's prefix, as the same kind.
        """
        if not self._room_for_pictures():
            log.info("%s picture not saved: %s", kind, self._low_disk or self._write_failure[0])
            return None
        try:
            path = save_picture(frame, self.media_dir, kind, self.events.add_picture, camera=self.camera.name,
                                note=note)
        except OSError as error:
            self._writing_failed(error)
            return None
        if self._write_failure is not None:
            log.info("scene watch: pictures can be written again")
            self._write_failure = None
        return path.name

    def _writing_failed(self, error):
        """A picture could not be written (a read-only or failing disk): none is tried for WRITE_RETRY_S,
        the status says why, and the log says it once, not at each change."""
        failure = failures.explain(error)
        message = failure.message if failure else f"cannot write pictures: {error}"
        if self._write_failure is None:
            log.error("scene watch: %s; scene changes and event pictures are tried again every %g s",
                      message, WRITE_RETRY_S)
        self._write_failure = (message, time.monotonic() + WRITE_RETRY_S)

    def _room_for_pictures(self):
        """False while a picture could not be written lately (WRITE_RETRY_S), or while the media folder's
        disk has less than min_free_mb free, looked at every DISK_CHECK_S; the log says when it falls
        below and when there is room again."""
        if self._write_failure is not None and time.monotonic() < self._write_failure[1]:
            return False
        now = time.monotonic()
        if not self.min_free_mb or now < self._disk_checked_at + DISK_CHECK_S:
            return self._low_disk is None
        self._disk_checked_at = now
        try:
            free_mb = shutil.disk_usage(self.media_dir).free / MB
        except OSError as error:
            low = f"cannot read the free space of the media folder: {error}"
        else:
            low = (f"only {free_mb:.0f} MB free in the media folder, below min_free_mb = {self.min_free_mb}"
                   if free_mb < self.min_free_mb else None)
        if low and not self._low_disk:
            log.warning("scene watch: %s: scene changes and event pictures are not saved until there is more",
                        low)
        elif self._low_disk and not low:
            log.info("scene watch: %.0f MB free in the media folder: saving pictures again", free_mb)
        self._low_disk = low
        return low is None

    def _start_clip(self):
        """Record the event, starting with the pre-roll; keep the clip going if one runs already."""
        if self._clip is not None:
            self._clip_stop_at = None
            return self._clip
        try:
            started = self.recorder.start(preroll=self.preroll.frames() if self.preroll else ())
        except RecordingError as error:          # a user recording is running, or the disk is full
            log.info("event clip not recorded: %s", error)
            return None
        self._clip = started["file"]
        return self._clip

    def _stop_clip(self):
        clip, self._clip, self._clip_stop_at = self._clip, None, None
        try:
            self.recorder.request_stop(clip)    # only the clip, and without waiting for its end
        except NotRecording:
            pass                        # stopped already (by the user, a limit, or the disk)

    def _finish_events(self, timestamp):
        """End an open event (motion watching stopped) and its clip, whatever happens to the end."""
        try:
            for change in self.tracker.close(timestamp):
                self._on_event(change, frame=None)
        finally:
            if self._clip is not None:
                self._stop_clip()


def detector_options(settings):
    """The chosen detector's options from the detector_* settings; ValueError names a setting it does
    not use. A setting left at its default (empty; 0.5 for detector_confidence) counts as not set."""
    used = _DETECTOR_SETTINGS[settings.detector]
    unused = [key for key in _DETECTOR_KEYS if key not in used and getattr(settings, key) != getattr(Settings, key)]
    names, verb = ", ".join(unused), "is" if len(unused) == 1 else "are"
    if unused and not settings.detector:
        raise ValueError(f"{names} {verb} set but detector is empty: set detector (hog, haar or dnn) "
                         f"or leave {names} empty")
    if unused:
        raise ValueError(f"{names} {verb} not used by the {settings.detector} detector: leave it empty "
                         f"(hog takes detector_confidence; haar detector_model, a cascade; dnn all of them)")
    return {option: getattr(settings, key) for key, option in used.items() if getattr(settings, key) != ""}


def create_scene_watch(settings, camera, catalogue, media_dir, recorder, writer):
    """The SceneWatch the settings describe; ValueError (or DetectorError) names a bad setting."""
    masks = parse_masks(settings.motion_mask) if settings.motion_mask else []
    if settings.motion_mask_file:
        masks.append(load_mask_file(settings.motion_mask_file))
    options = detector_options(settings)      # also refuses detector_* settings without a detector
    detector = create_detector(settings.detector, **options) if settings.detector else None
    notifiers = []
    if settings.webhook_url:
        notifiers.append(WebhookNotifier(settings.webhook_url))
    if settings.mqtt_host:
        notifiers.append(MqttNotifier(settings.mqtt_host, settings.mqtt_port, topic_prefix=settings.mqtt_topic,
                                      username=settings.mqtt_username or None,
                                      password=settings.mqtt_password or None))
    watch = SceneWatch(
        camera, catalogue, media_dir, writer=writer, recorder=recorder, detector=detector, notifiers=notifiers,
        monitor=SceneMonitor(settings.monitor_threshold, settings.monitor_cooldown_s,
                             settings.monitor_max_changes_per_hour),
        motion=MotionDetector(min_area=settings.motion_min_area, threshold=settings.motion_threshold,
                              masks=masks),
        tracker=EventTracker(quiet_s=settings.event_quiet_s),
        preroll=PreRoll(settings.preroll_s, jpeg_quality=settings.jpeg_quality) if settings.record_events else None,
        postroll_s=settings.postroll_s, record_events=settings.record_events, show_boxes=settings.motion_boxes,
        min_free_mb=settings.min_free_mb)
    if settings.motion_on_start:
        watch.start_motion()
    return watch
