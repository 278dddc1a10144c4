"""Prometheus metrics for /metrics: the camera, the stream, the recording, the media disk and the events.

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
        """``extensions``: the app's, read at each scrape (camera, recorder, watch, catalogue)."""
        self.registry = CollectorRegistry()
        self._frames_sent = Counter("camera_stream_frames_sent", "MJPEG frames sent to viewers, all viewers together",
                                    registry=self.registry)
        self._frames_dropped = Counter("camera_stream_frames_dropped",
                                       "frames a viewer skipped because it was slower than the camera",
                                       registry=self.registry)
        self.registry.register(_LiveCollector(extensions, media_dir))

    def count_sent(self, previous_seq, seq):
        """A viewer sent frame ``seq``; the frames between it and the one it sent before were dropped."""
        self._frames_sent.inc()
        if previous_seq is not None and seq > previous_seq + 1:
            self._frames_dropped.inc(seq - previous_seq - 1)

    def exposition(self):
        """The metrics in Prometheus' text format (bytes)."""
        return generate_latest(self.registry)


class _LiveCollector:
    """Reads the live objects at scrape time."""

    def __init__(self, extensions, media_dir):
        self._extensions, self._media_dir = extensions, media_dir

    def collect(self):
        yield from _camera_metrics(self._extensions["camera"])
        yield from _recording_metrics(self._extensions["recorder"].status())
        try:
            free = shutil.disk_usage(self._media_dir).free
        except OSError:                 # the folder or its disk is gone: no sample, the rest still answers
            pass
        else:
            yield _gauge("camera_media_free_bytes", "free space on the media folder's disk", free)
        yield from _watch_metrics(self._extensions["watch"].status(), self._extensions["catalogue"])


def _gauge(name, documentation, value):
    return GaugeMetricFamily(name, documentation, value=value)


def _camera_metrics(camera):
    status = camera.status()
    yield _gauge("camera_fps", "frames per second the camera delivers now", status["fps"])
    state = GaugeMetricFamily("camera_state", "1 for the camera's state now, 0 for the others", labels=["state"])
    for name in CAMERA_STATES:
        state.add_metric([name], 1 if status["state"] == name else 0)
    yield state
    yield _gauge("camera_viewers", "people watching the stream", status["viewers"])
    yield _gauge("camera_consumers", "everything reading frames: viewers, recording, watch, snapshots",
                 status["consumers"])
    yield CounterMetricFamily("camera_opens", "how often the camera device was opened", value=camera.open_count)
    yield CounterMetricFamily("camera_outages", "how often the picture went to no signal", value=camera.outages)


def _recording_metrics(status):
    yield _gauge("camera_recording", "1 while a recording runs", 1 if status["recording"] else 0)
    yield _gauge("camera_recording_frames", "frames written to the running recording", status["frames"])
    yield _gauge("camera_recording_dropped", "frames the running recording dropped (a slow disk)",
                 status["dropped"])


def _watch_metrics(status, catalogue):
    yield _gauge("camera_scene_monitor_on", "1 while the scene-change monitor runs", int(status["monitor"]["on"]))
    yield CounterMetricFamily("camera_scene_changes_saved", "scene changes saved since the server started",
                              value=status["monitor"]["changes_saved"])
    yield _gauge("camera_motion_detection_on", "1 while motion detection runs", int(status["motion"]["on"]))
    yield _gauge("camera_event_active", "1 while an event (motion or a detection) goes on",
                 int(status["motion"]["event"] is not None))
    yield _gauge("camera_events", "events in the catalogue", catalogue.count_events())
    yield _gauge("camera_events_last_day", "events in the catalogue that started in the last 24 hours",
                 catalogue.count_events(since=time.time() - DAY_S))
