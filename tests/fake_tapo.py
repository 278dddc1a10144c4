"""A fake Tapo camera on 127.0.0.1: HTTPS with a self-signed certificate made at start, the login pytapo
makes (the legacy one: an md5 of the password, answered with a ``stok``), and the ``multipleRequest``
calls of its motor, presets and privacy mode. It records the moves. ``delay`` makes it answer slowly.

What it answers pytapo's probes, so that pytapo takes the legacy login: the discover request and the
``encrypt_type 3`` probe get an error that offers neither the new (tpap) nor the secure login.
"""
import datetime
import hashlib
import http.server
import ipaddress
import json
import secrets
import ssl
import threading
import time
from pathlib import Path

from fake_server import BackgroundServer, QuietServer


def make_certificate(folder):
    """A self-signed certificate and key for 127.0.0.1 (cryptography, which pytapo needs anyway)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake tapo")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    folder = Path(folder)
    cert_path, key_path = folder / "tapo-cert.pem", folder / "tapo-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class FakeTapo(BackgroundServer):
    def __init__(self, folder, username="admin", password="cloud-secret", delay=0.0, motor=True):
        self.username, self.password, self.delay, self.motor = username, password, delay, motor
        self.moves = []             # (x, y) of each motorMove
        self.calls = []             # every method asked for, in order
        self.logins = 0
        self.presets = {"1": "door", "2": "gate"}
        self.privacy = False
        self.stok = None
        self._lock = threading.Lock()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(*make_certificate(folder))
        self.serve(_TlsServer(("127.0.0.1", 0), _handler(self), self._context))

    # What the camera answers

    def answer(self, path, body):
        if self.delay:
            time.sleep(self.delay)
        method = body.get("method")
        if path == "/" and method == "login":
            return self._login(body.get("params") or {})
        if not path.startswith("/stok=") or path.split("=", 1)[1].split("/")[0] != self.stok or not self.stok:
            return 200, {"error_code": -40401}
        if method == "multipleRequest":
            requests = body["params"]["requests"]
            return 200, {"error_code": 0, "result": {"responses": [self._one(request) for request in requests]}}
        if method == "get" and "motor" in body:
            self.calls.append("getMotorCapability")
            if not self.motor:
                return 200, {"error_code": -40210}
            return 200, {"error_code": 0, "motor": {"capability": {"absolute_move_supported": "1",
                                                                   "calibrate_supported": "1"}}}
        return 200, {"error_code": -40210}

    def _login(self, params):
        if params.get("sub_method") == "discover" or params.get("encrypt_type"):
            return 200, {"error_code": -40210}         # neither the tpap nor the secure login is offered
        self.logins += 1
        expected = hashlib.md5(self.password.encode()).hexdigest().upper()
        if params.get("username") != self.username or params.get("password") != expected:
            return 401, {"error_code": -40401, "result": {"data": {"code": -40411}}}
        self.stok = secrets.token_hex(16)
        return 200, {"error_code": 0, "result": {"stok": self.stok, "user_group": "root"}}

    def _one(self, request):
        method, params = request.get("method"), request.get("params") or {}
        with self._lock:
            self.calls.append(method)
            handler = getattr(self, f"_do_{method}", None)
            if handler is None:
                return {"method": method, "error_code": -40210}
            try:
                result = handler(params)
            except LookupError:
                return {"method": method, "error_code": -64302}
        if isinstance(result, int):
            return {"method": method, "error_code": result}
        return {"method": method, "result": result, "error_code": 0}

    def _do_getDeviceInfo(self, params):
        return {"device_info": {"basic_info": {"device_type": "SMART.IPCAMERA", "device_model": "C200",
                                               "device_alias": "fake", "sw_version": "1.0.0"}}}

    def _do_motorMove(self, params):
        if self.privacy:
            return -64324
        move = params["motor"]["move"]
        self.moves.append((int(move["x_coord"]), int(move["y_coord"])))
        return {}

    def _do_getPresetConfig(self, params):
        ids = sorted(self.presets, key=int)
        return {"preset": {"preset": {"id": ids, "name": [self.presets[key] for key in ids],
                                      "read_only": ["0"] * len(ids)}}}

    def _do_addMotorPostion(self, params):
        new_id = str(max(map(int, self.presets), default=0) + 1)
        self.presets[new_id] = params["preset"]["set_preset"]["name"]
        return {}

    def _do_deletePreset(self, params):
        for preset_id in params["preset"]["remove_preset"]["id"]:
            del self.presets[preset_id]
        return {}

    def _do_motorMoveToPreset(self, params):
        preset_id = params["preset"]["goto_preset"]["id"]
        if preset_id not in self.presets:
            raise LookupError(preset_id)
        self.moves.append(("preset", preset_id))
        return {}

    def _do_getLensMaskConfig(self, params):
        return {"lens_mask": {"lens_mask_info": {"enabled": "on" if self.privacy else "off"}}}

    def _do_setLensMaskConfig(self, params):
        self.privacy = params["lens_mask"]["lens_mask_info"]["enabled"] == "on"
        return {}


class _TlsServer(QuietServer):
    def __init__(self, address, handler, context):
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        """The TLS handshake in the request's own thread, so a client that never completes it (pytapo's
        plain-HTTP probe of the port) holds up no one."""
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def _handler(camera):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            status, answer = camera.answer(self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass
    return Handler
