"""Prometheus metrics for /metrics: each camera, its stream and recording, the media disk and the events.

Each app has a registry of its own (tests build many apps in one process). What the live objects
know (the camera's state, the recording, the watch, the free disk space) is read when Prometheus
scrapes; the stream counts the frames it sends and those a slow viewer skipped as they go out.
A scrape reads the disk and the catalogue: run ``exposition()`` off the gevent loop.
"""
import shutil
import time

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CAMERA_STATES = ("stopped", "starting", "streaming", "no_signal")
DAY_S = 24 * 3600


class Metrics:
    def __init__(self, extensions, media_dir):
        """``extensions``: the app's, read at each scrape (cameras, catalogue)."""
        self.registry = CollectorRegistry()
        self._frames_sent = Counter("camera_stream_frames_sent",
                                    "frames sent to viewers (MJPEG and WebSocket), all viewers together",
                                    ["camera"], registry=self.registry)
        self._frames_dropped = Counter("camera_stream_frames_dropped",
                                       "frames a viewer skipped because it was slower than the camera",
                                       ["camera"], registry=self.registry)
        self._stream_counters = {}      # camera name -> (frames sent, frames dropped) of its label
        for unit in extensions["cameras"]:          # a camera added later shows once it has a viewer
            self._frames_sent.labels(unit.name)
            self._frames_dropped.labels(unit.name)
        self.registry.register(_LiveCollector(extensions, media_dir))

    def count_sent(self, camera_name, previous_seq, seq):
        """A viewer of camera ``camera_name`` sent frame ``seq``; the frames between it and the one it
        sent before were dropped."""
        counters = self._stream_counters.get(camera_name)
        if counters is None:            # labels() is a lookup under a lock: once per camera, not per frame
            counters = self._stream_counters[camera_name] = (self._frames_sent.labels(camera_name),
                                                             self._frames_dropped.labels(camera_name))
        counters[0].inc()
        if previous_seq is not None and seq > previous_seq + 1:
            counters[1].inc(seq - previous_seq - 1)

    def forget(self, camera_name):
        """A removed camera's stream counters leave the metrics (its other samples go with it)."""
        self._stream_counters.pop(camera_name, None)
        for counter in (self._frames_sent, self._frames_dropped):
            try:
                counter.remove(camera_name)
            except KeyError:            # it never had a viewer
                pass

    def exposition(self):
        """The metrics in Prometheus' text format (bytes)."""
        return generate_latest(self.registry)


class _LiveCollector:
    """Reads the live objects at scrape time: a sample per camera (label ``camera``) of each camera
    metric, and the disk and the catalogue once."""

    def __init__(self, extensions, media_dir):
        self._extensions, self._media_dir = extensions, media_dir

    def collect(self):
        families = {}
        for unit in self._extensions["cameras"]:
            status = unit.status()
            for metric in (*_camera_metrics(unit.camera, status["camera"]), *_recording_metrics(status["recording"]),
                           *_live_h264_metrics(status["live_h264"]), *_watch_metrics(status)):
                kind, name, documentation, labels, value = metric
                family = families.get(name)
                if family is None:
                    family = families[name] = kind(name, documentation, labels=["camera", *labels])
                family.add_metric([unit.name, *labels.values()], value)
        yield from families.values()
        try:
            free = shutil.disk_usage(self._media_dir).free
        except OSError:                 # the folder or its disk is gone: no sample, the rest still answers
            pass
        else:
            yield GaugeMetricFamily("camera_media_free_bytes", "free space on the media folder's disk", value=free)
        catalogue = self._extensions["catalogue"]
        yield GaugeMetricFamily("camera_events", "events in the catalogue", value=catalogue.count_events())
        yield GaugeMetricFamily("camera_events_last_day", "events in the catalogue that started in the last 24 hours",
                                value=catalogue.count_events(since=time.time() - DAY_S))


def _gauge(name, documentation, value, **labels):
    """One camera's sample: (family class, name, documentation, labels besides camera, value)."""
    return GaugeMetricFamily, name, documentation, labels, value


def _counter(name, documentation, value):
    return CounterMetricFamily, name, documentation, {}, value


def _camera_metrics(camera, status):
    yield _gauge("camera_fps", "frames per second the camera delivers now", status["fps"])
    for state in CAMERA_STATES:
        yield _gauge("camera_state", "1 for the camera's state now, 0 for the others",
                     1 if status["state"] == state else 0, state=state)
    yield _gauge("camera_viewers", "people watching the stream", status["viewers"])
    yield _gauge("camera_consumers", "everything reading frames: viewers, recording, watch, snapshots",
                 status["consumers"])
    yield _counter("camera_opens", "how often the camera device was opened", camera.open_count)
    yield _counter("camera_outages", "how often the picture went to no signal", camera.outages)


def _recording_metrics(status):
    yield _gauge("camera_recording", "1 while a recording runs", 1 if status["recording"] else 0)
    yield _gauge("camera_recording_frames", "frames written to the running recording", status["frames"])
    yield _gauge("camera_recording_dropped", "frames the running recording dropped (a slow disk)", status["dropped"])


def _live_h264_metrics(status):
    yield _gauge("camera_live_h264_consumers", "readers of the live H.264 encode: H.264 viewers and a recording",
                 status["consumers"])
    yield _counter("camera_live_h264_restarts", "how often an encoder error started the live H.264 again",
                   status["restarts"])


def _watch_metrics(status):
    yield _gauge("camera_scene_monitor_on", "1 while the scene-change monitor runs", int(status["monitor"]["on"]))
    yield _counter("camera_scene_changes_saved", "scene changes saved since the server started",
                   status["monitor"]["changes_saved"])
    yield _gauge("camera_motion_detection_on", "1 while motion detection runs", int(status["motion"]["on"]))
    yield _gauge("camera_event_active", "1 while an event (motion or a detection) goes on",
                 int(status["motion"]["event"] is not None))
