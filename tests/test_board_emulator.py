"""board/emulator.py: the firmware's behaviour on a pty, seen from a plain serial client."""
import os
import threading

import pytest
import serial

from camera_server.board.emulator import BoardEmulator, ColorMessage, LineAssembler, parse_message, pixel_for

WAIT = 5.0


@pytest.fixture
def board():
    emulator = BoardEmulator(heart_rate=None).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def port(board):
    client = serial.serial_for_url(board.port, baudrate=9600, timeout=WAIT)
    yield client
    client.close()


def test_parse_message_takes_eight_and_ten_hex_digits():
    assert parse_message(b"ff8000C0") == ColorMessage(255, 128, 0, 0, 0xC0, explicit_white=False)
    assert parse_message(b"0102030405") == ColorMessage(1, 2, 3, 4, 5, explicit_white=True)
    for bad in (b"", b"FF8000C", b"FF8000C00", b"GG000000", b"FF 000C0", b"+F000000", b"\xff" * 8):
        assert parse_message(bad) is None


def test_pixel_for_grey_on_rgbw_is_white():
    assert pixel_for(ColorMessage(9, 9, 9, 0, 255, False), strip_has_white=True) == (0, 0, 0, 9)
    assert pixel_for(ColorMessage(9, 9, 9, 0, 255, True), strip_has_white=True) == (9, 9, 9, 0)
    assert pixel_for(ColorMessage(250, 0, 0, 10, 255, True), strip_has_white=False) == (255, 10, 10, 0)


def test_line_assembler_drops_carriage_returns_and_flags_overlong_lines():
    lines = LineAssembler(capacity=8)
    assert list(lines.feed(b"AB\rCD")) == []
    assert list(lines.feed(b"\r\n123456789\nok\n")) == [(b"ABCD", False), (b"12345678", True), (b"ok", False)]


def test_lines_from_a_client_set_the_state(board, port):
    port.write(b"FF000080\r\n")
    assert board.wait_for_lines(1, WAIT)
    state = board.state
    assert state.pixel == (255, 0, 0, 0) and state.message.brightness == 0x80 and state.accepted == 1


def test_malformed_lines_are_counted_and_change_nothing(board, port):
    port.write(b"00FF0010\n")
    port.write(b"nonsense\n" + b"F" * 50 + b"\nFF00001\n")
    assert board.wait_for_lines(4, WAIT)
    state = board.state
    assert state.rejected == 3 and state.pixel == (0, 255, 0, 0)


def test_a_line_split_across_writes_is_one_line(board, port):
    port.write(b"0000")
    port.flush()
    port.write(b"FF20\n")
    assert board.wait_for_lines(1, WAIT)
    assert board.state.pixel == (0, 0, 255, 0) and board.state.lines == 1


def test_reports_the_heart_rate_as_crlf_lines():
    emulator = BoardEmulator(heart_rate=75, report_interval=0.01).start()
    try:
        with serial.serial_for_url(emulator.port, timeout=WAIT) as client:
            client.reset_input_buffer()
            assert client.readline() == b"75\r\n"
            emulator.set_heart_rate(120)
            lines = [client.readline()]
            while lines[-1] != b"120\r\n" and len(lines) < 2000:  # older lines may still be queued
                lines.append(client.readline())
            assert lines[-1] == b"120\r\n" and set(lines) <= {b"75\r\n", b"120\r\n"}
    finally:
        emulator.stop()


def test_variation_stays_around_the_base_rate():
    emulator = BoardEmulator(heart_rate=70, variation=6)
    assert 64 <= emulator.current_heart_rate() <= 76
    emulator.set_heart_rate(None)
    assert emulator.current_heart_rate() is None


def read_what_is_there(path):
    """Everything a client opening `path` can read at once."""
    client = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    data = bytearray()
    try:
        while True:
            try:
                chunk = os.read(client, 65536)
            except BlockingIOError:
                return bytes(data)
            if not chunk:
                return bytes(data)
            data += chunk
    finally:
        os.close(client)


def test_output_nobody_reads_is_dropped_without_blocking(board):
    lines = 50_000  # 200 kB: about ten times what a pty holds (20 kB here)
    sender = threading.Thread(target=lambda: [board.send_line("72") for _ in range(lines)], daemon=True)
    sender.start()
    sender.join(WAIT)
    assert not sender.is_alive(), "send_line blocked on a pty nobody reads"
    kept = read_what_is_there(board.port)
    assert kept.startswith(b"72\r\n72\r\n") and len(kept) < lines * len(b"72\r\n")  # the rest was dropped


def test_stop_looks_like_an_unplug_to_the_client(board, port):
    board.stop()
    with pytest.raises(serial.SerialException):
        port.read(1)
    board.stop()  # twice is harmless
