"""What every pan-tilt-zoom backend offers, the errors it raises, and the checks of what people send.

A backend (Tapo, ONVIF) talks to one camera and blocks while it does; ``PtzController`` (controller.py)
runs it on its own thread with timeouts. Values are checked here, before anything reaches a camera: a
bad one is a ValueError (a 400 at the web's edge).
"""
import dataclasses
import math

# A direction's (pan, tilt): right and up are positive, as in ONVIF's generic spaces.
DIRECTIONS = {
    "up": (0, 1), "down": (0, -1), "left": (-1, 0), "right": (1, 0),
    "up-left": (-1, 1), "up-right": (1, 1), "down-left": (-1, -1), "down-right": (1, -1),
}
ZOOM_DIRECTIONS = {"in": 1, "out": -1}
PRESET_NAME_MAX = 32
PRESET_ID_MAX = 64


class PtzError(Exception):
    """Something the camera or its protocol refused; the message says what a person can do."""


class PtzUnsupported(PtzError):
    """The camera cannot do this (no zoom, no privacy mode...): a 409."""


class PtzUnreachable(PtzError):
    """The camera does not answer (connection refused, no route, busy with a request that hangs): a 503."""


class PtzTimeout(PtzUnreachable):
    """The camera took longer than ``ptz_timeout_s`` to answer: a 504."""


class PtzAuthFailed(PtzError):
    """The camera refused the user name or password: a 502 (the camera, not the client, said no)."""


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a camera can do; ``continuous_move`` False means moves are steps repeated while held."""
    continuous_move: bool = False
    step_move: bool = False
    zoom: bool = False
    presets: bool = False
    home: bool = False
    privacy: bool = False

    def as_dict(self):
        return dataclasses.asdict(self)


class PtzBackend:
    """One camera's protocol. Every method blocks (it talks to the camera) and is called from one
    thread at a time; errors are the Ptz* exceptions above, with messages that hold no secret."""

    kind = ""
    # The capabilities known before the camera answers (what the protocol can do at best).
    expected = Capabilities()

    def connect(self):
        """Log in and learn the camera's capabilities; answer them."""
        raise NotImplementedError

    def continuous_move(self, pan, tilt, zoom):
        raise PtzUnsupported(f"this {self.kind} camera has no continuous move")

    def step(self, pan, tilt, zoom):
        """One step in the direction of (pan, tilt, zoom), each -1..1, its size scaled by the speed in them."""
        raise PtzUnsupported(f"this {self.kind} camera cannot move in steps")

    def stop(self):
        """End a continuous move (a step ends by itself)."""

    def presets(self):
        """[{"id": str, "name": str}, ...]"""
        raise PtzUnsupported(f"this {self.kind} camera has no presets")

    def goto_preset(self, preset_id):
        raise PtzUnsupported(f"this {self.kind} camera has no presets")

    def save_preset(self, name):
        """Save the current position under ``name``; answer the new preset's id."""
        raise PtzUnsupported(f"this {self.kind} camera has no presets")

    def delete_preset(self, preset_id):
        raise PtzUnsupported(f"this {self.kind} camera has no presets")

    def home(self):
        raise PtzUnsupported(f"this {self.kind} camera has no home position")

    def privacy(self):
        """Whether the privacy mode is on; None when the camera has none."""
        return None

    def set_privacy(self, on):
        raise PtzUnsupported("only Tapo cameras have a privacy mode here")

    def close(self):
        """Forget the session (nothing to wait for)."""


def check_motion(pan, tilt, zoom=0.0, speed=1.0):
    """(pan, tilt, zoom) scaled by speed, each checked to lie in -1..1 (speed 0..1); ValueError otherwise."""
    for name, value, low in (("pan", pan, -1), ("tilt", tilt, -1), ("zoom", zoom, -1), ("speed", speed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= 1:
            raise ValueError(f"{name} must be a number from {low} to 1, not {value!r}"[:120])
    return pan * speed, tilt * speed, zoom * speed


def direction_motion(direction):
    """The (pan, tilt) of a direction word; ValueError that lists them for any other."""
    try:
        return DIRECTIONS[str(direction).lower()]
    except KeyError:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {str(direction)[:40]!r}") from None


def zoom_direction(direction):
    try:
        return ZOOM_DIRECTIONS[str(direction).lower()]
    except KeyError:
        raise ValueError(f"direction must be in or out, not {str(direction)[:40]!r}") from None


def check_preset_name(name):
    """A preset name: 1-32 printable characters (stripped); ValueError otherwise."""
    if not isinstance(name, str):
        raise ValueError("the preset name must be text")
    name = name.strip()
    if not 1 <= len(name) <= PRESET_NAME_MAX or not name.isprintable():
        raise ValueError(f"a preset name is 1-{PRESET_NAME_MAX} printable characters, not {name[:40]!r}")
    return name


def check_preset_id(preset):
    """A preset as the list names it (its id, or its name): 1-64 printable characters."""
    if isinstance(preset, int) and not isinstance(preset, bool):
        preset = str(preset)
    if not isinstance(preset, str) or not 1 <= len(preset.strip()) <= PRESET_ID_MAX \
            or not preset.strip().isprintable():
        raise ValueError(f"preset must be a preset's id or name from the list (1-{PRESET_ID_MAX} printable "
                         "characters)")
    return preset.strip()
