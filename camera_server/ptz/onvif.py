"""ONVIF pan-tilt-zoom cameras through onvif-zeep (module ``onvif``, SOAP over HTTP with WS-Security).

The device service gives the media and PTZ services' addresses, the first media profile with a PTZ
configuration gives the profile token, and the PTZ node says what the camera can do (its
``SupportedPTZSpaces``: continuous velocity, relative translation, zoom; ``HomeSupported``;
``MaximumNumberOfPresets``). Every call blocks; the controller runs it on its own thread.
"""
import logging
import os

from camera_server.ptz.base import Capabilities, PtzAuthFailed, PtzBackend, PtzError, PtzTimeout, \
    PtzUnreachable, PtzUnsupported

log = logging.getLogger(__name__)
STEP = 0.1                  # a relative step at full speed, in the generic space (-1..1 is the whole range)
AUTH_WORDS = ("notauthorized", "not authorized", "unauthorized", "authority failure", "401",
              "authentication", "sender not authorized", "failedauthentication")


def _onvif_module():
    """onvif-zeep, imported without its import-time logging.basicConfig changing the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import onvif
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return onvif


class OnvifBackend(PtzBackend):
    kind = "onvif"
    expected = Capabilities(continuous_move=True, step_move=True, zoom=True, presets=True, home=True)

    def __init__(self, host, port, username, password, timeout):
        self.host, self.port = host, port or 80
        self._username, self._password, self._timeout = username, password, timeout
        self._ptz = self._token = None
        self._capabilities = Capabilities()

    @property
    def where(self):
        return f"{self.host}:{self.port}"

    def connect(self):
        onvif = _onvif_module()
        from zeep.transports import Transport
        wsdl = os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), "wsdl")
        transport = Transport(timeout=self._timeout, operation_timeout=self._timeout)
        self._ptz = None
        camera = self._guard(lambda: onvif.ONVIFCamera(self.host, self.port, self._username, self._password,
                                                       wsdl, no_cache=True, transport=transport), "connect")
        media = self._guard(camera.create_media_service, "open its media service")
        profiles = self._guard(media.GetProfiles, "list its media profiles")
        profile = next((profile for profile in profiles or () if getattr(profile, "PTZConfiguration", None)), None)
        if profile is None:
            raise PtzUnsupported(f"the ONVIF camera at {self.where} has no media profile with pan-tilt-zoom")
        ptz = self._guard(camera.create_ptz_service, "open its PTZ service")
        nodes = self._guard(ptz.GetNodes, "read its PTZ node") or []
        wanted = getattr(profile.PTZConfiguration, "NodeToken", None)
        node = next((node for node in nodes if getattr(node, "token", None) == wanted), nodes[0] if nodes else None)
        self._ptz, self._token = ptz, profile.token
        self._capabilities = _node_capabilities(node)
        return self._capabilities

    def continuous_move(self, pan, tilt, zoom):
        velocity = {}
        if pan or tilt:
            if not self._capabilities.continuous_move:
                raise PtzUnsupported("this ONVIF camera has no continuous pan and tilt")
            velocity["PanTilt"] = {"x": float(pan), "y": float(tilt)}
        if zoom:
            if not self._capabilities.zoom:
                raise PtzUnsupported("this ONVIF camera has no zoom")
            velocity["Zoom"] = {"x": float(zoom)}
        self._call("ContinuousMove", "move", ProfileToken=self._token, Velocity=velocity)

    def step(self, pan, tilt, zoom):
        translation = {}
        if pan or tilt:
            translation["PanTilt"] = {"x": float(pan) * STEP, "y": float(tilt) * STEP}
        if zoom:
            translation["Zoom"] = {"x": float(zoom) * STEP}
        self._call("RelativeMove", "move a step", ProfileToken=self._token, Translation=translation)

    def stop(self):
        self._call("Stop", "stop", ProfileToken=self._token, PanTilt=True, Zoom=True)

    def presets(self):
        found = self._call("GetPresets", "list the presets", ProfileToken=self._token) or []
        return [{"id": str(preset.token), "name": str(getattr(preset, "Name", None) or preset.token)}
                for preset in found]

    def goto_preset(self, preset_id):
        self._call("GotoPreset", "go to the preset", ProfileToken=self._token, PresetToken=preset_id)

    def save_preset(self, name):
        return str(self._call("SetPreset", "save the preset", ProfileToken=self._token, PresetName=name))

    def delete_preset(self, preset_id):
        self._call("RemovePreset", "delete the preset", ProfileToken=self._token, PresetToken=preset_id)

    def home(self):
        if not self._capabilities.home:
            raise PtzUnsupported("this ONVIF camera has no home position")
        self._call("GotoHomePosition", "go home", ProfileToken=self._token)

    def close(self):
        self._ptz = None

    def _call(self, operation, what, **parameters):
        if self._ptz is None:
            raise PtzUnreachable(f"not connected to the ONVIF camera at {self.where}")
        return self._guard(lambda: getattr(self._ptz, operation)(parameters), what)

    def _guard(self, call, what):
        try:
            return call()
        except PtzError:
            raise
        except Exception as error:      # onvif-zeep wraps everything in ONVIFError, the cause in __context__
            raise self._explain(error, what) from None

    def _explain(self, error, what):
        import requests
        from zeep.exceptions import Fault, TransportError
        chain = _chain(error)
        if any(isinstance(cause, requests.Timeout) for cause in chain):
            return PtzTimeout(f"the ONVIF camera at {self.where} did not answer within {self._timeout:g} s ({what})")
        if any(isinstance(cause, requests.ConnectionError) for cause in chain):
            return PtzUnreachable(f"cannot reach the ONVIF camera at {self.where} to {what}: "
                                  f"{_connection_reason(chain)}")
        fault = next((cause for cause in chain if isinstance(cause, (Fault, TransportError))), None)
        text = " ".join(str(part) for part in (
            getattr(fault, "message", ""), getattr(fault, "status_code", ""),
            *(getattr(code, "localname", code) for code in (getattr(fault, "subcodes", None) or ())))).lower()
        if fault is not None and any(word in text for word in AUTH_WORDS):
            return PtzAuthFailed(f"the ONVIF camera at {self.where} refused the user name or password: check "
                                 "ptz_username and ptz_password (on a Tapo camera: the camera account made in "
                                 "the Tapo app, port 2020)")
        if fault is not None and ("actionnotsupported" in text or "not supported" in text):
            return PtzUnsupported(f"this ONVIF camera cannot {what}")
        if fault is not None and ("nosuch" in text or "no such" in text or "notoken" in text):
            return ValueError("no such preset on the camera; reload the list of presets")
        detail = (getattr(fault, "message", None) or str(error))[:160]
        if self._password:
            detail = detail.replace(self._password, "***")
        return PtzError(f"the ONVIF camera at {self.where} could not {what}: {detail}")


def _node_capabilities(node):
    if node is None:
        return Capabilities()
    spaces = getattr(node, "SupportedPTZSpaces", None)

    def has(name):
        return bool(spaces is not None and getattr(spaces, name, None))
    presets = int(getattr(node, "MaximumNumberOfPresets", 0) or 0) > 0
    return Capabilities(continuous_move=has("ContinuousPanTiltVelocitySpace"),
                        step_move=has("RelativePanTiltTranslationSpace"),
                        zoom=has("ContinuousZoomVelocitySpace") or has("RelativeZoomTranslationSpace"),
                        presets=presets, home=bool(getattr(node, "HomeSupported", False)))


def _chain(error):
    seen, found = set(), []
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found.append(error)
        error = error.__cause__ or error.__context__
    return found


def _connection_reason(chain):
    text = " ".join(str(cause) for cause in chain).lower()
    if "refused" in text:
        return "connection refused (is it on, and is the port right?)"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    if "no route" in text or "unreachable" in text:
        return "no route to the camera"
    return "the connection failed"
