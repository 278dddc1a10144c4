"""The cameras the server holds: each with its own worker, frame hub, recorder, scene watch and state.

A camera's device is open only while something uses it (a viewer, a recording, the watch): the
Camera opens it for its first consumer and releases it ``idle_timeout`` after the last. Each camera
runs in its own threads, so one that fails (no signal, unplugged, a stream that hangs) never holds
up another. The first camera is the default: the original routes (``/video_feed``...) act on it.
"""
import logging
import threading

from camera_server.capture.backends import create_camera
from camera_server.media.recorder import Recorder
from camera_server.media.video_file import KEYFRAME_INTERVAL_MS, EncoderQuality, encoders_for
from camera_server.ptz.controller import open_ptz
from camera_server.stream.h264 import LiveH264
from camera_server.watch.scene_watch import create_scene_watch

log = logging.getLogger(__name__)


class UnknownCamera(KeyError):
    """No camera of this name; the message lists the names there are."""

    def __init__(self, name, known):
        super().__init__(name)
        self.message = f"no camera named {name!r}; the cameras are: {', '.join(known)}"

    def __str__(self):
        return self.message


class CameraExists(ValueError):
    """A camera of this name is there already."""


class DefaultCameraKept(ValueError):
    """The default camera cannot be removed: the original routes act on it."""


class CameraUnit:
    """One camera and what belongs to it: the Camera (worker and frame hub), its recorder, its
    scene watch, its pan-tilt-zoom (a PtzController, None when the camera has none) and its live
    H.264 encoder (a LiveH264, which runs only while someone watches in H.264)."""

    def __init__(self, settings, camera, recorder, watch, ptz=None, live_h264=None):
        self.settings, self.camera, self.recorder, self.watch = settings, camera, recorder, watch
        self.ptz = ptz
        self.live_h264 = live_h264 or live_h264_of(settings, camera)

    @property
    def name(self):
        return self.camera.name

    def status(self):
        """The shape /status has for one camera: the camera, its recording, its live H.264 encoder, its
        watch, and for a camera with pan-tilt-zoom its PTZ (capabilities and state, never credentials)."""
        status = {"camera": self.camera.status(), "recording": self.recorder.status(),
                  "live_h264": self.live_h264.status(), **self.watch.status()}
        if self.ptz is not None:
            status["ptz"] = self.ptz.status()
        return status

    def close(self):
        """Finish the recording and the watch, then release the device (the recording first: its
        file is finished while the rest closes)."""
        self.recorder.shut_down()
        self.watch.close()
        self.recorder.close()
        if self.ptz is not None:
            self.ptz.close()
        self.live_h264.stop()
        self.camera.stop()


def live_h264_of(settings, camera):
    """The live H.264 encoder of ``camera``: the recordings' encoder and crf, the live cap, keyframe
    interval and profile (by default the same as a recording's, see records_live_h264)."""
    return LiveH264(camera, encoders_for(settings.record_encoder),
                    EncoderQuality(crf=settings.record_crf, max_kbps=settings.live_max_kbps),
                    profile=settings.live_profile, keyframe_interval_s=settings.live_keyframe_s)


def records_live_h264(settings):
    """Whether the live encode is what a recording would encode (the same cap, the main profile, a
    keyframe a second): then recordings write it instead of encoding again."""
    return (settings.live_max_kbps == settings.record_max_kbps and settings.live_profile == "main"
            and settings.live_keyframe_s == KEYFRAME_INTERVAL_MS / 1000)


def open_camera_unit(settings, catalogue, media_dir, writer, camera=None, default=True):
    """The CameraUnit for one camera's settings (``camera``: a prebuilt Camera, as tests pass one).

    CameraError when its backend cannot exist here, ValueError (or DetectorError) for a bad watch
    setting. Opens no device. A camera other than the default publishes its MQTT topics under
    ``<mqtt_topic>/<name>``, so each has its own motion state.
    """
    ptz = open_ptz(settings)        # first: a bad PTZ setting stops before anything is opened
    camera = camera or create_camera(settings)
    live = live_h264_of(settings, camera)
    recorder = Recorder(camera, media_dir, catalogue_writer=writer,
                        max_seconds=settings.max_recording_minutes * 60, min_free_mb=settings.min_free_mb,
                        encoder=settings.record_encoder,
                        quality=EncoderQuality(crf=settings.record_crf, max_kbps=settings.record_max_kbps),
                        live=live if records_live_h264(settings) else None)
    watch_settings = settings if default else settings.replace(mqtt_topic=f"{settings.mqtt_topic}/{camera.name}")
    try:
        watch = create_scene_watch(watch_settings, camera, catalogue, media_dir, recorder, writer)
    except BaseException:
        recorder.close()
        raise
    return CameraUnit(settings, camera, recorder, watch, ptz, live)


class Cameras:
    """The server's cameras by name, in order; the first is the default. Safe across threads: the
    web's add and remove change the registry while requests read it."""

    def __init__(self, open_unit):
        """``open_unit(settings, camera=None, default=...)``: builds a CameraUnit (open_camera_unit
        with the server's catalogue, media folder and writer)."""
        self._open_unit = open_unit
        self._units = {}
        self._lock = threading.Lock()

    def add(self, settings, camera=None):
        """Build and add the camera ``settings`` describe (named ``settings.name``); answer its unit."""
        with self._lock:
            if settings.name in self._units:
                raise CameraExists(f"there is a camera named {settings.name!r} already")
            unit = self._open_unit(settings, camera=camera, default=not self._units)
            self._units[unit.name] = unit
        log.info("camera %s: added (%s%s)", unit.name, unit.camera.kind,
                 f", {unit.camera.source.name}" if unit.camera.source.name else "")
        return unit

    def remove(self, name):
        """Take the camera out and close it (its recording is finished); answer its unit."""
        with self._lock:
            unit = self.get(name)
            if unit is self.default:
                raise DefaultCameraKept(f"{name} is the default camera, which the original routes use; "
                                        "it cannot be removed while the server runs")
            del self._units[name]
        unit.close()
        log.info("camera %s: removed", name)
        return unit

    def get(self, name):
        unit = self._units.get(name)
        if unit is None:
            raise UnknownCamera(name, self.names)
        return unit

    @property
    def default(self):
        return next(iter(self._units.values()))

    @property
    def names(self):
        return list(self._units)

    def __iter__(self):
        return iter(list(self._units.values()))

    def __len__(self):
        return len(self._units)

    def shut_down(self):
        """Ask every recording to stop (the first step of a shutdown: the files finish meanwhile)."""
        for unit in self:
            unit.recorder.shut_down()

    def close(self):
        for unit in self:
            unit.close()
