"""HTTP routes for the light and the heart rate (the original route names).

Reads are GET, changes are POST with form fields or a JSON object (request_fields).
The model's ValueError becomes 400, LedUnavailable (and no light configured) becomes 503,
through flask.abort; the app's error handler renders those as {"error": description}.
"""

import json
import threading
import time
from dataclasses import dataclass

from flask import Blueprint, Response, abort, jsonify

from camera_server.board.light_model import LedUnavailable
from camera_server.capture.hub import FrameHub
from camera_server.web.request_fields import field, number, query_number, switch


HISTORY_SECONDS = 60
# Each event stream holds a connection (and under gthread a thread) for as long as it is open: a few
# dozen leave the page, /status and the controls their room (gunicorn keeps 64 threads or 100
# connections beside max_viewers). The live page polls instead.
MAX_STREAMS = 16


def controller_data(led):
    """The JSON the page polls or streams: light state, heart rate, connection."""
    version = led.version  # read first: what follows is at least this new
    heart_rate = led.heart_rate
    return {
        "version": version,
        "type": led.kind,
        "connected": led.connected,
        "on": led.is_on,
        "color": led.color.to_hex(),
        "brightness": led.brightness,
        "heart_rate": heart_rate.bpm if heart_rate else None,
        "heart_rate_age_s": round(heart_rate.age_s, 2) if heart_rate else None,
        "heart_rate_received_at": heart_rate.received_at if heart_rate else None,
        "error": None if led.connected else led.status().get("last_error"),
    }


def heart_rate_history(led, seconds=HISTORY_SECONDS):
    samples = led.heart_rate_history(seconds)
    return {
        "seconds": seconds,
        "now": time.time(),
        "samples": [{"bpm": s.bpm, "t": s.received_at, "age_s": round(s.age_s, 2)} for s in samples],
    }


@dataclass(frozen=True)
class _ChangeTick:
    seq: int


class _ChangeFeed:
    """Wakes stream clients on each change of the light, its connection or the heart rate.

    It goes through a FrameHub, which waits the right way for threads (gthread, development
    server) and for greenlets (gevent worker with native threads), where a native Condition
    would stall the event loop.
    """

    def __init__(self, led):
        self._hub = FrameHub()
        self._lock = threading.Lock()
        self._sequence = 0
        led.add_change_listener(self._changed)

    @property
    def sequence(self):
        """Counts the changes so far."""
        return self._sequence

    def _changed(self):
        with self._lock:  # the hub's newest tick is always the highest sequence
            self._sequence += 1
            self._hub.publish(_ChangeTick(self._sequence))

    def wait(self, sequence, timeout):
        """The newest sequence above `sequence`, or `sequence` after the timeout."""
        tick = self._hub.wait_newer(sequence, timeout)
        return tick.seq if tick is not None else sequence


class _StreamCount:
    """Counts the open event streams, up to a limit."""

    def __init__(self, limit):
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def open(self):
        """A function that closes the stream it counts (once), or None when `limit` are open."""
        with self._lock:
            if self._open >= self.limit:
                return None
            self._open += 1
        closed = threading.Event()

        def close():
            with self._lock:
                if not closed.is_set():
                    closed.set()
                    self._open -= 1
        return close


def _sse(payload):
    return f"data: {json.dumps(payload)}\n\n"


def create_light_blueprint(get_led, *, keepalive_seconds=15.0, max_streams=MAX_STREAMS):
    """The light routes; get_led() returns the Led (or NeopixelLed), or None when no light."""
    from camera_server.web.auth import require_control  # resolved here so the app (and tests) decide what auth is

    blueprint = Blueprint("light", __name__)
    feeds = {}  # id(led) -> (led, _ChangeFeed)
    feeds_lock = threading.Lock()
    streams = _StreamCount(max_streams)

    def feed_for(led):
        with feeds_lock:
            if id(led) not in feeds or feeds[id(led)][0] is not led:
                feeds[id(led)] = (led, _ChangeFeed(led))
            return feeds[id(led)][1]

    def current_led():
        led = get_led()
        if led is None:
            abort(503, description="no light is configured (set light = true in config.txt)")
        return led

    def control(action, *args):
        """Run a light control; the model's errors become 400 or 503."""
        led = current_led()
        try:
            action(led, *args)
        except ValueError as error:
            abort(400, description=str(error))
        except LedUnavailable as error:
            abort(503, description=str(error))
        return jsonify(controller_data(led))

    @blueprint.post("/light")
    @require_control
    def light():
        return control(lambda led, on: led.power_led(on), switch("state"))

    @blueprint.post("/set_brightness")
    @require_control
    def set_brightness():
        return control(lambda led, value: led.set_brightness(value), number("value", int, 0, 255))

    @blueprint.post("/set_color")
    @require_control
    def set_color():
        return control(lambda led, color: led.set_color(color), field("color"))

    @blueprint.get("/get_controller_data")
    def get_controller_data():
        return jsonify(controller_data(current_led()))

    @blueprint.get("/heart_rate_history")
    def get_heart_rate_history():
        seconds = query_number("seconds", HISTORY_SECONDS, 1, HISTORY_SECONDS)
        return jsonify(heart_rate_history(current_led(), seconds))

    @blueprint.get("/heart_rate_stream")
    def heart_rate_stream():
        """Server-sent events: the controller data at each change (light, connection, heart rate)
        and at every keepalive; at most max_streams at once."""
        led = current_led()
        feed = feed_for(led)
        close = streams.open()
        if close is None:
            abort(503, description=f"{max_streams} clients already follow /heart_rate_stream (the most at once); "
                                   "poll /get_controller_data instead, or try again later")

        def events():
            sequence = feed.sequence
            yield "retry: 3000\n" + _sse(controller_data(led))
            while not led.stopped:
                sequence = feed.wait(sequence, keepalive_seconds)
                yield _sse(controller_data(led))

        response = Response(events(), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.call_on_close(close)      # also when the client left before the first event
        return response

    return blueprint
