"""Deprecated: Neopixels on the Raspberry Pi's GPIO (`lighttype = neopixel`, seed 001 section 6c).

The driver makes the video stutter on a Pi; the serial board (trinket.py) is the supported way.
This backend keeps the same facade as trinket.Led so the routes work with either.
"""

import logging
import threading

from camera_server.board.light_model import LedUnavailable, LightControls

log = logging.getLogger(__name__)

DEFAULT_PIN = 18  # PWM0, the pin rpi_ws281x drives by default
_HELP = ("lighttype = neopixel needs the rpi_ws281x library on a Raspberry Pi "
         "(pip install rpi_ws281x, run the server as root); "
         "lighttype = trinket with the serial board is the supported choice")


def load_driver():
    """(strip class, colour packer) from rpi_ws281x, or from the old `neopixel` wrapper of it.

    Both strip classes take (num, pin, freq_hz, dma, invert, brightness, channel, strip_type)
    with defaults after pin, but the old wrapper's first versions have no strip_type and a
    Color(red, green, blue) without white; NeopixelLed uses only what both have.
    """
    try:
        from rpi_ws281x import Color as pack, PixelStrip
        return PixelStrip, pack
    except ImportError as error:
        first_error = error
    try:
        from neopixel import Adafruit_NeoPixel, Color as pack
        return Adafruit_NeoPixel, pack
    except ImportError:
        raise LedUnavailable(f"{_HELP} ({first_error})") from first_error


def make_strip(strip_class, numlights, pin, strip_type=None):
    """The strip; strip_type only when given, so each library uses its own default otherwise.

    (The old wrapper hands strip_type straight to the C driver, which refuses None.)
    """
    options = {} if strip_type is None else {"strip_type": strip_type}
    return strip_class(numlights, pin, **options)


class NeopixelLed(LightControls):
    """Neopixels driven from this computer's GPIO; no heart rate."""

    kind = "neopixel"
    heart_rate = None

    def __init__(self, numlights, *, pin=DEFAULT_PIN, strip_has_white=False, strip_type=None):
        if isinstance(numlights, bool) or not isinstance(numlights, int) or numlights < 1:
            raise ValueError(f"numlights must be a whole number of at least 1, not {numlights!r}")
        self.numlights = numlights
        self.port = f"GPIO{pin}"
        self._pin = pin
        self._strip_has_white = strip_has_white
        self._strip_type = strip_type
        self._lock = threading.Lock()
        self._strip = None
        self._pack = None
        self._init_light_state()
        self._last_error = None
        self._stopping = threading.Event()

    def start(self):
        """Set up the strip; when it cannot be driven (off a Pi, not root, a driver that does not
        fit) this logs one clear error and the light stays unavailable."""
        try:
            strip_class, self._pack = load_driver()
            strip = make_strip(strip_class, self.numlights, self._pin, self._strip_type)
            strip.begin()
            with self._lock:
                self._strip = strip
                self._apply()
        except TypeError as error:  # an old driver without strip_type, or without white in Color
            self._fail_start(f"the Neopixel driver does not take these settings ({error}); "
                             "rpi_ws281x (pip install rpi_ws281x) takes them all")
        except (LedUnavailable, RuntimeError, OSError) as error:
            self._fail_start(str(error))
        return self

    def _fail_start(self, message):
        with self._lock:
            self._strip = None
            self._last_error = message
        log.error("light: %s", message)

    def stop(self, timeout=None):
        """Blank the strip and let go of it."""
        self._stopping.set()
        with self._lock:
            if self._strip is None:
                return
            self._on = False
            try:
                self._apply()
            except (RuntimeError, OSError) as error:
                log.warning("light: could not blank the Neopixels: %s", error)
            self._strip = None

    @property
    def stopped(self):
        return self._stopping.is_set()

    @property
    def connected(self):
        return self._strip is not None

    def heart_rate_history(self, seconds=None):
        return []

    def status(self):
        return {
            "type": self.kind, "port": self.port, "device": self.port, "connected": self.connected,
            "on": self._on, "color": self._color.to_hex(), "brightness": self._brightness,
            "last_error": self._last_error, "numlights": self.numlights,
            "heart_rate": None, "heart_rate_age_s": None,
        }

    def _require(self):
        if self._strip is None:
            raise LedUnavailable(self._last_error or "the Neopixels are not set up")

    def _apply(self):
        """Push the state to the strip; the caller holds self._lock.

        A driver failure (ws2811_render failed, ...) is LedUnavailable, which the routes answer with 503.
        """
        pixel = self._color.to_pixel(self._strip_has_white) if self._on else (0, 0, 0, 0)
        packed = self._pack(*pixel) if self._strip_has_white else self._pack(*pixel[:3])
        try:
            for index in range(self.numlights):
                self._strip.setPixelColor(index, packed)
            self._strip.setBrightness(self._brightness)
            self._strip.show()
        except (RuntimeError, OSError) as error:
            self._last_error = f"the Neopixel driver failed: {error}"
            raise LedUnavailable(self._last_error) from error
