"""trinket.py: the Led facade against the board emulator on a pty, reconnects, open_light."""
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import serial

from camera_server.board import light_model
from camera_server.board import trinket
from camera_server.board.emulator import BoardEmulator
from camera_server.board.light_model import Color, LedUnavailable
from camera_server.board.trinket import Led

ROOT = Path(__file__).resolve().parent.parent
WAIT = 5.0  # generous upper bound for things that happen in milliseconds; never a measurement


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def led_factory(tmp_path):
    leds = []

    def make(port, **options):
        options.setdefault("by_id_dir", str(tmp_path / "no-by-id"))
        options.setdefault("reconnect_initial", 0.02)
        options.setdefault("reconnect_max", 0.05)
        led = Led(port, **options).start()
        leds.append(led)
        return led

    yield make
    for led in leds:
        led.stop()


def sent(emulator, count):
    """The board's state once it has taken `count` lines in total."""
    assert emulator.wait_for_lines(count, WAIT), f"board got {emulator.state.lines} lines, not {count}"
    return emulator.state


def shows(emulator, pixel, brightness=None):
    """The board's state once it shows pixel (and brightness); the Led sends only the newest state."""
    def matches(state):
        return state.pixel == pixel and (brightness is None or state.message.brightness == brightness)
    assert emulator.wait_for(matches, WAIT), f"the board shows {emulator.state}"
    return emulator.state


def test_color_and_build_color_are_part_of_trinket():
    """The project's docs name trinket.Color and trinket.build_color; they live in light_model."""
    assert trinket.Color is light_model.Color and trinket.build_color is light_model.build_color


# --- the wire format ----------------------------------------------------------------------

def test_color_message_is_the_original_message_without_white_and_ten_digits_with_it():
    assert trinket.color_message(Color(255, 128, 0), 0x40) == "FF800040"
    assert trinket.color_message(Color(0, 0, 0), 0) == "00000000"
    assert trinket.color_message(Color(1, 2, 3, 4), 255) == "01020304FF"
    with pytest.raises(ValueError, match="brightness"):
        trinket.color_message(Color(1, 2, 3), 256)
    # Only a grey without a white part lights the white LEDs; `RRGGBB00` says "no white".
    assert trinket.color_message(Color.from_hex("C8C8C8"), 255) == "C8C8C8FF"  # the board's grey rule applies
    assert trinket.color_message(Color.from_hex("C8C8C800"), 255) == "C8C8C800FF"  # the channels as given


# --- by-id paths ----------------------------------------------------------------------------

def test_find_stable_path_prefers_the_by_id_link(tmp_path):
    device = tmp_path / "ttyACM0"
    device.write_text("")
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-Adafruit_ItsyBitsy_32u4-if00").symlink_to(device)
    (by_id / "usb-Other-if00").symlink_to(tmp_path / "elsewhere")
    assert trinket.find_stable_path(str(device), str(by_id)) == str(by_id / "usb-Adafruit_ItsyBitsy_32u4-if00")
    assert trinket.find_stable_path(str(tmp_path / "missing"), str(by_id)) is None
    assert trinket.find_stable_path("loop://", str(by_id)) is None
    assert trinket.find_stable_path(str(device), str(tmp_path / "no-such-dir")) is None


# --- the Led against the emulated board -----------------------------------------------------

def test_connect_sends_the_current_state_which_starts_off(emulator, led_factory):
    led = led_factory(emulator.port)
    assert led.connected
    state = sent(emulator, 1)
    assert state.message.brightness == 0 and state.pixel == (0, 0, 0, 0)


def test_power_brightness_and_color_reach_the_board(emulator, led_factory):
    led = led_factory(emulator.port)
    sent(emulator, 1)
    led.set_color("#FF8000")
    led.set_brightness(200)
    led.power_led(True)
    second = sent(emulator, 2).history[1]  # off, the two changes were remembered, not sent
    assert (second.red, second.green, second.blue, second.brightness) == (255, 128, 0, 200)
    led.set_color(Color(10, 20, 30, 40))
    state = sent(emulator, 3)
    assert state.message.explicit_white and state.pixel == (10, 20, 30, 40)
    led.set_brightness(7)
    assert sent(emulator, 4).message.brightness == 7


def test_power_off_then_on_restores_the_colour(emulator, led_factory):
    led = led_factory(emulator.port)
    led.power_led(True)
    led.set_color("blue")
    shows(emulator, (0, 0, 255, 0))
    led.power_led(False)
    shows(emulator, (0, 0, 0, 0), brightness=0)
    led.power_led(True)
    shows(emulator, (0, 0, 255, 0), brightness=128)
    assert led.color == Color(0, 0, 255)


def test_grey_lights_the_white_channel_on_the_board(emulator, led_factory):
    led = led_factory(emulator.port)
    led.power_led(True)
    led.set_color("white")
    shows(emulator, (0, 0, 0, 255))
    led.set_color("C8C8C800")  # an explicit white of 00: the grey stays on the RGB LEDs
    state = shows(emulator, (200, 200, 200, 0))
    assert state.message.explicit_white


def test_bad_input_raises_value_error_and_sends_nothing(emulator, led_factory):
    led = led_factory(emulator.port)
    sent(emulator, 1)
    led.power_led(True)
    sent(emulator, 2)
    for bad in (256, -1, "12", 3.0, None):
        with pytest.raises(ValueError, match="brightness"):
            led.set_brightness(bad)
    with pytest.raises(ValueError):
        led.set_color("not a colour")
    led.set_brightness(9)  # the next good line is the third one: nothing bad went out
    assert sent(emulator, 3).message.brightness == 9 and emulator.state.rejected == 0


def test_writes_from_many_threads_arrive_whole_and_the_newest_wins(emulator, led_factory):
    led = led_factory(emulator.port)
    led.power_led(True)
    threads = [threading.Thread(target=lambda v=v: [led.set_brightness(v) for _ in range(50)])
               for v in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    led.set_color("red")  # the last change of all
    state = shows(emulator, (255, 0, 0, 0), brightness=led.brightness)
    assert state.rejected == 0 and 2 <= state.accepted <= 2 + 8 * 50 + 1


def test_heart_rate_lines_are_read(emulator, led_factory):
    led = led_factory(emulator.port)
    assert led.heart_rate is None
    emulator.send_line("72")
    sequence = led.wait_for_heart_rate(0, WAIT)
    assert sequence == 1
    heart_rate = led.heart_rate
    assert heart_rate.bpm == 72 and heart_rate.age_s >= 0
    emulator.send_line("0")
    assert led.wait_for_heart_rate(1, WAIT) == 2 and led.heart_rate.bpm == 0


def test_the_emulator_reports_on_its_own(led_factory):
    board = BoardEmulator(heart_rate=75, report_interval=0.01).start()
    try:
        led = led_factory(board.port)
        led.wait_for_heart_rate(0, WAIT)
        assert led.heart_rate.bpm == 75
    finally:
        board.stop()


def test_garbage_lines_are_counted_and_ignored(emulator, led_factory):
    led = led_factory(emulator.port)
    emulator.send_raw(b"hello\r\n999\r\n-5\r\n7.5\r\n\xff\xfe\r\n" + b"x" * 200 + b"\r\n\r\n61\r\n")
    assert led.wait_for_heart_rate(0, WAIT) == 1
    status = led.status()
    assert status["garbage_lines"] == 6
    assert led.heart_rate.bpm == 61 and led.connected


def test_heart_rate_goes_stale_and_history_keeps_a_minute(emulator, led_factory):
    clock = FakeClock(1000.0)
    led = led_factory(emulator.port, clock=clock, stale_after=5.0)
    for sequence, (at, bpm) in enumerate(((1000.0, 60), (1030.0, 70), (1050.0, 80)), start=1):
        clock.now = at  # the reader thread stamps the line with this time
        emulator.send_line(str(bpm))
        assert led.wait_for_heart_rate(sequence - 1, WAIT) == sequence
    clock.now = 1055.0
    assert led.heart_rate.bpm == 80 and led.heart_rate.age_s == pytest.approx(5.0)
    clock.now = 1055.5
    assert led.heart_rate is None
    assert [s.bpm for s in led.heart_rate_history(10)] == [80]
    clock.now = 1075.0
    assert [s.bpm for s in led.heart_rate_history()] == [70, 80]


def test_status_says_what_the_page_and_status_need(emulator, led_factory):
    led = led_factory(emulator.port)
    status = led.status()
    for key in ("connected", "port", "device", "last_error", "reconnect_attempts", "garbage_lines",
                "heart_rate", "heart_rate_age_s", "color", "brightness", "on"):
        assert key in status
    assert status["connected"] is True and status["port"] == emulator.port


# --- missing and unplugged boards -----------------------------------------------------------

def test_missing_device_is_one_log_line_and_controls_raise_unavailable(tmp_path, led_factory, caplog):
    missing = str(tmp_path / "ttyACM9")
    with caplog.at_level("WARNING", logger="camera_server.board.trinket"):
        led = led_factory(missing)
    warnings = [r for r in caplog.records if r.name == "camera_server.board.trinket"]
    assert len(warnings) == 1 and missing in warnings[0].getMessage()
    assert not led.connected
    with pytest.raises(LedUnavailable, match="not connected"):
        led.power_led(True)
    status = led.status()
    assert status["connected"] is False and "ttyACM9" in status["last_error"]
    assert status["reconnect_attempts"] >= 1


def test_unplug_and_replug_reconnects_through_the_by_id_link(tmp_path, led_factory):
    """The configured tty names the device at start; after a replug only the by-id link is right."""
    first = BoardEmulator(heart_rate=None).start()
    second = None
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    stable = by_id / "usb-Adafruit_ItsyBitsy_32u4-if00"
    stable.symlink_to(first.port)
    tty = tmp_path / "ttyACM0"
    tty.symlink_to(first.port)
    try:
        led = led_factory(str(tty), by_id_dir=str(by_id))
        assert led.status()["device"] == str(stable)
        led.power_led(True)
        led.set_color("green")
        shows(first, (0, 255, 0, 0))
        first.stop()  # unplugged
        assert led.wait_connected(WAIT, connected=False)
        with pytest.raises(LedUnavailable):
            led.set_color("red")
        assert "connection lost" in led.status()["last_error"]
        tty.unlink()  # the kernel may give the board another ttyACM number...
        second = BoardEmulator(heart_rate=None).start()
        stable.unlink()  # ...but its by-id link follows it
        stable.symlink_to(second.port)
        assert led.wait_connected(WAIT)
        state = sent(second, 1)  # the state is restored on the new connection
        assert state.pixel == (0, 255, 0, 0) and state.lines == 1
        assert led.status()["reconnects"] >= 1 and led.status()["last_error"] is None
    finally:
        if second is not None:
            second.stop()


def test_write_failure_ends_the_link_and_the_state_follows_the_reconnect(emulator, led_factory,
                                                                         monkeypatch, caplog):
    led = led_factory(emulator.port)
    sent(emulator, 1)
    link = led._link

    def broken_write(data):
        raise serial.SerialException("device gone")

    monkeypatch.setattr(link.reader, "write", broken_write)
    with caplog.at_level("WARNING", logger="camera_server.board.trinket"):
        led.power_led(True)  # queued: the web request does not wait for the port
        assert link.lost.wait(WAIT)
    assert any("device gone" in record.getMessage() for record in caplog.records)
    assert led.wait_connected(WAIT)  # the supervisor opens the port again...
    assert led._link is not link
    shows(emulator, (0, 0, 0, 255), brightness=128)  # ...and sends the light as it should be


def test_an_os_error_from_a_vanishing_tty_ends_the_link(emulator, led_factory, monkeypatch):
    """pyserial's own reader thread would die on this without telling anyone."""
    led = led_factory(emulator.port)
    link = led._link

    def vanished(self):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(type(link.reader.serial), "in_waiting", property(vanished))
    emulator.send_line("70")  # wakes the reader, whose next read asks in_waiting
    assert link.lost.wait(WAIT)
    link.reader.join(WAIT)
    assert not link.reader.is_alive()
    monkeypatch.undo()
    assert led.wait_connected(WAIT)


def test_stop_joins_the_threads_and_closes_the_port(emulator, tmp_path):
    led = Led(emulator.port, by_id_dir=str(tmp_path)).start()
    reader = led._link.reader
    led.stop()
    assert not led._supervisor.is_alive() and not led._writer.is_alive() and not reader.is_alive()
    assert not reader.serial.is_open
    assert not led.connected


def test_stop_while_reconnecting_returns(tmp_path):
    led = Led(str(tmp_path / "absent"), by_id_dir=str(tmp_path), reconnect_initial=30).start()
    led.stop(timeout=WAIT)
    assert not led._supervisor.is_alive()


def test_loop_url_works_and_its_echo_counts_as_garbage(led_factory):
    led = led_factory("loop://")
    led.power_led(True)  # loop:// echoes the state lines back: no heart rate in them
    with led._heart:
        assert led._heart.wait_for(lambda: led.status()["garbage_lines"] >= 1, WAIT)
    assert led.status()["lines_received"] == led.status()["garbage_lines"] and led.heart_rate is None


def test_bootloader_baud_and_bad_baud_are_refused():
    with pytest.raises(ValueError, match="bootloader"):
        Led("loop://", 1200)
    with pytest.raises(ValueError, match="baud"):
        Led("loop://", "fast")


# --- open_light -----------------------------------------------------------------------------

def settings(**values):
    base = dict(light=True, lighttype="trinket", numlights=16, tty="/dev/ttyACM0", baud=9600)
    base.update(values)
    return SimpleNamespace(**base)


def test_open_light_is_none_without_light():
    assert trinket.open_light(settings(light=False)) is None


def test_open_light_with_the_emulator_shows_a_heart_rate():
    led = trinket.open_light(settings(tty="emulator"))
    try:
        assert led.connected and led.port.startswith("/dev/pts/")
        led.power_led(True)
        led.set_color("red")
        shows(led._owned[0], (255, 0, 0, 0))
    finally:
        led.stop()


def test_open_light_with_a_missing_tty_does_not_raise(tmp_path):
    led = trinket.open_light(settings(tty=str(tmp_path / "nope"), baud=None), by_id_dir=str(tmp_path))
    try:
        assert not led.connected and led.baudrate == trinket.DEFAULT_BAUD
    finally:
        led.stop()


def test_open_light_rejects_unknown_types():
    with pytest.raises(ValueError, match="lighttype"):
        trinket.open_light(settings(lighttype="laser"))


def test_open_light_neopixel_off_a_pi_is_unavailable_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "rpi_ws281x", None)  # import fails as off a Pi
    monkeypatch.setitem(sys.modules, "neopixel", None)
    led = trinket.open_light(settings(lighttype="neopixel"))
    assert led.kind == "neopixel" and not led.connected
    with pytest.raises(LedUnavailable, match="rpi_ws281x"):
        led.power_led(True)


def test_nothing_starts_at_import():
    code = ("import threading, trinket, camera_server.board.light_model, camera_server.board.emulator, "
            "camera_server.board.neopixel, camera_server.web.light_routes; print(threading.active_count())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "1"
