"""The heart-light board (arduino/heartlight) emulated behind a pseudo-terminal.

It behaves like the firmware on the wire: it reads newline-ended `RRGGBBAA` or
`RRGGBBWWAA` hex lines (ignoring `\\r`, rejecting anything else), keeps the LED
state, and prints the heart rate as a decimal `NN\\r\\n` line every second.
`trinket.Led` opens `emulator.port` like any serial device.
"""

import logging
import math
import os
import select
import string
import threading
import time
import tty
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LINE_CAPACITY = 32  # the firmware's line buffer; longer lines are rejected
_HEX_DIGITS = frozenset(string.hexdigits.encode())


@dataclass(frozen=True)
class ColorMessage:
    """One accepted line: the colour, its brightness, and whether white was sent."""
    red: int
    green: int
    blue: int
    white: int
    brightness: int
    explicit_white: bool


@dataclass(frozen=True)
class BoardState:
    """What the board shows, and how many lines it took and refused."""
    message: ColorMessage = None
    pixel: tuple = (0, 0, 0, 0)
    accepted: int = 0
    rejected: int = 0
    received_at: float = None  # time.perf_counter() of the last line
    history: tuple = field(default=(), repr=False)

    @property
    def lines(self):
        return self.accepted + self.rejected


def parse_message(line):
    """Parse one line (bytes, `\\r` already removed) as the firmware does; None if malformed."""
    if len(line) not in (8, 10) or not set(line) <= _HEX_DIGITS:
        return None
    values = bytes.fromhex(line.decode("ascii"))
    if len(values) == 4:
        red, green, blue, brightness = values
        return ColorMessage(red, green, blue, 0, brightness, explicit_white=False)
    red, green, blue, white, brightness = values
    return ColorMessage(red, green, blue, white, brightness, explicit_white=True)


def pixel_for(message, strip_has_white):
    """The (r, g, b, w) a strip shows for a message, the firmware's RGBW rule."""
    red, green, blue, white = message.red, message.green, message.blue, message.white
    if not strip_has_white:
        return (min(255, red + white), min(255, green + white), min(255, blue + white), 0)
    if not message.explicit_white and red == green == blue:
        return (0, 0, 0, red)
    return (red, green, blue, white)


class LineAssembler:
    """Collects bytes into lines like the firmware: drops `\\r`, refuses overlong lines."""

    def __init__(self, capacity=LINE_CAPACITY):
        self._capacity = capacity
        self._buffer = bytearray()
        self._overflowed = False

    def feed(self, data):
        """Yield (line, too_long) for every newline in data."""
        for byte in data:
            if byte == 0x0D:
                continue
            if byte == 0x0A:
                line, too_long = bytes(self._buffer), self._overflowed
                self._buffer.clear()
                self._overflowed = False
                yield line, too_long
            elif len(self._buffer) < self._capacity:
                self._buffer.append(byte)
            else:
                self._overflowed = True


class BoardEmulator:
    """The firmware's behaviour on a pty; `port` is the path a client opens."""

    def __init__(self, heart_rate=72, *, report_interval=1.0, variation=0.0,
                 strip_has_white=True):
        self._heart_rate = heart_rate
        self._report_interval = report_interval
        self._variation = variation
        self._strip_has_white = strip_has_white
        self._state = BoardState()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads = []
        self._master = self._slave = None
        self._wake_read = self._wake_write = None
        self._started_at = time.monotonic()
        self.port = None

    def start(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation before a client opens it
        os.set_blocking(self._master, False)
        self._wake_read, self._wake_write = os.pipe()
        self.port = os.ttyname(self._slave)
        for target, name in ((self._read_loop, "board-emulator-read"),
                             (self._report_loop, "board-emulator-report")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("board emulator listening on %s", self.port)
        return self

    def stop(self, timeout=2.0):
        """Stop the threads and close the pty; a client sees the board unplugged."""
        self._stop.set()
        if self._wake_write is not None:
            os.write(self._wake_write, b"x")
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = self._wake_read = self._wake_write = None
        with self._changed:
            self._changed.notify_all()

    @property
    def state(self):
        with self._changed:
            return self._state

    def set_heart_rate(self, bpm):
        """The value it reports from now on; None makes the board go silent."""
        self._heart_rate = bpm

    def send_line(self, text):
        """Print a line to the client as the firmware's println does."""
        self.send_raw(text.encode("ascii") + b"\r\n")

    def send_raw(self, data):
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except BlockingIOError:
            log.debug("board emulator output dropped: nobody is reading")

    def wait_for_lines(self, count, timeout):
        """Wait until `count` lines (accepted or rejected) have arrived in total."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._state.lines >= count or self._stop.is_set(), timeout
            ) and self._state.lines >= count

    def wait_for(self, predicate, timeout):
        """Wait until predicate(state) holds; True if it did."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._state), timeout)

    def current_heart_rate(self):
        if self._heart_rate is None:
            return None
        elapsed = time.monotonic() - self._started_at
        return round(self._heart_rate + self._variation * math.sin(2 * math.pi * elapsed / 30))

    def _report_loop(self):
        while not self._stop.wait(self._report_interval):
            bpm = self.current_heart_rate()
            if bpm is not None:
                self.send_line(str(bpm))

    def _read_loop(self):
        lines = LineAssembler()
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            try:
                data = os.read(self._master, 1024)
            except BlockingIOError:
                continue
            except OSError as error:  # the client side went away for good
                log.debug("board emulator read ended: %s", error)
                return
            for line, too_long in lines.feed(data):
                self._take_line(None if too_long else parse_message(line))

    def _take_line(self, message):
        now = time.perf_counter()
        with self._changed:
            state = self._state
            if message is None:
                log.debug("board emulator rejected a malformed line")
                self._state = BoardState(state.message, state.pixel, state.accepted,
                                         state.rejected + 1, now, state.history)
            else:
                pixel = pixel_for(message, self._strip_has_white)
                history = (state.history + (message,))[-100:]
                self._state = BoardState(message, pixel, state.accepted + 1,
                                         state.rejected, now, history)
            self._changed.notify_all()
