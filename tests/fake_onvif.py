"""A fake ONVIF camera on 127.0.0.1: the device, media and PTZ SOAP services that onvif-zeep calls, behind
WS-Security's UsernameToken digest. It records the moves. ``continuous=False`` makes a camera with
relative moves only, ``zoom=False`` one without zoom; ``delay`` makes it answer slowly.
"""
import base64
import hashlib
import http.server
import threading
import time
import xml.etree.ElementTree as ElementTree
from xml.sax.saxutils import escape

from fake_server import BackgroundServer, QuietServer

ENVELOPE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema"
 xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"
 xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:ter="http://www.onvif.org/ver10/error">
<s:Body>{}</s:Body></s:Envelope>"""
FAULT = """<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:{code}</s:Value></s:Subcode>
</s:Code><s:Reason><s:Text xml:lang="en">{reason}</s:Text></s:Reason></s:Fault>"""
GENERIC = "http://www.onvif.org/ver10/tptz/{}Spaces/{}GenericSpace"


def _space(tag, kind, space, axes=("X", "Y")):
    ranges = "".join(f"<tt:{axis}Range><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:{axis}Range>" for axis in axes)
    return f"<tt:{tag}><tt:URI>{GENERIC.format(kind, space)}</tt:URI>{ranges}</tt:{tag}>"


class FakeOnvif(BackgroundServer):
    def __init__(self, username="operator", password="onvif-secret", continuous=True, zoom=True, delay=0.0):
        self.username, self.password = username, password
        self.continuous, self.zoom, self.delay = continuous, zoom, delay
        self.moves = []             # ("continuous", x, y, zoom), ("relative", ...), ("stop",), ("home",), ("preset", token)
        self.presets = {"1": "door", "2": "gate"}
        self.refused = 0
        self._lock = threading.Lock()
        self.serve(QuietServer(("127.0.0.1", 0), _handler(self)))

    def answer(self, body):
        if self.delay:
            time.sleep(self.delay)
        root = ElementTree.fromstring(body)
        if not self._authorized(root):
            self.refused += 1
            return 400, FAULT.format(code="NotAuthorized", reason="Sender not Authorized")
        operation = next(iter(_find(root, "Body")))
        name = operation.tag.split("}")[-1]
        handler = getattr(self, f"_do_{name}", None)
        if handler is None:
            return 400, FAULT.format(code="ActionNotSupported", reason=f"{name} is not supported")
        with self._lock:
            return handler(operation)

    def _authorized(self, root):
        token = _find(root, "UsernameToken")
        if token is None:
            return False
        username, password = _text(token, "Username"), _text(token, "Password")
        nonce, created = _text(token, "Nonce"), _text(token, "Created")
        digest = base64.b64encode(hashlib.sha1(base64.b64decode(nonce or "") + (created or "").encode()
                                               + self.password.encode()).digest()).decode()
        return username == self.username and password == digest

    # The operations

    def _do_GetCapabilities(self, request):
        base = f"http://127.0.0.1:{self.port}/onvif"
        return 200, (f"<tds:GetCapabilitiesResponse><tds:Capabilities>"
                     f"<tt:Media><tt:XAddr>{base}/media_service</tt:XAddr></tt:Media>"
                     f"<tt:PTZ><tt:XAddr>{base}/ptz_service</tt:XAddr></tt:PTZ>"
                     f"</tds:Capabilities></tds:GetCapabilitiesResponse>")

    def _do_GetProfiles(self, request):
        return 200, ("<trt:GetProfilesResponse><trt:Profiles token=\"profile_1\" fixed=\"true\">"
                     "<tt:Name>main</tt:Name><tt:PTZConfiguration token=\"ptz_1\"><tt:Name>ptz</tt:Name>"
                     "<tt:UseCount>1</tt:UseCount><tt:NodeToken>node_1</tt:NodeToken></tt:PTZConfiguration>"
                     "</trt:Profiles></trt:GetProfilesResponse>")

    def _do_GetNodes(self, request):
        spaces = _space("RelativePanTiltTranslationSpace", "PanTilt", "Translation")
        if self.zoom:
            spaces += _space("RelativeZoomTranslationSpace", "Zoom", "Translation", ("X",))
        if self.continuous:
            spaces += _space("ContinuousPanTiltVelocitySpace", "PanTilt", "Velocity")
            if self.zoom:
                spaces += _space("ContinuousZoomVelocitySpace", "Zoom", "Velocity", ("X",))
        return 200, (f"<tptz:GetNodesResponse><tptz:PTZNode token=\"node_1\"><tt:Name>node</tt:Name>"
                     f"<tt:SupportedPTZSpaces>{spaces}</tt:SupportedPTZSpaces>"
                     f"<tt:MaximumNumberOfPresets>16</tt:MaximumNumberOfPresets>"
                     f"<tt:HomeSupported>true</tt:HomeSupported></tptz:PTZNode></tptz:GetNodesResponse>")

    def _do_ContinuousMove(self, request):
        if not self.continuous:
            return 400, FAULT.format(code="ActionNotSupported", reason="no continuous move")
        self.moves.append(("continuous", *_vector(request, "Velocity")))
        return 200, "<tptz:ContinuousMoveResponse/>"

    def _do_RelativeMove(self, request):
        self.moves.append(("relative", *_vector(request, "Translation")))
        return 200, "<tptz:RelativeMoveResponse/>"

    def _do_Stop(self, request):
        self.moves.append(("stop",))
        return 200, "<tptz:StopResponse/>"

    def _do_GotoHomePosition(self, request):
        self.moves.append(("home",))
        return 200, "<tptz:GotoHomePositionResponse/>"

    def _do_GetPresets(self, request):
        presets = "".join(f"<tptz:Preset token=\"{token}\"><tt:Name>{escape(name)}</tt:Name></tptz:Preset>"
                          for token, name in sorted(self.presets.items()))
        return 200, f"<tptz:GetPresetsResponse>{presets}</tptz:GetPresetsResponse>"

    def _do_GotoPreset(self, request):
        token = _text(request, "PresetToken")
        if token not in self.presets:
            return 400, FAULT.format(code="NoToken", reason="no such preset")
        self.moves.append(("preset", token))
        return 200, "<tptz:GotoPresetResponse/>"

    def _do_SetPreset(self, request):
        token = str(max(map(int, self.presets), default=0) + 1)
        self.presets[token] = _text(request, "PresetName")
        return 200, f"<tptz:SetPresetResponse><tptz:PresetToken>{token}</tptz:PresetToken></tptz:SetPresetResponse>"

    def _do_RemovePreset(self, request):
        token = _text(request, "PresetToken")
        if self.presets.pop(token, None) is None:
            return 400, FAULT.format(code="NoToken", reason="no such preset")
        return 200, "<tptz:RemovePresetResponse/>"


def _find(element, name):
    return next((found for found in element.iter() if found.tag.split("}")[-1] == name), None)


def _text(element, name):
    found = _find(element, name)
    return found.text if found is not None else None


def _vector(request, name):
    vector = _find(request, name)
    pan_tilt, zoom = _find(vector, "PanTilt"), _find(vector, "Zoom")
    return (float(pan_tilt.get("x")) if pan_tilt is not None else 0.0,
            float(pan_tilt.get("y")) if pan_tilt is not None else 0.0,
            float(zoom.get("x")) if zoom is not None else 0.0)


def _handler(camera):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, content = camera.answer(body)
            data = ENVELOPE.format(content).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    return Handler
