#!/usr/bin/env python3
"""Benchmark the serial light link against the board emulator on a pty.

1. Latency of a colour change reaching the (emulated) board: from just before `Led.set_color`
   (and, separately, before a `POST /set_color` through the Flask test client) to the moment the
   emulator's reader has parsed the line. Both ends use time.perf_counter (CLOCK_MONOTONIC) in
   one process. Target: median < 5 ms.
2. CPU used by the Led's threads (reader, writer, supervisor) while the line is quiet, read from each
   thread's own CPU clock (pthread_getcpuclockid). Target: ~0. For comparison the same while the
   board reports a heart rate every second, as the firmware does.

The emulator runs in the same process, so the numbers include its share of the GIL; a real
board adds the USB (about 1 ms) or, on the TX/RX pins at 9600 baud, about 10 ms on the wire.

    /tmp/venv/bin/python bench/bench_serial.py            # prints the results
    /tmp/venv/bin/python bench/bench_serial.py --write    # also writes bench/results_serial.md
"""
import argparse
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from camera_server.board.emulator import BoardEmulator  # noqa: E402
from camera_server.board import trinket  # noqa: E402

log = logging.getLogger("bench_serial")
COLORS = ("FF0000", "00FF00", "0000FF", "FFFFFF", "102030", "0A0B0C0D")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(name, latencies_s):
    ms = [value * 1000 for value in latencies_s]
    return (f"{name}: n={len(ms)} median {statistics.median(ms):.3f} ms, "
            f"p95 {percentile(ms, 0.95):.3f} ms, max {max(ms):.3f} ms")


def measure_direct(led, board, count):
    latencies = []
    for index in range(count):
        lines = board.state.lines
        started = time.perf_counter()
        led.set_color(COLORS[index % len(COLORS)])
        if not board.wait_for_lines(lines + 1, 2.0):
            raise RuntimeError("the board did not get the colour")
        latencies.append(board.state.received_at - started)
    return latencies


def measure_http(led, board, count):
    from flask import Flask
    from camera_server.web import auth  # noqa: F401  (create_light_blueprint needs it)
    from camera_server.web.light_routes import create_light_blueprint
    app = Flask(__name__)
    app.config.update(CONTROL_TOKEN="bench", USERKEY="")
    app.register_blueprint(create_light_blueprint(lambda: led))
    client = app.test_client()
    latencies = []
    for index in range(count):
        lines = board.state.lines
        started = time.perf_counter()
        response = client.post("/set_color", data={"color": COLORS[index % len(COLORS)]},
                               headers={"X-Control-Token": "bench"})
        if response.status_code != 200 or not board.wait_for_lines(lines + 1, 2.0):
            raise RuntimeError(f"POST /set_color failed: {response.status_code} {response.data!r}")
        latencies.append(board.state.received_at - started)
    return latencies


def thread_cpu_seconds(thread):
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def measure_quiet_cpu(led, seconds):
    """CPU seconds of the Led's reader, writer and supervisor threads over `seconds` of wall time."""
    threads = {"reader": led._link.reader, "writer": led._writer, "supervisor": led._supervisor}
    before = {name: thread_cpu_seconds(thread) for name, thread in threads.items()}
    process_before = time.process_time()
    threading.Event().wait(seconds)
    used = {name: thread_cpu_seconds(thread) - before[name] for name, thread in threads.items()}
    used["whole process"] = time.process_time() - process_before
    return used


def cpu_lines(title, used, seconds):
    return [f"{title} ({seconds:.0f} s):"] + [
        f"  {name}: {value * 1000:.3f} ms CPU ({100 * value / seconds:.4f} % of a core)"
        for name, value in used.items()]


def run(count, quiet_seconds):
    out = [f"python {platform.python_version()}, {platform.machine()}, pyserial on a pty"]
    with tempfile.TemporaryDirectory() as by_id:
        board = BoardEmulator(heart_rate=None).start()
        led = trinket.Led(board.port, by_id_dir=by_id).start()
        try:
            led.power_led(True)
            measure_direct(led, board, 20)  # warm up
            out.append(summary("Led.set_color -> board parsed the line", measure_direct(led, board, count)))
            out.append(summary("POST /set_color (test client) -> board", measure_http(led, board, count)))
            out += cpu_lines("quiet line, Led threads", measure_quiet_cpu(led, quiet_seconds), quiet_seconds)
        finally:
            led.stop()
            board.stop()
        board = BoardEmulator(heart_rate=72, report_interval=1.0).start()
        led = trinket.Led(board.port, by_id_dir=by_id).start()
        try:
            out += cpu_lines("heart rate once a second, Led threads",
                             measure_quiet_cpu(led, quiet_seconds), quiet_seconds)
        finally:
            led.stop()
            board.stop()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="colour changes per latency run")
    parser.add_argument("--quiet-seconds", type=float, default=5.0)
    parser.add_argument("--write", action="store_true", help="also write bench/results_serial.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    lines = run(args.count, args.quiet_seconds)
    print("\n".join(lines))
    if args.write:
        body = "# bench/bench_serial.py\n\n```\n" + "\n".join(lines) + "\n```\n"
        (ROOT / "bench" / "results_serial.md").write_text(body)


if __name__ == "__main__":
    main()
