"""Tapo pan-tilt cameras through pytapo (its own login, ``stok`` and ``multipleRequest`` calls over HTTPS).

pytapo logs in when its ``Tapo`` object is made and blocks on every call; the controller runs it on its
own thread. Tapo cameras have no continuous move and no zoom: a held button repeats ``moveMotor`` steps.
Errors come from pytapo as plain exceptions (or requests' errors, whose text holds the URL and with it
the session token): they are turned into the Ptz* errors with messages of our own.
"""
import logging

from camera_server.ptz.base import Capabilities, PtzAuthFailed, PtzBackend, PtzError, PtzTimeout, \
    PtzUnreachable, PtzUnsupported

log = logging.getLogger(__name__)
STEP_DEGREES = 10           # a step at full speed; pytapo's moveMotor takes relative degrees
HOME_PRESET = "home"
AUTH_HELP = ("the Tapo camera refused the user name or password. Since their 2023 firmware Tapo cameras "
             "take only the user admin with the password of the TP-Link cloud account that set them up "
             "(ptz_username = admin, ptz_password = that password), and in the Tapo app: Me > Tapo Lab > "
             "Third-Party Compatibility on")


class TapoBackend(PtzBackend):
    kind = "tapo"
    expected = Capabilities(step_move=True, presets=True, home=True, privacy=True)

    def __init__(self, host, port, username, password):
        self.host, self.port = host, port or 443
        self._username, self._password = username or "admin", password
        self._tapo = None

    @property
    def where(self):
        return f"{self.host}:{self.port}"

    def connect(self):
        from pytapo import Tapo
        self._tapo = None
        self._tapo = self._guard(lambda: Tapo(self.host, self._username, self._password, controlPort=self.port,
                                              printDebugInformation=False, printWarnInformation=False),
                                 "log in")
        motor = self._has_motor()
        return Capabilities(step_move=motor, presets=motor, home=motor, privacy=True)

    def _has_motor(self):
        try:
            answer = self._guard(self._tapo.getMotorCapability, "ask for its motor")
        except PtzUnsupported:
            return False
        return bool(answer.get("motor", {}).get("capability"))

    def step(self, pan, tilt, zoom):
        if not (pan or tilt):
            raise PtzUnsupported("Tapo cameras have no zoom")
        x, y = _degrees(pan), _degrees(tilt)
        self._guard(lambda: self._tapo.moveMotor(x, y), "move")

    def presets(self):
        found = self._guard(self._tapo.getPresets, "list the presets")
        return [{"id": str(preset_id), "name": str(name)}
                for preset_id, name in sorted(found.items(), key=lambda item: _number_first(item[0]))]

    def goto_preset(self, preset_id):
        self._guard(lambda: self._tapo.setPreset(preset_id), "go to the preset")

    def save_preset(self, name):
        before = {preset["id"] for preset in self.presets()}
        self._guard(lambda: self._tapo.savePreset(name), "save the preset")
        added = [preset["id"] for preset in self.presets() if preset["id"] not in before]
        return added[0] if added else None

    def delete_preset(self, preset_id):
        self._guard(lambda: self._tapo.deletePreset(preset_id), "delete the preset")

    def home(self):
        homes = [preset["id"] for preset in self.presets() if preset["name"].strip().lower() == HOME_PRESET]
        if not homes:
            raise PtzUnsupported("Tapo cameras have no home position of their own: save a preset named "
                                 f"{HOME_PRESET!r} and Home goes to it")
        self.goto_preset(homes[0])

    def privacy(self):
        answer = self._guard(self._tapo.getPrivacyMode, "read the privacy mode")
        return str(answer.get("enabled", "")).lower() == "on"

    def set_privacy(self, on):
        self._guard(lambda: self._tapo.setPrivacyMode(bool(on)), "switch the privacy mode")

    def close(self):
        self._tapo = None

    def _guard(self, call, what):
        """``call()``, its errors turned into Ptz* errors that say what failed and hold no secret."""
        if self._tapo is None and what != "log in":
            raise PtzUnreachable(f"not logged in to the Tapo camera at {self.where}")
        try:
            return call()
        except PtzError:
            raise
        except Exception as error:      # pytapo raises bare Exceptions for everything
            raise self._explain(error, what) from None

    def _explain(self, error, what):
        import requests
        text = str(error)
        if isinstance(error, requests.Timeout):
            return PtzTimeout(f"the Tapo camera at {self.where} did not answer in time ({what})")
        if isinstance(error, requests.RequestException):
            return PtzUnreachable(f"cannot reach the Tapo camera at {self.where} to {what}: {_reason(error)}")
        if "Invalid authentication data" in text or "Invalid login credentials" in text:
            return PtzAuthFailed(AUTH_HELP)
        if "Temporary Suspension" in text:
            return PtzAuthFailed(f"the Tapo camera at {self.where} locked the login after wrong passwords: "
                                 f"{text.split(':', 1)[-1].strip()[:60]}; check ptz_username and ptz_password")
        if "Privacy mode is ON" in text or "-64324" in text:
            return PtzUnsupported("the privacy mode is on: turn it off to move the camera")
        if "Method does not exist" in text or "METHOD_DO_NOT_EXIST" in text or "-40210" in text:
            return PtzUnsupported(f"this Tapo camera cannot {what}")
        if "not set in the app" in text or "Preset ID" in text:
            return ValueError("no such preset on the camera; reload the list of presets")
        if "MOTOR_LOCKED_ROTOR" in text or "-64304" in text:
            return PtzUnsupported("the camera is at the end of its range in that direction")
        log.warning("Tapo camera at %s: %s failed: %s", self.where, what,
                    text[:200].replace(self._password or "\0", "***"))
        return PtzError(f"the Tapo camera at {self.where} could not {what} (it answered something unexpected; "
                        "the log has it)")


def _degrees(value):
    """A -1..1 speed as whole degrees of one step, at least 1 when it is not 0."""
    degrees = round(value * STEP_DEGREES)
    return degrees or (1 if value > 0 else -1 if value < 0 else 0)


def _number_first(text):
    text = str(text)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _reason(error):
    """Why a connection failed, in a few words, without the URL (which holds the session token)."""
    seen = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused (is it on, and is the port right?)"
        if isinstance(seen, TimeoutError):
            return "no answer"
        wrapped = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = seen.__cause__ or seen.__context__ or wrapped
    text = str(error).lower()
    for marker, reason in (("refused", "connection refused (is it on, and is the port right?)"),
                           ("name or service not known", "unknown host name"),
                           ("no route", "no route to the camera"), ("unreachable", "network unreachable"),
                           ("ssl", "the TLS handshake failed"), ("timed out", "no answer")):
        if marker in text:
            return reason
    return type(error).__name__
