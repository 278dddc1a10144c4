"""Event notifications: a JSON webhook and MQTT topics in the style Home Assistant users expect.

Both notifiers hand each message to their own daemon thread through a small bounded queue, so
notify() returns at once whatever the network does; when the queue is full the oldest message is
dropped and counted. notify() takes the dict of an events.EventChange (``{"type": "started", ...}``)
with the scene watch's ``snapshot``, ``clip`` and ``catalogue_id``; its ``id`` is the event's string
id, the same in each message of one event and not reused after a restart.

MQTT topics, under ``topic_prefix`` (default ``camera_server``):
  ``<prefix>/status``  ``online`` / ``offline``, retained; the broker sends ``offline`` (the last
                       will) when the connection is lost
  ``<prefix>/motion``  ``ON`` while an event lasts, ``OFF`` when it ends, retained; published again
                       at each connect, so an ``ON`` left by a crash does not outlive it
  ``<prefix>/event``   the event as JSON, not retained
and, unless discovery_prefix is empty, a retained Home Assistant discovery config that makes the
motion topic a binary_sensor (device class motion).
"""
import base64
import collections
import ipaddress
import json
import logging
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid

from camera_server.url_secrets import origin_secrets, redact, url_origin

log = logging.getLogger(__name__)

QUEUE_SIZE = 100
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def validate_url(url):
    """An http(s) URL with a host; ValueError otherwise (its message shows only the URL's scheme and host)."""
    text = str(url or "").strip()
    try:
        parsed = urllib.parse.urlsplit(text)
        parsed.port
    except ValueError:
        raise ValueError(f"the webhook URL {url_origin(text)!r} has a bad host or port") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"the webhook URL must look like http://host/path or https://host/path, "
                         f"not {url_origin(text)!r}")
    return text


def basic_auth(url):
    """``url`` without its user info, and the HTTP Basic ``Authorization`` value that carries it instead
    (urllib does not send the user info of a URL); None without user info."""
    parts = urllib.parse.urlsplit(url)
    user_info, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = user_info.partition(":")
    credentials = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), "Basic " + base64.b64encode(credentials).decode()


def validate_host(host):
    """A host name or IP address, without scheme, port or path; ValueError otherwise."""
    text = str(host or "").strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if len(text) > 253 or not _HOSTNAME.fullmatch(text):
        raise ValueError(f"the MQTT host must be a host name or an IP address (no mqtt://, port or path), "
                         f"not {host!r}")
    return text


def validate_port(port):
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"the MQTT port must be a number, not {port!r}") from None
    if not 1 <= value <= 65535:
        raise ValueError(f"the MQTT port must be between 1 and 65535, not {port!r}")
    return value


def validate_topic_prefix(prefix):
    text = str(prefix or "").strip().strip("/")
    if not text or any(char in text for char in "+#\0") or len(text) > 200:
        raise ValueError(f"the MQTT topic prefix must be a topic like camera_server or home/garage "
                         f"(no +, # or empty), not {prefix!r}")
    return text


def _number(name, value, low, high):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the {name} must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"the {name} must be between {low:g} and {high:g}, not {value!r}")
    return number


class QueuedNotifier:
    """A daemon thread that delivers queued messages; subclasses implement _deliver(message)."""

    def __init__(self, name, queue_size=QUEUE_SIZE):
        self._queue = collections.deque()
        self._queue_size = max(1, int(queue_size))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()     # no new messages; the thread leaves once the queue is empty
        self._stop = threading.Event()        # leave now, even with messages queued
        self._sending = None                  # the message being delivered
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def notify(self, event_dict):
        """Queue one message; never blocks. When the queue is full the oldest message is dropped."""
        if self._closing.is_set():
            log.warning("%s: closed, event %s %s not sent", self._thread.name, event_dict.get("type"),
                        event_dict.get("id"))
            return
        with self._lock:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
                log.warning("%s: queue full, dropped the oldest event (%d so far)", self._thread.name, self.dropped)
            self._queue.append(event_dict)
        self._wake.set()

    @property
    def pending(self):
        return len(self._queue)

    def close(self, timeout=5.0):
        """Deliver what is queued for up to timeout seconds, then stop; log the messages left unsent."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        self._stop.set()                # cuts retry waits short; a request under way ends by its own timeout
        self._thread.join(min(timeout, 1.0))
        with self._lock:
            unsent = list(self._queue)
        if self._thread.is_alive() and self._sending is not None:
            unsent.insert(0, self._sending)
        if unsent:
            log.warning("%s: closed with %d events not sent: %s", self._thread.name, len(unsent),
                        ", ".join(f"{message.get('type')} {message.get('id')}" for message in unsent))

    def _next(self):
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            self._wake.clear()
            return None

    def _run(self):
        while not self._stop.is_set():
            message = self._next()
            if message is None:
                if self._closing.is_set():
                    return              # closed and everything delivered
                self._wake.wait()
                continue
            self._sending = message
            try:
                if self._deliver(message):
                    self.sent += 1
                else:
                    self.failed += 1
            except Exception:  # the thread's top level: log and go on with the next message
                self.failed += 1
                log.exception("%s: could not send an event", self._thread.name)
            finally:
                self._sending = None

    def _deliver(self, message):
        raise NotImplementedError


class WebhookNotifier(QueuedNotifier):
    """POSTs each event as JSON; retries network errors and 5xx answers with growing waits.

    ``user:password@`` in the URL is sent as HTTP Basic auth (to that host only, never after a redirect);
    the log shows the URL's scheme and host only (``https://hooks.slack.com/…``): the path is often the secret.
    """

    def __init__(self, url, timeout_s=5.0, retries=3, backoff_s=1.0, queue_size=QUEUE_SIZE, headers=None):
        self.url = validate_url(url)
        self.shown_url = url_origin(self.url)
        self._secrets = origin_secrets(self.url)
        self._target, self._authorization = basic_auth(self.url)
        self.timeout_s = _number("webhook timeout", timeout_s, 0.001, 300)
        self.retries = int(_number("webhook retries", retries, 0, 20))
        self.backoff_s = _number("webhook backoff", backoff_s, 0, 600)
        self.headers = {"Content-Type": "application/json", "User-Agent": "camera-server", **(headers or {})}
        super().__init__("webhook", queue_size)

    def _deliver(self, message):
        body = json.dumps(message).encode()
        for attempt in range(self.retries + 1):
            if attempt:
                if self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                    log.error("webhook %s: event %s not delivered: closed before the retry %d", self.shown_url,
                              message.get("id"), attempt)
                    return False
            try:
                request = urllib.request.Request(self._target, data=body, headers=self.headers, method="POST")
                if self._authorization:
                    request.add_unredirected_header("Authorization", self._authorization)
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read(65536)
                return True
            except urllib.error.HTTPError as error:
                if error.code < 500 and error.code not in (408, 429):
                    log.error("webhook %s refused the event: HTTP %d %s (not retried)", self.shown_url, error.code,
                              error.reason)
                    return False
                reason = f"HTTP {error.code} {error.reason}"
            except (urllib.error.URLError, OSError, ValueError) as error:
                reason = redact(str(getattr(error, "reason", error)), self._secrets)
            log.warning("webhook %s: attempt %d of %d failed: %s", self.shown_url, attempt + 1, self.retries + 1,
                        reason)
        log.error("webhook %s: event %s not delivered after %d attempts", self.shown_url, message.get("id"),
                  self.retries + 1)
        return False


class MqttNotifier(QueuedNotifier):
    """Publishes events to an MQTT broker with paho-mqtt 2.x; connects and reconnects in the background."""

    def __init__(self, host, port=1883, topic_prefix="camera_server", client_id=None, username=None,
                 password=None, keepalive=60, discovery_prefix="homeassistant", device_name="Camera server",
                 queue_size=QUEUE_SIZE):
        import paho.mqtt.client as mqtt     # imported here: only needed when MQTT is configured
        self.host, self.port = validate_host(host), validate_port(port)
        self.prefix = validate_topic_prefix(topic_prefix)
        self.status_topic = f"{self.prefix}/status"
        self.motion_topic = f"{self.prefix}/motion"
        self.event_topic = f"{self.prefix}/event"
        self.discovery_prefix = str(discovery_prefix or "").strip("/")
        self.device_name = device_name
        self.node_id = re.sub(r"[^A-Za-z0-9_-]", "_", self.prefix)
        self.connected = threading.Event()
        self._motion_state = "OFF"          # what <prefix>/motion says; set again at each connect
        self._motion_lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"{self.node_id}-{uuid.uuid4().hex[:8]}")
        if username:
            self._client.username_pw_set(username, password)
        self._client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self._client.max_queued_messages_set(queue_size)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        super().__init__("mqtt", queue_size)
        self._client.connect_async(self.host, self.port, int(keepalive))
        self._client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        log.info("MQTT: connected to %s:%d", self.host, self.port)
        if self.discovery_prefix:
            client.publish(f"{self.discovery_prefix}/binary_sensor/{self.node_id}/motion/config",
                           json.dumps(self._discovery_config()), qos=1, retain=True)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        with self._motion_lock:             # replaces an ON retained from a run that crashed mid-event
            client.publish(self.motion_topic, self._motion_state, qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if reason_code != 0:
            log.warning("MQTT: lost the broker %s:%d (%s); reconnecting", self.host, self.port, reason_code)

    def _discovery_config(self):
        return {"name": "Motion", "unique_id": f"{self.node_id}_motion", "device_class": "motion",
                "state_topic": self.motion_topic, "payload_on": "ON", "payload_off": "OFF",
                "availability_topic": self.status_topic, "payload_available": "online",
                "payload_not_available": "offline", "json_attributes_topic": self.event_topic,
                "device": {"identifiers": [self.node_id], "name": self.device_name}}

    def _deliver(self, message):
        """Hand the messages to paho; while the broker is away paho keeps them (bounded) and sends later."""
        from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_SUCCESS
        with self._motion_lock:
            self._motion_state = "OFF" if message.get("type") == "ended" else "ON"
            results = [self._client.publish(self.motion_topic, self._motion_state, qos=1, retain=True)]
        results.append(self._client.publish(self.event_topic, json.dumps(message), qos=1))
        failures = [result.rc for result in results if result.rc not in (MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN)]
        if failures:
            log.warning("MQTT: event %s dropped for %s:%d: %s", message.get("id"), self.host, self.port,
                        self._error_string(failures[0]))
            return False
        return True

    @staticmethod
    def _error_string(code):
        import paho.mqtt.client as mqtt
        return mqtt.error_string(code)

    def close(self, timeout=5.0):
        """Say offline, disconnect and stop paho's thread (a clean disconnect sends no last will)."""
        super().close(timeout)
        if self.connected.is_set():
            info = self._client.publish(self.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(min(timeout, 2.0))
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
