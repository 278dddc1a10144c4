#!/usr/bin/env python3
"""Benchmark how old the picture of a viewer slower than the camera gets.

The real server (gunicorn, gevent worker) streams the demo camera at 640x480, 30 fps (about 0.5 MB/s);
one viewer reads it through a small receive buffer at ``--rate`` bytes a second, a phone on a weak
link. The server sends each frame the viewer can take and skips the others, so the age of what the
viewer sees (receive time minus X-Timestamp) should stay a few frames, however long it watches;
before the viewer's send buffer was kept small, the kernel's grew to megabytes and the age grew
with it (14 s after 15 s, measured while probing).

    .venv/bin/python bench/bench_slow_viewer.py            # 20 s, prints the ages
    .venv/bin/python bench/bench_slow_viewer.py --write    # also writes bench/results_slow_viewer.md
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from code_version import code_version  # noqa: E402


def start_server(folder, port):
    config = Path(folder) / "config.txt"
    config.write_text(f"[SETTINGS]\ncamera = demo\nport = {port}\nmedia_dir = {folder}/media\n"
                      f"log_file = {folder}/flask.log\n")
    environment = dict(os.environ, CONFIG_FILE=str(config))
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:main_app()"],
                               cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def watch_slowly(port, seconds, rate):
    """Read the stream at ``rate`` bytes/s; answers [(seconds since the start, age of the frame in s)]."""
    viewer = socket.socket()
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    viewer.connect(("127.0.0.1", port))
    viewer.sendall(b"GET /video_feed HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    chunk, pause = 1024, 1024 / rate
    data, ages, started = b"", [], time.monotonic()
    while time.monotonic() - started < seconds:
        data += viewer.recv(chunk)
        while (found := data.find(b"X-Timestamp: ")) >= 0 and data.find(b"\r\n", found) >= 0:
            end = data.find(b"\r\n", found)
            ages.append((time.monotonic() - started, time.time() - float(data[found + 13:end])))
            data = data[end:]
        time.sleep(pause)
    viewer.close()
    return ages


def summary(ages, after):
    late = [age for at, age in ages if at >= after]
    return {"frames seen": len(ages), "median age s": round(statistics.median(late), 2),
            "max age s": round(max(late), 2), "age at the end s": round(late[-1], 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100_000, help="bytes a second the viewer reads")
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = start_server(folder, port)
        try:
            ages = watch_slowly(port, options.seconds, options.rate)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        finally:
            server.terminate()
            server.wait(30)
    dropped = next(line.split()[-1] for line in metrics.splitlines()
                   if line.startswith("camera_stream_frames_dropped_total"))
    result = summary(ages, after=options.seconds / 2)
    lines = [f"# A slow viewer: {options.rate / 1000:.0f} kB/s against a 30 fps demo stream, {options.seconds:g} s",
             "", f"Command: `{' '.join(sys.argv)}`  ", f"Run: {time.strftime('%Y-%m-%d %H:%M:%S')}; {code_version()}",
             "", "Ages over the second half of the run (receive time minus X-Timestamp):", ""]
    lines += [f"- {name}: {value}" for name, value in result.items()]
    lines.append(f"- frames skipped for this viewer (camera_stream_frames_dropped_total): {dropped}")
    print("\n".join(lines))
    if options.write:
        (ROOT / "bench" / "results_slow_viewer.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
