"""One camera's pan-tilt-zoom: its backend run on one thread of its own, with timeouts, latest move wins.

The libraries block (pytapo waits up to 10 s per request and retries), so every call runs on the
controller's thread and the caller waits at most ``timeout`` seconds: then a PtzTimeout (504), and while
that thread is still stuck on the camera, every call fails at once instead of queueing behind it.
Calls of one camera are serialized. A move is not queued: it replaces the move asked for before it
(a held button's repeats cannot pile up), and a continuous move stops by itself ``keepalive_s`` after
the last move (the browser that held the button may have gone). Cameras without continuous move get
steps repeated while the move is held.
"""
import collections
import concurrent.futures
import logging
import threading
import time
import urllib.parse

from camera_server.ptz.base import Capabilities, PtzAuthFailed, PtzError, PtzTimeout, PtzUnreachable, \
    PtzUnsupported, check_motion, check_preset_id, check_preset_name

log = logging.getLogger(__name__)
KEEPALIVE_S = 10.0          # a continuous move stops this long after the last move or keepalive
STEP_INTERVAL_S = 0.3       # between the steps of a held move, for cameras without continuous move
MAX_QUEUED = 8
DEFAULT_PORTS = {"tapo": 443, "onvif": 80}


class PtzController:
    """The one interface the web (and the socket) use; thread-safe, every method may block up to ``timeout``."""

    def __init__(self, backend, timeout=5.0, keepalive_s=KEEPALIVE_S, step_interval_s=STEP_INTERVAL_S,
                 secrets=()):
        self._backend, self.kind = backend, backend.kind
        self.timeout, self.keepalive_s, self.step_interval_s = timeout, keepalive_s, step_interval_s
        self._secrets = tuple(secret for secret in secrets if secret)
        self._condition = threading.Condition()
        self._jobs = collections.deque()
        self._wanted, self._wanted_version = None, 0     # the motion asked for: (pan, tilt, zoom) or None
        self._applied, self._applied_version = None, 0   # the motion last sent to the camera
        self._waiters = []                               # (version, Future) of moves waiting to be sent
        self._deadline = None
        self._next_step = 0.0
        self._busy_since = None
        self._capabilities = None
        self._privacy = None
        self.last_error = None
        self._stopping = False
        self._thread = None

    # What the web calls

    @property
    def capabilities(self):
        return self._capabilities or self._backend.expected

    def status(self):
        """Capabilities and state, never credentials."""
        with self._condition:
            return {"kind": self.kind, "host": self._backend.host, "port": self._backend.port,
                    "connected": self._capabilities is not None,
                    "capabilities": self.capabilities.as_dict(), "moving": self._wanted is not None,
                    "privacy": self._privacy, "last_error": self.last_error}

    def move(self, pan, tilt, zoom=0.0, speed=1.0):
        """Move at (pan, tilt, zoom) × speed until stop, the next move, or keepalive_s without one."""
        motion = check_motion(pan, tilt, zoom, speed)
        if not any(motion):
            return self.stop()
        self._check_can_move(motion)
        return self._set_motion(motion)

    def stop(self):
        return self._set_motion(None)

    def presets(self):
        self._require("presets", "has no presets")
        return {"presets": self._run(self._backend.presets)}

    def goto_preset(self, preset):
        self._require("presets", "has no presets")
        return {"preset": self._run(self._goto_preset, check_preset_id(preset))}

    def save_preset(self, name):
        self._require("presets", "has no presets")
        name = check_preset_name(name)
        return {"preset": self._run(self._backend.save_preset, name), "name": name,
                "presets": self._run(self._backend.presets)}

    def delete_preset(self, preset):
        self._require("presets", "has no presets")
        preset_id = self._run(self._delete_preset, check_preset_id(preset))
        return {"deleted": preset_id, "presets": self._run(self._backend.presets)}

    def home(self):
        self._require("home", "has no home position")
        self._run(self._backend.home)
        return {"home": True}

    def set_privacy(self, on):
        self._require("privacy", "has no privacy mode (only Tapo cameras have one here)")
        self._run(self._set_privacy, bool(on))
        return {"privacy": self._privacy}

    def close(self):
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    # Checks made before anything reaches the camera

    def _require(self, capability, says):
        if not getattr(self.capabilities, capability):
            raise PtzUnsupported(f"this {self.kind} camera {says}")

    def _check_can_move(self, motion):
        pan, tilt, zoom = motion
        capabilities = self.capabilities
        if (pan or tilt) and not (capabilities.continuous_move or capabilities.step_move):
            raise PtzUnsupported(f"this {self.kind} camera cannot pan or tilt")
        if zoom and not capabilities.zoom:
            raise PtzUnsupported(f"this {self.kind} camera has no zoom")

    # Handing work to the thread, and waiting for it

    def _run(self, function, *args):
        """``function(*args)`` on the controller's thread, connected first; its answer within timeout."""
        future = concurrent.futures.Future()
        with self._condition:
            self._check_not_stuck()
            if len(self._jobs) >= MAX_QUEUED:
                raise PtzUnreachable(f"the {self.kind} camera has {MAX_QUEUED} requests waiting; try again")
            self._jobs.append((function, args, future))
            self._start()
            self._condition.notify_all()
        return self._wait(future)

    def _set_motion(self, motion):
        future = concurrent.futures.Future()
        with self._condition:
            self._deadline = time.monotonic() + self.keepalive_s if motion else None
            if motion is not None and motion == self._wanted and self._wanted_version == self._applied_version:
                return {"moving": motion is not None}     # a keepalive: the camera is doing it already
            self._check_not_stuck()
            self._wanted = motion
            self._wanted_version += 1
            self._waiters.append((self._wanted_version, future))
            self._start()
            self._condition.notify_all()
        try:
            return self._wait(future)
        except PtzTimeout:
            with self._condition:       # not sent yet: a move sent late would surprise; forget it
                if self._wanted_version != self._applied_version and self._wanted == motion:
                    self._wanted = self._applied
                    self._wanted_version = self._applied_version
            raise

    def _wait(self, future):
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise PtzTimeout(f"the {self.kind} camera at {self._where()} did not answer within "
                             f"{self.timeout:g} s") from None

    def _check_not_stuck(self):
        if self._busy_since is not None and time.monotonic() - self._busy_since > self.timeout:
            waited = time.monotonic() - self._busy_since
            raise PtzTimeout(f"the {self.kind} camera at {self._where()} has not answered a request for "
                             f"{waited:.0f} s; try again when it answers")

    def _where(self):
        return f"{self._backend.host}:{self._backend.port}"

    def _start(self):
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._work, name=f"ptz-{self.kind}-{self._where()}", daemon=True)
            self._thread.start()

    # The thread

    def _work(self):
        while True:
            task = self._next_task()
            if task is None:
                break
            self._do(*task)
        if self._applied is not None and self._capabilities and self._capabilities.continuous_move:
            self._attempt(self._backend.stop)
        self._backend.close()

    def _next_task(self):
        with self._condition:
            while not self._stopping:
                now = time.monotonic()
                if self._wanted is not None and self._deadline is not None and now >= self._deadline:
                    log.info("%s camera %s: no move or keepalive for %g s: stopping", self.kind, self._where(),
                             self.keepalive_s)
                    self._wanted, self._deadline = None, None
                    self._wanted_version += 1
                if self._wanted_version != self._applied_version:
                    return "motion", (self._wanted, self._wanted_version)
                while self._jobs:
                    function, args, future = self._jobs.popleft()
                    if future.set_running_or_notify_cancel():
                        return "job", (function, args, future)
                stepping = self._wanted is not None and not (self._capabilities and
                                                             self._capabilities.continuous_move)
                if stepping and now >= self._next_step:
                    return "step", (self._wanted,)
                waits = [moment - now for moment in (self._deadline, self._next_step if stepping else None)
                         if moment is not None]
                self._condition.wait(max(0.01, min(waits)) if waits else None)
            return None

    def _do(self, kind, arguments):
        with self._condition:
            self._busy_since = time.monotonic()
        try:
            if kind == "job":
                function, args, future = arguments
                self._settle(future, self._attempt(function, *args))
            elif kind == "motion":
                self._apply_motion(*arguments)
            elif isinstance(self._attempt(self._step, *arguments), BaseException):
                with self._condition:       # a failed step ends the held move; nothing is sent for it
                    if self._wanted_version == self._applied_version:
                        self._wanted = self._applied = None
        finally:
            with self._condition:
                self._busy_since = None

    def _apply_motion(self, motion, version):
        outcome = self._attempt(self._send_motion, motion)
        with self._condition:
            failed = isinstance(outcome, BaseException)
            self._applied = None if failed else motion
            self._applied_version = version
            if failed and self._wanted_version == version:
                self._wanted = None
            done = [(waited, future) for waited, future in self._waiters if waited <= version]
            self._waiters = [(waited, future) for waited, future in self._waiters if waited > version]
        for waited, future in done:
            answer = {"moving": motion is not None} if waited == version else {"moving": motion is not None,
                                                                               "replaced": True}
            self._settle(future, outcome if waited == version and failed else answer)

    def _send_motion(self, motion):
        if self._capabilities.continuous_move:
            if motion is None:
                self._backend.stop()
            else:
                self._backend.continuous_move(*motion)
        elif motion is not None:
            self._step(motion)

    def _step(self, motion):
        try:
            self._backend.step(*motion)
        finally:
            self._next_step = time.monotonic() + self.step_interval_s

    def _goto_preset(self, preset):
        preset_id = self._preset_id(preset)
        self._backend.goto_preset(preset_id)
        return preset_id

    def _delete_preset(self, preset):
        preset_id = self._preset_id(preset)
        self._backend.delete_preset(preset_id)
        return preset_id

    def _preset_id(self, preset):
        """The id of ``preset`` (an id, or else a name) in the camera's list; ValueError when it has none."""
        presets = self._backend.presets()
        for key in ("id", "name"):
            found = [entry["id"] for entry in presets if entry[key] == preset]
            if found:
                return found[0]
        names = ", ".join(f"{entry['id']} ({entry['name']})" for entry in presets) or "none"
        raise ValueError(f"no preset {preset[:40]!r} on this camera; its presets: {names}"[:300])

    def _set_privacy(self, on):
        self._backend.set_privacy(on)
        self._privacy = on

    def _attempt(self, function, *args):
        """``function(*args)`` after connecting; its answer, or the error it raised (logged, redacted)."""
        try:
            if self._capabilities is None:
                self._connect()
            answer = function(*args)
        except (PtzError, ValueError) as error:
            if isinstance(error, (PtzUnreachable, PtzAuthFailed)):
                self._capabilities = None       # log in again next time
            error = type(error)(self._redact(str(error)))
            if not isinstance(error, (ValueError, PtzUnsupported)):     # what the camera cannot do is no fault
                self.last_error = str(error)
                log.warning("%s camera %s: %s", self.kind, self._where(), error)
            return error
        except Exception as error:      # a backend bug must not kill the thread
            log.exception("%s camera %s: unexpected error", self.kind, self._where())
            return PtzError(f"the {self.kind} camera's request failed unexpectedly ({type(error).__name__}); "
                            "the log has the details")
        self.last_error = None
        return answer

    def _connect(self):
        capabilities = self._backend.connect()
        privacy = None
        if capabilities.privacy:
            try:
                privacy = self._backend.privacy()
            except PtzError as error:
                log.info("%s camera %s: privacy mode unknown: %s", self.kind, self._where(), error)
        with self._condition:
            self._capabilities, self._privacy = capabilities, privacy
        log.info("%s camera %s: connected (%s)", self.kind, self._where(),
                 ", ".join(name for name, value in capabilities.as_dict().items() if value) or "no controls")

    def _redact(self, text):
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @staticmethod
    def _settle(future, outcome):
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def ptz_address(settings):
    """(host, port, username, password) of a camera's PTZ: its ptz_* settings, else its source URL's."""
    source = urllib.parse.urlsplit(settings.source) if "://" in settings.source else None
    host = settings.ptz_host or (source.hostname if source else None)
    if not host:
        raise ValueError(f"{_section(settings)}ptz = {settings.ptz} needs ptz_host: the camera's source names no "
                         "host (set ptz_host to the camera's address)")
    username = settings.ptz_username or (urllib.parse.unquote(source.username) if source and source.username else "")
    password = settings.ptz_password or (urllib.parse.unquote(source.password) if source and source.password else "")
    return host, settings.ptz_port or DEFAULT_PORTS[settings.ptz], username, password


def open_ptz(settings, **options):
    """The PtzController of a camera's settings, None without ``ptz``; talks to no camera yet."""
    if not settings.ptz:
        return None
    host, port, username, password = ptz_address(settings)
    if settings.ptz == "tapo":
        from camera_server.ptz.tapo import TapoBackend
        backend = TapoBackend(host, port, username, password)
    else:
        from camera_server.ptz.onvif import OnvifBackend
        backend = OnvifBackend(host, port, username, password, settings.ptz_timeout_s)
    return PtzController(backend, timeout=settings.ptz_timeout_s, secrets=(password,), **options)


def _section(settings):
    return f"[camera {settings.camera_name}] " if settings.camera_name else ""


__all__ = ["PtzController", "Capabilities", "open_ptz", "ptz_address"]
