"""OpenCV cameras: a device index, /dev/videoN, a video file, or an RTSP/HTTP URL.

Profiles on top of the plain USB camera: ``liquidlens`` (a camera whose focus we drive) and
``kinect`` (the Kinect v1 under gspca_kinect, whose Bayer GRBG frames we may have to demosaic).
Focus goes through V4L2's CAP_PROP_AUTOFOCUS / CAP_PROP_FOCUS; whether a camera has it is decided
by what ``VideoCapture.set()`` answers.
"""
import logging
import os
import re
import threading
from pathlib import Path

import cv2
import numpy as np

from camera_server.capture.camera import CameraError, FocusNotSupported, Source
from camera_server.url_secrets import redact, url_secrets

log = logging.getLogger(__name__)

FOCUS_RANGE = (0, 1023)
FOCUS_STEP = 10
NETWORK_TIMEOUT_MS = 5000
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)


def describe_source(spec):
    """How OpenCV should open ``spec``: ('index', 0), ('device', '/dev/video0'), ('url', ...), ('file', ...)."""
    spec = (spec or "0").strip()
    if spec.isascii() and spec.isdigit():     # isdigit alone also takes "²", which int() refuses
        return "index", int(spec)
    if _URL.match(spec):
        return "url", spec
    if spec.startswith("/dev/"):
        return "device", spec
    return "file", spec


class OpenCVSource(Source):
    def __init__(self, spec="", width=640, height=480, fps=30.0, focus=False):
        self.kind, self.target = describe_source(spec)
        self._secrets = url_secrets(self.target) if self.kind == "url" else {}
        self.name = f"{self.kind} {self.redact(self.target)}"
        self.width, self.height, self.fps = width, height, fps
        self.focus_capable = focus          # a LiquidLens camera: focus is expected to work
        self.frame_interval = None
        self._capture = None
        self._device_lock = threading.Lock()  # VideoCapture is not safe for read() and set() at once
        self._autofocus = None
        self._focus = None

    # -- device ------------------------------------------------------------------------------
    def open(self):
        if self.kind == "file" and not Path(self.target).is_file():
            raise CameraError(f"video file {self.target} does not exist")
        capture = self._create_capture()
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"cannot open {self.name}: {self._open_hint()}")
        if self.kind == "file":
            file_fps = capture.get(cv2.CAP_PROP_FPS)
            self.frame_interval = 1.0 / (file_fps if 1 <= file_fps <= 240 else self.fps)
        else:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        with self._device_lock:
            self._capture = capture
            self._restore_focus()

    def _create_capture(self):
        if self.kind == "url":
            return cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS])
        if self.kind in ("index", "device"):
            return cv2.VideoCapture(self.target, cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY)
        return cv2.VideoCapture(self.target)

    def _open_hint(self):
        if self.kind == "url":
            return "check the address and that the stream is reachable"
        if self.kind == "file":
            return "OpenCV cannot decode this file"
        return "is the camera plugged in and not used by another program? (ls /dev/video*)"

    def read(self):
        with self._device_lock:
            capture = self._capture
            if capture is None:
                raise CameraError(f"{self.name} is not open")
            ok, image = capture.read()
            if not ok and self.kind == "file":
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)     # loop the file
                ok, image = capture.read()
        if not ok or image is None:
            raise CameraError(f"{self.name} stopped delivering frames (unplugged or stream ended?)")
        return self.convert(image)

    def convert(self, image):
        return image

    def close(self):
        with self._device_lock:
            capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def redact(self, text):
        return redact(text, self._secrets)

    # -- focus -------------------------------------------------------------------------------
    @property
    def supports_focus(self):
        return self.focus_capable or self.kind in ("index", "device")

    def set_autofocus(self, enabled):
        self._set(cv2.CAP_PROP_AUTOFOCUS, 1 if enabled else 0, "autofocus")
        self._autofocus = bool(enabled)
        return self.focus_state()

    def set_focus(self, value):
        value = int(min(max(value, FOCUS_RANGE[0]), FOCUS_RANGE[1]))
        # Autofocus off first (V4L2 refuses a focus while it is on); a camera may have no autofocus.
        if self._set(cv2.CAP_PROP_AUTOFOCUS, 0, "autofocus", required=False):
            self._autofocus = False
        self._set(cv2.CAP_PROP_FOCUS, value, "focus")
        self._focus = value
        return self.focus_state()

    def step_focus(self, steps):
        current = self._focus
        if current is None:
            with self._device_lock:
                reported = self._capture.get(cv2.CAP_PROP_FOCUS) if self._capture is not None else -1
            current = int(reported) if reported >= 0 else (FOCUS_RANGE[0] + FOCUS_RANGE[1]) // 2
        return self.set_focus(current + steps * FOCUS_STEP)

    def focus_state(self):
        if not self.supports_focus:
            return None
        return {"autofocus": self._autofocus, "focus": self._focus, "range": list(FOCUS_RANGE),
                "step": FOCUS_STEP}

    def _set(self, prop, value, what, required=True):
        """Set a control; whether the camera has it is what set() answers."""
        if not self.supports_focus:
            raise FocusNotSupported(f"{self.name} has no controllable focus")
        with self._device_lock:
            if self._capture is None:
                raise CameraError(f"{self.name} is not open")
            accepted = self._capture.set(prop, value)
        if required and not accepted:
            raise FocusNotSupported(f"{self.name} refused to set {what} (the camera has no such control)")
        return accepted

    def _restore_focus(self):
        """After a reopen, put back the focus the user chose (called with the device lock held)."""
        if self._autofocus is not None:
            self._capture.set(cv2.CAP_PROP_AUTOFOCUS, 1 if self._autofocus else 0)
        if self._focus is not None:
            self._capture.set(cv2.CAP_PROP_FOCUS, self._focus)


class KinectSource(OpenCVSource):
    """Kinect v1 through gspca_kinect: find its /dev/video*, demosaic Bayer GRBG when OpenCV will not."""

    def __init__(self, spec="", width=640, height=480, fps=30.0, sysfs_root="/sys/class/video4linux"):
        super().__init__(spec or "0", width, height, fps)
        self.sysfs_root = sysfs_root
        self.find_device = not spec
        self.raw_bayer = False

    def open(self):
        self.raw_bayer = False      # a new capture converts again until its probe read says otherwise
        if self.find_device:
            self.kind, self.target = "device", find_kinect_device(self.sysfs_root)
            self.name = f"kinect {self.target}"
        super().open()
        ok, image = self._capture.read()
        if not ok or image is None or image.ndim != 3:
            # OpenCV's V4L2 backend did not convert the Bayer frames: read them raw and demosaic.
            self._capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)
            self.raw_bayer = True
            log.info("kinect: reading raw Bayer GRBG frames and demosaicing them")

    def convert(self, image):
        if self.raw_bayer and image.ndim != 3:      # a frame OpenCV converted needs nothing more
            return demosaic_grbg(image, self.width, self.height)
        return image


def find_kinect_device(sysfs_root="/sys/class/video4linux"):
    """The /dev/videoN whose V4L2 name says Kinect; CameraError naming what was seen otherwise."""
    seen = []
    for entry in sorted(Path(sysfs_root).glob("video*")):
        try:
            name = (entry / "name").read_text().strip()
        except OSError:
            continue
        seen.append(f"{entry.name} ({name})")
        if "kinect" in name.lower():
            return f"/dev/{entry.name}"
    found = ", ".join(seen) or "no video devices"
    raise CameraError(f"no Kinect found under {sysfs_root} (saw: {found}); is gspca_kinect loaded? "
                      "Or set source = /dev/videoN")


def demosaic_grbg(raw, width, height):
    """Turn one raw GRBG Bayer frame (any buffer of width*height bytes) into a BGR image.

    gspca_kinect sends V4L2_PIX_FMT_SGRBG8 (first row G R G R, second row B G B G). OpenCV names its
    Bayer codes after the second row, so that layout is its ``BayerGB``; ``COLOR_BayerGR2BGR`` would
    swap red and blue (tests/test_camera_usb.py checks this on a synthetic mosaic).
    """
    data = np.asarray(raw, dtype=np.uint8).reshape(-1)
    if data.size != width * height:
        raise CameraError(f"kinect frame has {data.size} bytes, expected {width}x{height} Bayer")
    return cv2.cvtColor(data.reshape(height, width), cv2.COLOR_BayerGB2BGR)
