"""The serial LED and heart-rate board (an ItsyBitsy running arduino/heartlight).

Wire protocol (see arduino/README.md): the host writes `RRGGBBAA\\n` (AA is the
brightness) or, when the colour has a white part, `RRGGBBWWAA\\n`; the board
prints the newest heart rate as a decimal line ending in `\\r\\n`.
"""

import functools
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass

import serial
import serial.threaded

# Color and build_color are part of trinket's interface too (the project's docs name them here).
from camera_server.board.light_model import (Color, LedUnavailable, LightControls, build_color,  # noqa: F401
                                             validate_brightness)

log = logging.getLogger(__name__)

DEFAULT_TTY = "/dev/ttyACM0"
DEFAULT_BAUD = 9600
DEFAULT_NUMLIGHTS = 16
BY_ID_DIR = "/dev/serial/by-id"
MAX_BPM = 300
_BOOTLOADER_BAUD = 1200  # opening a native-USB board at 1200 baud resets it into its bootloader
_BPM_LINE = re.compile(r"[0-9]{1,3}")
OFF_MESSAGE = "00000000"


def color_message(color, brightness):
    """The line for a lit board without its newline: `RRGGBBAA`, or `RRGGBBWWAA` with a white part."""
    return color.to_hex() + f"{validate_brightness(brightness):02X}"


def parse_heart_rate(text):
    """The beats per minute a line from the board (without its line end) gives, or None for garbage."""
    bpm = int(text) if _BPM_LINE.fullmatch(text) else None
    return bpm if bpm is not None and bpm <= MAX_BPM else None


def find_stable_path(tty, by_id_dir=BY_ID_DIR):
    """The /dev/serial/by-id link naming the same device as tty, or None."""
    if not tty.startswith("/"):
        return None
    try:
        target = os.path.realpath(tty, strict=True)
        entries = sorted(entry.path for entry in os.scandir(by_id_dir))
    except OSError:
        return None
    return next((path for path in entries if os.path.realpath(path) == target), None)


@dataclass(frozen=True)
class HeartRate:
    bpm: int
    received_at: float  # time.time() when the line arrived
    age_s: float


class _BoardLineReader(serial.threaded.LineReader):
    """Splits the board's output into lines for the Led; caps runaway lines."""
    TERMINATOR = b"\n"
    ENCODING = "ascii"
    UNICODE_HANDLING = "replace"
    MAX_LINE = 64

    def __init__(self, on_line, on_lost):
        super().__init__()
        self._on_line = on_line
        self._on_lost = on_lost
        self._discarding = False  # inside an overlong line, until its newline

    def data_received(self, data):
        if self._discarding:
            end = data.find(self.TERMINATOR)
            if end < 0:
                return
            data, self._discarding = data[end + 1:], False
        super().data_received(data)
        if len(self.buffer) > self.MAX_LINE:
            del self.buffer[:]
            self._discarding = True
            self._on_line(None)

    def handle_line(self, line):
        self._on_line(line)

    def connection_lost(self, exc):
        """Tell the Led; pyserial's base class would re-raise exc in the reader thread."""
        self.transport = None
        self._on_lost(exc)


class _BoardReaderThread(serial.threaded.ReaderThread):
    """pyserial's ReaderThread, but an OSError from a vanished device also ends the link.

    (pyserial's loop catches only SerialException; `in_waiting` on an unplugged tty raises
    a bare OSError, which would kill the thread without calling connection_lost.)
    """

    def run(self):
        if not hasattr(self.serial, "cancel_read"):  # a port that cannot be woken: wake up each second
            self.serial.timeout = 1
        self.protocol = self.protocol_factory()
        self.protocol.connection_made(self)
        self._connection_made.set()
        error = None
        while self.alive and self.serial.is_open:
            try:
                data = self.serial.read(self.serial.in_waiting or 1)  # blocks in select()
            except (serial.SerialException, OSError) as exc:
                error = exc
                break
            try:
                self.protocol.data_received(data)
            except Exception as exc:  # the thread's top level: log, end the link, let it reconnect
                log.exception("light: handling data from the board failed")
                error = exc
                break
        self.alive = False
        self.protocol.connection_lost(error)
        self.protocol = None


class _Link:
    """One open connection: its reader thread, the path, and an event set when it ends."""

    def __init__(self, reader, path):
        self.reader = reader
        self.path = path
        self.lost = threading.Event()


class Led(LightControls):
    """The light and heart-rate board on a serial port, reconnecting in the background."""

    kind = "trinket"

    def __init__(self, port=DEFAULT_TTY, baudrate=DEFAULT_BAUD, *, stale_after=5.0,
                 history_seconds=60.0, reconnect_initial=0.5, reconnect_max=5.0,
                 write_timeout=1.0, by_id_dir=BY_ID_DIR, clock=time.monotonic, owned=()):
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ValueError(f"baud must be a positive whole number, not {baudrate!r}")
        if baudrate == _BOOTLOADER_BAUD:
            raise ValueError("baud 1200 resets a native-USB board into its bootloader; use 9600")
        self.port = port
        self.baudrate = baudrate
        self.stale_after = stale_after
        self._history_seconds = history_seconds
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._write_timeout = write_timeout
        self._by_id_dir = by_id_dir
        self._clock = clock
        self._owned = list(owned)
        self._lock = threading.Lock()  # light state, the current link, the pending message
        self._wake_writer = threading.Condition(self._lock)
        self._pending = None  # the newest state message, not yet written
        self._writer = None
        self._init_light_state()
        self._link = None
        self._link_changed = threading.Condition()
        self._stable_path = None
        self._ever_connected = False
        self._stopping = threading.Event()
        self._supervisor = None
        self._info_lock = threading.Lock()
        self._last_error = None
        self._failed_attempts = 0
        self._reconnects = 0
        self._heart = threading.Condition()
        self._history = deque()  # (monotonic, wall, bpm)
        self._heart_sequence = 0
        self._lines = 0
        self._garbage_lines = 0

    # --- lifecycle -----------------------------------------------------------------------

    def start(self):
        """Try the port once now, then keep the link up from a daemon thread."""
        if not self._connect():
            log.warning("light: serial port %s is not available (%s); retrying in the background, "
                        "light controls answer 503 until it appears", self.port, self._last_error)
        self._writer = threading.Thread(target=self._write_loop, name="trinket-writer", daemon=True)
        self._writer.start()
        self._supervisor = threading.Thread(target=self._supervise, name="trinket-supervisor",
                                            daemon=True)
        self._supervisor.start()
        return self

    def stop(self, timeout=2.0):
        self._stopping.set()
        with self._lock:
            link = self._link
            self._wake_writer.notify()
        if link is not None:
            link.lost.set()
        for thread in (self._supervisor, self._writer):
            if thread is not None:
                thread.join(timeout)
        self._close_link()
        for resource in self._owned:
            resource.stop()
        with self._heart:
            self._heart.notify_all()

    @property
    def stopped(self):
        return self._stopping.is_set()

    def wait_connected(self, timeout, connected=True):
        """For tests and tools: wait until the link is up (or, with connected=False, down)."""
        with self._link_changed:
            return self._link_changed.wait_for(lambda: self.connected == connected, timeout)

    # --- light controls ------------------------------------------------------------------

    @property
    def connected(self):
        link = self._link
        return link is not None and not link.lost.is_set()

    def _require(self):
        if not self.connected:
            raise LedUnavailable(f"the light board on {self.port} is not connected"
                                 + (f" ({self._last_error})" if self._last_error else ""))

    def _state_message(self):
        return color_message(self._color, self._brightness) if self._on else OFF_MESSAGE

    def _apply(self):
        """Hand the current state to the writer thread; the caller holds self._lock.

        Only the newest state waits to be written (a dragged slider does not queue up), and a
        web request never waits on the serial port, so a stuck board cannot hold up the server.
        """
        self._pending = self._state_message().encode("ascii") + b"\n"
        self._wake_writer.notify()

    def _write_loop(self):
        while True:
            with self._wake_writer:
                self._wake_writer.wait_for(lambda: self._pending is not None or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                message, self._pending = self._pending, None
                link = self._link
            if link is not None and not link.lost.is_set():
                self._write(link, message)

    def _write(self, link, message):
        """Write one message; any failure ends the link, and the supervisor reconnects."""
        try:
            link.reader.write(message)
            return
        except (serial.SerialException, OSError) as error:
            log.warning("light: writing to the board on %s failed: %s", link.path, error)
            if link is self._link:
                self._record_error(f"write failed: {error}")
        except Exception:  # the writer thread's top level: log it and start over on a new link
            log.exception("light: writing to the board on %s failed", link.path)
        link.lost.set()
        self._notify_link_changed()

    # --- heart rate ----------------------------------------------------------------------

    @property
    def heart_rate(self):
        """The newest heart rate, or None when none came within stale_after seconds."""
        with self._heart:
            if not self._history:
                return None
            monotonic, wall, bpm = self._history[-1]
        age = self._clock() - monotonic
        return HeartRate(bpm, wall, age) if age <= self.stale_after else None

    def heart_rate_history(self, seconds=None):
        """The heart rates of the last `seconds` (default: the whole kept minute), oldest first."""
        window = self._history_seconds if seconds is None else seconds
        now = self._clock()
        with self._heart:
            samples = list(self._history)
        return [HeartRate(bpm, wall, now - mono) for mono, wall, bpm in samples if now - mono <= window]

    def wait_for_heart_rate(self, after_sequence, timeout):
        """Block until a heart rate newer than after_sequence arrives (or timeout); return the newest sequence."""
        with self._heart:
            self._heart.wait_for(lambda: self._heart_sequence > after_sequence or self.stopped, timeout)
            return self._heart_sequence

    def _take_line(self, line):
        """Called by the reader thread for every line (None: an overlong run of bytes)."""
        text = None if line is None else line.strip()
        if text == "":
            return
        bpm = None if text is None else parse_heart_rate(text)
        with self._heart:
            self._lines += 1
            self._heart.notify_all()
            if bpm is None:
                self._garbage_lines += 1
                log.debug("light: ignored a line from the board: %r", line)
                return
            now = self._clock()
            self._history.append((now, time.time(), bpm))
            while self._history and now - self._history[0][0] > self._history_seconds:
                self._history.popleft()
            self._heart_sequence += 1
            self._heart.notify_all()
        self._notify_change()

    # --- connection ----------------------------------------------------------------------

    def status(self):
        """What /status shows about the light."""
        heart_rate = self.heart_rate
        link = self._link
        with self._info_lock, self._heart:
            return {
                "type": self.kind, "port": self.port, "device": link.path if link else None,
                "connected": self.connected, "on": self._on, "color": self._color.to_hex(),
                "brightness": self._brightness, "last_error": self._last_error,
                "reconnect_attempts": self._failed_attempts, "reconnects": self._reconnects,
                "lines_received": self._lines, "garbage_lines": self._garbage_lines,
                "heart_rate": heart_rate.bpm if heart_rate else None,
                "heart_rate_age_s": round(heart_rate.age_s, 3) if heart_rate else None,
            }

    def _record_error(self, message):
        with self._info_lock:
            self._last_error = message

    def _candidate_paths(self):
        stable = self._stable_path or find_stable_path(self.port, self._by_id_dir)
        return [path for path in (stable, self.port) if path]

    def _open(self, path):
        kwargs = {"exclusive": True} if path.startswith("/") else {}
        port = serial.serial_for_url(path, baudrate=self.baudrate, timeout=None,
                                     write_timeout=self._write_timeout, **kwargs)
        port.reset_input_buffer()  # drop a half line left from before we opened it
        return port

    def _connect(self):
        """One attempt to open the board; True when connected."""
        errors = []
        for path in dict.fromkeys(self._candidate_paths()):
            try:
                port = self._open(path)
            except (serial.SerialException, OSError, ValueError) as error:
                errors.append(f"{path}: {error}")
                continue
            self._attach(port, path)
            return True
        with self._info_lock:
            self._failed_attempts += 1
            self._last_error = "; ".join(errors)
        return False

    def _attach(self, port, path):
        link = None
        factory = functools.partial(_BoardLineReader, self._take_line, lambda exc: self._lost(link, exc))
        reader = _BoardReaderThread(port, factory)
        reader.name = "trinket-reader"
        link = _Link(reader, path)
        reader.start()
        try:
            reader.connect()
        except RuntimeError:  # it died at once; the supervisor sees link.lost and retries
            pass
        if path.startswith("/"):
            self._stable_path = find_stable_path(path, self._by_id_dir) or self._stable_path
        with self._lock:
            self._link = link
            if self._stopping.is_set():
                link.lost.set()
            reconnected, self._ever_connected = self._ever_connected, True
            with self._info_lock:
                self._failed_attempts = 0
                self._last_error = None
                self._reconnects += reconnected
            self._apply()  # the board shows what the host thinks it shows
        self._notify_link_changed()
        log.info("light: board %s on %s", "reconnected" if reconnected else "connected", path)

    def _lost(self, link, error):
        """Called by a reader thread when its port fails or closes."""
        if error is not None:
            self._record_error(f"connection lost: {error}")
        if link is not None:
            link.lost.set()
        self._notify_link_changed()

    def _notify_link_changed(self):
        with self._link_changed:
            self._link_changed.notify_all()
        self._notify_change()

    def _close_link(self):
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.reader.close()

    def _supervise(self):
        delay = self._reconnect_initial
        while not self._stopping.is_set():
            link = self._link
            if link is not None:
                link.lost.wait()
                if self._stopping.is_set():
                    return
                log.warning("light: board on %s disconnected (%s); reconnecting", link.path,
                            self._last_error or "closed")
                self._close_link()
                delay = self._reconnect_initial
            if self._stopping.wait(delay):
                return
            if self._connect():
                delay = self._reconnect_initial
            else:
                log.debug("light: reconnect failed: %s", self._last_error)
                delay = min(delay * 2, self._reconnect_max)


def open_light(settings, **options):
    """The light for the settings (None when light is off); started, never raising for a missing device."""
    if not getattr(settings, "light", False):
        return None
    lighttype = (getattr(settings, "lighttype", None) or "trinket").strip().lower()
    if lighttype == "trinket":
        return _open_trinket(settings, **options)
    if lighttype == "neopixel":
        from camera_server.board.neopixel import NeopixelLed  # deprecated backend, imported only when asked for
        numlights = getattr(settings, "numlights", None) or DEFAULT_NUMLIGHTS
        return NeopixelLed(numlights).start()
    raise ValueError(f"lighttype must be 'trinket' or 'neopixel', not {lighttype!r}")


def _open_trinket(settings, **options):
    tty = getattr(settings, "tty", None) or DEFAULT_TTY
    baud = getattr(settings, "baud", None) or DEFAULT_BAUD
    if tty == "emulator":
        from camera_server.board.emulator import BoardEmulator
        emulator = BoardEmulator(heart_rate=72, variation=6).start()
        log.info("light: using the board emulator on %s (tty = emulator)", emulator.port)
        return Led(emulator.port, baud, owned=[emulator], **options).start()
    return Led(tty, baud, **options).start()
