"""The light's model, the same for every backend: colours, brightness, and the shared controls.

trinket.Led (the serial board) and neopixel.NeopixelLed (GPIO) build on LightControls; what goes
over the serial line is trinket's.
"""

import itertools
import re
import string
from dataclasses import dataclass

_HEX_COLOR = re.compile(r"#?([0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})")


def shown(value, limit=40):
    """repr(value) for an error message, cut short so a huge input is not echoed back whole."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


class LedUnavailable(RuntimeError):
    """The light cannot be driven right now: no board, unplugged, or no driver."""


@dataclass(frozen=True)
class Color:
    """A colour with an optional white channel, each part 0-255.

    white is None when no white part was given; then a grey lights a strip's white LEDs
    (see to_pixel). An explicit white of 0 keeps a grey on the red, green and blue LEDs.
    """
    red: int
    green: int
    blue: int
    white: int = None

    def __post_init__(self):
        for name in ("red", "green", "blue", "white"):
            value = getattr(self, name)
            if name == "white" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                raise ValueError(f"{name} must be a whole number from 0 to 255, not {shown(value)}")

    @classmethod
    def from_hex(cls, text):
        """Parse `RRGGBB` or `RRGGBBWW`, with an optional leading '#'."""
        match = _HEX_COLOR.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"colour must be RRGGBB or RRGGBBWW in hex (optionally starting with #), not {shown(text)}"
            )
        return cls(*bytes.fromhex(match.group(1)))

    @classmethod
    def from_name(cls, name):
        key = re.sub(r"[^a-z]", "", name.lower())
        if key not in NAMED_COLORS:
            known = ", ".join(sorted(NAMED_COLORS_DISPLAY))
            raise ValueError(f"unknown colour {shown(name)}: use RRGGBB or RRGGBBWW in hex "
                             f"(optionally starting with #) or one of these names: {known}")
        return NAMED_COLORS[key]

    def to_hex(self):
        """`RRGGBB`, or `RRGGBBWW` when a white part was given (even 00)."""
        text = f"{self.red:02X}{self.green:02X}{self.blue:02X}"
        return text if self.white is None else text + f"{self.white:02X}"

    def to_pixel(self, strip_has_white):
        """The (r, g, b, w) a strip shows, by the firmware's rule: a grey without a white part
        lights only the white LEDs."""
        white = self.white or 0
        if not strip_has_white:
            return tuple(min(255, part + white) for part in (self.red, self.green, self.blue)) + (0,)
        if self.white is None and self.red == self.green == self.blue:
            return (0, 0, 0, self.red)
        return (self.red, self.green, self.blue, white)


NAMED_COLORS_DISPLAY = {
    "off": Color(0, 0, 0), "black": Color(0, 0, 0), "white": Color(255, 255, 255),
    "warm white": Color(255, 160, 60), "cool white": Color(200, 220, 255),
    "red": Color(255, 0, 0), "green": Color(0, 255, 0), "blue": Color(0, 0, 255),
    "yellow": Color(255, 200, 0), "orange": Color(255, 100, 0), "purple": Color(128, 0, 255),
    "cyan": Color(0, 255, 255), "magenta": Color(255, 0, 255), "pink": Color(255, 80, 150),
}
NAMED_COLORS = {name.replace(" ", ""): color for name, color in NAMED_COLORS_DISPLAY.items()}


def build_color(*parts):
    """A Color from a Color, a hex string, a colour name, or red, green, blue[, white]."""
    if len(parts) == 1:
        (value,) = parts
        if isinstance(value, Color):
            return value
        if isinstance(value, str):
            text = value.strip()
            looks_hex = text.startswith("#") or (text and all(c in string.hexdigits for c in text))
            return Color.from_hex(text) if looks_hex else Color.from_name(text)
        raise ValueError(f"cannot make a colour from {shown(value)}")
    if len(parts) in (3, 4):
        return Color(*parts)
    raise ValueError("a colour is a hex string, a name, or red, green, blue[, white]")


def validate_brightness(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ValueError(f"brightness must be a whole number from 0 to 255, not {shown(value)}")
    return value


class LightControls:
    """The state and controls every light backend shares.

    A backend makes ``self._lock`` and implements ``_require()`` (raise LedUnavailable when it
    cannot reach the light) and ``_apply()`` (push the state out; called with the lock held).
    It calls ``_notify_change()`` when something else the page shows changes (the connection,
    a heart rate).
    """

    kind = "light"

    def _init_light_state(self):
        self._color = Color(255, 255, 255)
        self._brightness = 128
        self._on = False
        self._change_listeners = []
        self._versions = itertools.count(1)
        self._version = 0

    def add_change_listener(self, callback):
        """callback() runs after each change the page shows: the light, the connection, a heart rate.

        It runs in the thread that made the change (a request, a reader thread), without the
        light's lock held; keep it quick.
        """
        self._change_listeners.append(callback)

    @property
    def version(self):
        """Goes up with each change the page shows, so a client can tell older data from newer."""
        return self._version

    def _notify_change(self):
        self._version = next(self._versions)
        for callback in self._change_listeners:
            callback()

    def power_led(self, on):
        """Turn the light on (with the remembered colour and brightness) or off."""
        with self._lock:
            self._require()
            self._on = bool(on)
            self._apply()
        self._notify_change()

    def set_brightness(self, value):
        """Set 0-255; applied when the light is on, remembered when it is off."""
        validate_brightness(value)
        with self._lock:
            self._require()
            self._brightness = value
            if self._on:
                self._apply()
        self._notify_change()

    def set_color(self, color):
        """Set a Color (or anything build_color takes); applied when the light is on."""
        color = build_color(color)
        with self._lock:
            self._require()
            self._color = color
            if self._on:
                self._apply()
        self._notify_change()

    @property
    def color(self):
        return self._color

    @property
    def brightness(self):
        return self._brightness

    @property
    def is_on(self):
        return self._on
