"""notify.py: the webhook against a local HTTP server; MQTT against a real mosquitto on a free port."""
import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading

import pytest

from camera_server.watch.notify import MqttNotifier, WebhookNotifier, validate_host, validate_url
from conftest import unavailable, wait_for

WAIT = 10.0   # an upper bound for things that take milliseconds (MQTT reconnects take about 1 s)
EVENT = {"type": "started", "at": 1700000000.5, "id": 1, "kind": "motion", "start": 1700000000.5,
         "end": None, "peak_score": 0.12, "peak_confidence": 0.0, "labels": []}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- a webhook receiver ---------------------------------------------------------------------

class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs; answers with statuses from a script."""

    def __init__(self):
        self.requests = []             # (path, headers, body)
        self.statuses = []             # answers to give, one per request; 200 when empty
        self.hold = threading.Event()  # cleared: each request waits until it is set
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                receiver.arrived.set()
                receiver.hold.wait(WAIT)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass                   # the client gave up (timeout)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def bodies(self):
        return [json.loads(body) for _, _, body in self.requests]

    def close(self):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def notifiers():
    made = []
    yield made
    for notifier in made:
        notifier.close(timeout=WAIT)


def webhook(notifiers, url, **options):
    options.setdefault("backoff_s", 0.01)
    notifier = WebhookNotifier(url, **options)
    notifiers.append(notifier)
    return notifier


# --- webhook --------------------------------------------------------------------------------

def test_webhook_posts_the_event_as_json(receiver, notifiers):
    notifier = webhook(notifiers, receiver.url)
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.sent == 1)
    ((path, headers, body),) = receiver.requests
    assert path == "/hook"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == EVENT


def test_webhook_user_info_is_sent_as_basic_auth(receiver, notifiers):
    port = receiver.url.split(":")[2].split("/")[0]
    notifier = webhook(notifiers, f"http://node%2Dred:p%40ss:word@127.0.0.1:{port}/hook?token=t0k")
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.sent == 1)
    ((path, headers, _),) = receiver.requests
    assert path == "/hook?token=t0k"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"node-red:p@ss:word").decode()


def test_webhook_secrets_never_reach_the_log(notifiers, caplog):
    port = free_port()
    url = f"http://user:hunter2@127.0.0.1:{port}/hook?Token=s3cr3t&api_key=K3y&room=hall"
    notifier = webhook(notifiers, url, retries=1)
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.failed == 1)
    assert f"webhook http://127.0.0.1:{port}/…: attempt 1 of 2 failed" in caplog.text
    assert not any(secret in caplog.text for secret in ("hunter2", "s3cr3t", "K3y"))
    with pytest.raises(ValueError) as refused:
        validate_url("ftp://user:hunter2@example.com/?token=s3cr3t")
    assert "'ftp://example.com/…'" in str(refused.value)
    assert "hunter2" not in str(refused.value) and "s3cr3t" not in str(refused.value)


@pytest.mark.parametrize("path", ["/services/T0000/B0000/Sl4ckS3cret",      # Slack
                                  "/api/webhooks/123456/D1scordT0ken",       # Discord
                                  "/api/webhook/h0me-assistant-1d"])         # Home Assistant
def test_a_webhook_whose_secret_is_its_path_or_user_name_logs_only_its_host(notifiers, caplog, path):
    port = free_port()
    for url in (f"http://127.0.0.1:{port}{path}", f"http://T0kenUser@127.0.0.1:{port}/hook"):
        notifier = webhook(notifiers, url, retries=0)
        notifier.notify(EVENT)
        assert wait_for(lambda: notifier.failed == 1)
    assert f"webhook http://127.0.0.1:{port}/…" in caplog.text
    assert path not in caplog.text and path.rsplit("/", 1)[1] not in caplog.text and "T0kenUser" not in caplog.text
    with pytest.raises(ValueError) as refused:
        validate_url(f"ftp://hooks.example.com{path}")
    assert path not in str(refused.value)


def test_webhook_retries_after_a_server_error(receiver, notifiers):
    receiver.statuses = [500, 503]
    notifier = webhook(notifiers, receiver.url, retries=3)
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.sent == 1)
    assert receiver.bodies() == [EVENT, EVENT, EVENT]
    assert notifier.failed == 0


def test_webhook_gives_up_after_the_retries(receiver, notifiers):
    receiver.statuses = [500] * 10
    notifier = webhook(notifiers, receiver.url, retries=2)
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.failed == 1)
    assert len(receiver.requests) == 3 and notifier.sent == 0


def test_webhook_does_not_retry_a_client_error(receiver, notifiers):
    receiver.statuses = [404]
    notifier = webhook(notifiers, receiver.url, retries=3)
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.failed == 1)
    notifier.notify({**EVENT, "id": 2})
    assert wait_for(lambda: notifier.sent == 1)
    assert [body["id"] for body in receiver.bodies()] == [1, 2]


def test_a_slow_server_times_out_and_never_blocks_the_caller(receiver, notifiers):
    receiver.hold.clear()                      # the server takes the request and does not answer
    notifier = webhook(notifiers, receiver.url, timeout_s=0.2, retries=0)
    notifier.notify(EVENT)                     # returns at once although the server hangs
    assert receiver.arrived.wait(WAIT)
    assert not receiver.hold.is_set(), "notify() returned while the server still held the request"
    assert wait_for(lambda: notifier.failed == 1), "the request must time out"
    receiver.hold.set()


def test_a_full_queue_drops_the_oldest_and_counts(receiver, notifiers):
    receiver.hold.clear()
    notifier = webhook(notifiers, receiver.url, queue_size=2)
    notifier.notify({**EVENT, "id": 1})
    assert receiver.arrived.wait(WAIT)        # 1 is being sent; the server holds it
    for number in range(2, 6):
        notifier.notify({**EVENT, "id": number})
    assert notifier.dropped == 2 and notifier.pending == 2
    receiver.hold.set()
    assert wait_for(lambda: notifier.sent == 3)
    assert [body["id"] for body in receiver.bodies()] == [1, 4, 5]


def test_a_server_that_is_not_there_fails_in_the_background(notifiers):
    notifier = webhook(notifiers, f"http://127.0.0.1:{free_port()}/hook", retries=1)
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.failed == 1)


def test_close_delivers_what_is_queued_first(receiver, notifiers):
    receiver.hold.clear()
    notifier = webhook(notifiers, receiver.url)
    notifier.notify({**EVENT, "id": 1})
    assert receiver.arrived.wait(WAIT)        # 1 is being sent; 2 and 3 wait in the queue
    notifier.notify({**EVENT, "id": 2})
    notifier.notify({**EVENT, "id": 3, "type": "ended"})
    closing = threading.Thread(target=notifier.close, kwargs={"timeout": WAIT})
    closing.start()
    receiver.hold.set()
    closing.join(WAIT + 2)
    assert [body["id"] for body in receiver.bodies()] == [1, 2, 3]
    assert notifier.sent == 3
    notifier.notify({**EVENT, "id": 4})       # closed: refused, not queued
    assert notifier.pending == 0


def test_close_gives_up_at_its_deadline_and_names_what_was_not_sent(receiver, notifiers, caplog):
    receiver.hold.clear()                     # the server takes each request and does not answer
    notifier = webhook(notifiers, receiver.url, timeout_s=WAIT)
    notifier.notify({**EVENT, "id": 1})
    assert receiver.arrived.wait(WAIT)
    notifier.notify({**EVENT, "id": 2, "type": "ended"})
    notifier.close(timeout=0.2)
    assert "closed with 2 events not sent: started 1, ended 2" in caplog.text
    assert notifier.sent == 0
    receiver.hold.set()


@pytest.mark.parametrize("url", ["", "example.com/hook", "ftp://example.com/", "http://", "http://host:99999/",
                                 "javascript:alert(1)"])
def test_bad_webhook_urls_are_refused(url):
    with pytest.raises(ValueError, match="webhook URL"):
        validate_url(url)


def test_bad_webhook_settings_are_refused():
    with pytest.raises(ValueError, match="timeout"):
        WebhookNotifier("http://127.0.0.1/", timeout_s=0)
    with pytest.raises(ValueError, match="retries"):
        WebhookNotifier("http://127.0.0.1/", retries=-1)


# --- MQTT -----------------------------------------------------------------------------------

def mosquitto_binary():
    return shutil.which("mosquitto") or next(
        (path for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(path)), None)


def start_broker(tmp_path, port):
    binary = mosquitto_binary()
    if binary is None:
        unavailable("mosquitto is not installed (Debian: apt install mosquitto); the MQTT tests need a real broker")
    config = tmp_path / f"mosquitto-{port}.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def accepting():
        if process.poll() is not None:
            pytest.fail(f"mosquitto stopped: {process.stderr.read().decode(errors='replace')}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0
    assert wait_for(accepting), "mosquitto did not start listening"
    return process


def stop_broker(process):
    process.terminate()
    try:
        process.wait(WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    process = start_broker(tmp_path, port)
    yield port
    stop_broker(process)


class Subscriber:
    """A paho client that records (topic, payload, retained) for every message under a prefix."""

    def __init__(self, port, topics=("camera_server/#", "homeassistant/#")):
        import paho.mqtt.client as mqtt
        self.messages = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-subscriber-{port}")
        self.client.on_connect = lambda client, *args: ([client.subscribe(topic, qos=1) for topic in topics],
                                                        self.ready.set())
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(WAIT)

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def payloads(self, topic):
        with self.lock:
            return [payload for name, payload, _ in self.messages if name == topic]

    def wait_for(self, topic, payload, timeout=WAIT):
        return wait_for(lambda: payload in self.payloads(topic), timeout)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers():
    made = []
    yield made
    for subscriber in made:
        subscriber.close()


def test_mqtt_status_motion_and_event_topics(broker, notifiers, subscribers):
    watcher = Subscriber(broker)
    subscribers.append(watcher)
    notifier = MqttNotifier("127.0.0.1", broker, client_id="camera-test")
    notifiers.append(notifier)
    assert watcher.wait_for("camera_server/status", "online")
    notifier.notify(EVENT)
    assert watcher.wait_for("camera_server/motion", "ON")
    assert wait_for(lambda: watcher.payloads("camera_server/event"))
    assert json.loads(watcher.payloads("camera_server/event")[0]) == EVENT
    notifier.notify({**EVENT, "type": "ended", "end": 1700000007.0})
    assert watcher.wait_for("camera_server/motion", "OFF")
    assert wait_for(lambda: len(watcher.payloads("camera_server/event")) == 2)
    assert json.loads(watcher.payloads("camera_server/event")[1])["type"] == "ended"


def test_mqtt_retained_state_and_home_assistant_discovery(broker, notifiers, subscribers):
    notifier = MqttNotifier("127.0.0.1", broker)
    notifiers.append(notifier)
    assert notifier.connected.wait(WAIT)
    notifier.notify(EVENT)
    assert wait_for(lambda: notifier.sent == 1)
    late = Subscriber(broker)                 # joins afterwards: sees the retained messages
    subscribers.append(late)
    assert late.wait_for("camera_server/motion", "ON")
    assert late.wait_for("camera_server/status", "online")
    discovery = "homeassistant/binary_sensor/camera_server/motion/config"
    assert wait_for(lambda: late.payloads(discovery))   # its own subscription: may arrive after the others
    (config,) = late.payloads(discovery)
    config = json.loads(config)
    assert config["device_class"] == "motion" and config["state_topic"] == "camera_server/motion"
    assert config["availability_topic"] == "camera_server/status"
    retained = {topic for topic, _, retain in late.messages if retain}
    assert "camera_server/event" not in retained


def test_mqtt_close_says_offline(broker, notifiers, subscribers):
    watcher = Subscriber(broker, topics=("home/garage/#",))
    subscribers.append(watcher)
    notifier = MqttNotifier("127.0.0.1", broker, topic_prefix="home/garage")
    notifiers.append(notifier)
    assert notifier.connected.wait(WAIT)
    assert watcher.wait_for("home/garage/status", "online")
    notifier.close()
    assert watcher.wait_for("home/garage/status", "offline")


def test_mqtt_last_will_says_offline_when_the_connection_breaks(broker, notifiers, subscribers):
    watcher = Subscriber(broker)
    subscribers.append(watcher)
    notifier = MqttNotifier("127.0.0.1", broker)
    notifiers.append(notifier)
    assert watcher.wait_for("camera_server/status", "online")
    notifier._client.loop_stop()              # the process hangs or the network goes: no DISCONNECT
    notifier._client.socket().shutdown(socket.SHUT_RDWR)
    assert watcher.wait_for("camera_server/status", "offline")


def test_a_restart_after_a_crash_mid_event_turns_the_retained_motion_off(broker, notifiers, subscribers):
    crashed = MqttNotifier("127.0.0.1", broker)
    assert crashed.connected.wait(WAIT)
    crashed.notify(EVENT)
    assert wait_for(lambda: crashed.sent == 1)
    watcher = Subscriber(broker)
    subscribers.append(watcher)
    assert watcher.wait_for("camera_server/motion", "ON")     # retained
    crashed._client.loop_stop()               # killed mid-event: no "ended", no DISCONNECT
    crashed._client.socket().shutdown(socket.SHUT_RDWR)
    assert watcher.wait_for("camera_server/status", "offline")
    restarted = MqttNotifier("127.0.0.1", broker)
    notifiers.append(restarted)
    assert watcher.wait_for("camera_server/status", "online")
    assert watcher.wait_for("camera_server/motion", "OFF")
    late = Subscriber(broker, topics=("camera_server/motion",))
    subscribers.append(late)
    assert late.wait_for("camera_server/motion", "OFF")
    assert late.payloads("camera_server/motion") == ["OFF"]
    crashed.close(timeout=1)                  # its thread; the broker has dropped it already


def test_broker_down_never_blocks_and_events_arrive_when_it_comes_up(tmp_path, notifiers, subscribers):
    port = free_port()
    notifier = MqttNotifier("127.0.0.1", port)
    notifiers.append(notifier)
    for number in range(1, 4):
        notifier.notify({**EVENT, "id": number})  # returns at once: nothing listens on the port
    assert not notifier.connected.is_set()
    process = start_broker(tmp_path, port)
    try:
        watcher = Subscriber(port)
        subscribers.append(watcher)
        assert watcher.wait_for("camera_server/status", "online")
        assert wait_for(lambda: len(watcher.payloads("camera_server/event")) == 3)
        assert [json.loads(payload)["id"] for payload in watcher.payloads("camera_server/event")] == [1, 2, 3]
        notifier.close()
        notifiers.remove(notifier)
    finally:
        stop_broker(process)


def test_close_with_the_broker_down_returns(notifiers):
    notifier = MqttNotifier("127.0.0.1", free_port())
    notifier.notify(EVENT)
    notifier.close(timeout=WAIT)
    assert not notifier._thread.is_alive()


@pytest.mark.parametrize("host", ["", "mqtt://broker", "broker:1883", "bad host", "broker/path", "-x"])
def test_bad_mqtt_hosts_are_refused(host):
    with pytest.raises(ValueError, match="MQTT host"):
        validate_host(host)


@pytest.mark.parametrize("host", ["localhost", "broker.lan", "192.168.1.10", "::1", "mqtt-1.example.org"])
def test_good_mqtt_hosts_are_taken(host):
    assert validate_host(host) == host


@pytest.mark.parametrize("options, message", [
    ({"port": 0}, "port must be between 1 and 65535"),
    ({"port": "x"}, "port must be a number"),
    ({"topic_prefix": "cams/#"}, "topic prefix"),
    ({"topic_prefix": "/"}, "topic prefix"),
])
def test_bad_mqtt_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        MqttNotifier("127.0.0.1", **options)
