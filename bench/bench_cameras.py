#!/usr/bin/env python3
"""Benchmark many cameras on the real server (gunicorn, gevent worker), started as bench_stream.py
starts it, with [camera NAME] sections of demo cameras at 640x480, 30 fps.

(a) idle: 8 cameras, nobody watching: the server's CPU over --duration seconds, and how many cameras
    are open (state other than stopped, or any consumer, in /status).
(b) streams: 4 cameras x --viewers MJPEG viewers each (/cam/<name>/video_feed; the viewers of
    bench_stream.py, in 2 client processes): the fps each viewer got (min and median per camera), the
    server's CPU.
(c) grid: 8 cameras, one client polling /cam/<name>/latest.jpg as the grid page does (one request in
    flight per camera, at most every 250 ms): stills a second and the server's CPU; beside it the same
    8 cameras with one MJPEG viewer each, what the cameras' own frames cost.

CPU % is of one core (the machine has 2). The first second of each measurement is not counted.

    .venv/bin/python bench/bench_cameras.py                 # about 80 s
    .venv/bin/python bench/bench_cameras.py --parts grid    # one part
"""
import argparse
import asyncio
import http.client
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench_stream import GUNICORN, REPO, Server, Viewer, cpu_delta, cpu_snapshot, free_port, get_status, split
from code_version import code_version

USERKEY = "bench"
STILL_INTERVAL = 0.25           # static/cameras.js: STILL_INTERVAL_MS
WARMUP = 1.0


def start_server(folder, label, cameras):
    """The real server with ``cameras`` demo cameras (cam0, cam1...) at 640x480, 30 fps."""
    port = free_port()
    config = folder / f"config-{label}.txt"
    config.write_text(
        f"[SETTINGS]\nhost = 127.0.0.1\nmedia_dir = {folder / 'media'}\nlog_file = {folder / f'flask-{label}.log'}\n"
        f"[KEYS]\nuserkey = {USERKEY}\n"
        + "".join(f"[camera cam{index}]\ncamera = demo\nwidth = 640\nheight = 480\nfps = 30\n" for index in range(cameras)))
    env = dict(os.environ, CONFIG_FILE=str(config), PORT=str(port), WORKER_CLASS="gevent", PYTHONUNBUFFERED="1")
    server = Server(label, [GUNICORN, "-c", "gunicorn.conf.py", "--no-control-socket", "app:main_app()"], env,
                    str(REPO), port, str(folder / f"server-{label}.log"))
    server.start()
    return server


def server_cpu(server, seconds):
    """The server's CPU (% of one core) over ``seconds``; the machine's busy % (all processes, of one
    core) is printed with it, as the machine may be shared."""
    psutil.cpu_percent()
    before, started = server.cpu_snapshot(), time.monotonic()
    time.sleep(seconds)
    cpu = 100 * cpu_delta(before, server.cpu_snapshot()) / (time.monotonic() - started)
    print(f"    (the whole machine meanwhile: {psutil.cpu_percent() * psutil.cpu_count():.0f} % of a core)", flush=True)
    return cpu


def open_cameras(port):
    cameras = get_status(port)["cameras"]
    return sum(1 for unit in cameras.values() if unit["camera"]["state"] != "stopped" or unit["camera"]["consumers"])


# -- (a) nobody watching -------------------------------------------------------------------------
def idle(folder, args):
    server = start_server(folder, "idle", 8)
    try:
        time.sleep(2)           # start-up done
        cpu = server_cpu(server, args.duration)
        states = sorted({unit["camera"]["state"] for unit in get_status(server.port)["cameras"].values()})
        print(f"(a) 8 cameras, nobody watching, {args.duration:.0f} s: server CPU {cpu:.2f} % of a core; "
              f"open cameras {open_cameras(server.port)} of 8 (states: {', '.join(states)})", flush=True)
    finally:
        server.stop()


# -- (b) 4 cameras x N viewers -------------------------------------------------------------------
async def _watch(port, paths, start_at, window_start, window_end):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    viewers = [(path, Viewer(window_start, window_end)) for path in paths]

    async def connect(path, viewer):
        try:
            transport, _ = await loop.create_connection(lambda: viewer, "127.0.0.1", port)
            transport.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        except OSError as error:
            viewer.error = f"connect: {error!r}"

    await asyncio.gather(*(connect(path, viewer) for path, viewer in viewers))
    await asyncio.sleep(max(0.0, window_end - time.time()))
    for _, viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.abort()
    return [(path, viewer.summary()) for path, viewer in viewers]


def _client(pipe, port, paths, start_at, window_start, window_end):
    try:
        pipe.send(asyncio.run(_watch(port, paths, start_at, window_start, window_end)))
    except BaseException as error:      # the parent must not wait for nothing
        pipe.send(repr(error))
    pipe.close()


def streams(folder, args):
    server = start_server(folder, "streams", 4)
    context = multiprocessing.get_context("fork")
    try:
        paths = [f"/cam/cam{index}/video_feed" for index in range(4) for _ in range(args.viewers)]
        start_at = time.time() + 0.5
        window_start, window_end = start_at + WARMUP, start_at + args.duration
        clients, offset = [], 0
        for share in split(len(paths), 2):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_client, daemon=True, args=(
                sender, server.port, paths[offset:offset + share], start_at, window_start, window_end))
            process.start()
            sender.close()
            clients.append((process, receiver))
            offset += share
        time.sleep(max(0.0, window_start - time.time()))
        client_processes = [psutil.Process(process.pid) for process, _ in clients]
        clients_before, measured_from = cpu_snapshot(client_processes), time.monotonic()
        cpu = server_cpu(server, window_end - window_start - 0.5)
        client_cpu = 100 * cpu_delta(clients_before, cpu_snapshot(client_processes)) / (time.monotonic() - measured_from)
        made = {name: unit["camera"]["fps"] for name, unit in get_status(server.port)["cameras"].items()}
        results = []
        for process, receiver in clients:
            answer = receiver.recv()
            if isinstance(answer, str):
                raise RuntimeError(f"a client failed: {answer}")
            results.extend(answer)
            process.join(5)
        seconds = window_end - window_start
        print(f"(b) 4 cameras x {args.viewers} viewers ({len(paths)} streams), {seconds:.0f} s: server CPU {cpu:.1f} % "
              f"of a core (the viewers' processes: {client_cpu:.0f} %)", flush=True)
        for index in range(4):
            got = [summary for path, summary in results if path == f"/cam/cam{index}/video_feed"]
            fps = [summary["frames"] / seconds for summary in got]
            print(f"    cam{index} (made {made[f'cam{index}']:.1f} fps): fps per viewer min {min(fps):.1f}, "
                  f"median {statistics.median(fps):.1f}; "
                  f"corrupt parts {sum(summary['corrupt'] for summary in got)}, "
                  f"errors {sum(1 for summary in got if summary['error'])}", flush=True)
    finally:
        server.stop()


# -- (c) the grid ----------------------------------------------------------------------------------
def _poll_stills(port, camera, stop, counts):
    """What one grid tile does: latest.jpg, then the next no sooner than STILL_INTERVAL after the last began."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        began = time.monotonic()
        try:
            connection.request("GET", f"/cam/{camera}/latest.jpg")
            response = connection.getresponse()
            body = response.read()
            if response.status == 200 and body[:2] == b"\xff\xd8":
                counts.append((time.monotonic(), camera))
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stop.wait(max(0.0, STILL_INTERVAL - (time.monotonic() - began)))
    connection.close()


def grid(folder, args):
    server = start_server(folder, "grid", 8)
    try:
        stop, counts = threading.Event(), []
        pollers = [threading.Thread(target=_poll_stills, args=(server.port, f"cam{index}", stop, counts), daemon=True)
                   for index in range(8)]
        for poller in pollers:
            poller.start()
        time.sleep(WARMUP + 1)                 # the cameras open
        began = time.monotonic()
        cpu = server_cpu(server, args.duration)
        stills = sum(1 for moment, _ in counts if began <= moment <= began + args.duration)
        stop.set()
        for poller in pollers:
            poller.join(5)
        print(f"(c) grid of 8 cameras, one client at the page's rate, {args.duration:.0f} s: server CPU {cpu:.1f} % "
              f"of a core; {stills / args.duration:.1f} stills a second ({stills / args.duration / 8:.2f} per camera)",
              flush=True)
        time.sleep(4)                          # the cameras close (idle_timeout)
        streams_stop = threading.Event()
        threads = [threading.Thread(target=_one_stream, args=(server.port, f"/cam/cam{index}/video_feed", streams_stop),
                                    daemon=True) for index in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(WARMUP + 1)
        reference = server_cpu(server, args.duration)
        streams_stop.set()
        for thread in threads:
            thread.join(5)
        print(f"    beside it, the same 8 cameras with one MJPEG viewer each: server CPU {reference:.1f} % of a core",
              flush=True)
    finally:
        server.stop()


def _one_stream(port, path, stop):
    """Read an MJPEG stream until ``stop``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    while not stop.is_set() and response.read1(65536):
        pass
    connection.close()


PARTS = {"idle": idle, "streams": streams, "grid": grid}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="idle,streams,grid", help="which parts: idle, streams, grid")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per part")
    parser.add_argument("--viewers", type=int, default=50, help="viewers per camera in the streams part")
    args = parser.parse_args()
    print(f"bench_cameras: {code_version()}; {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-cameras-") as folder:
        for part in args.parts.split(","):
            PARTS[part.strip()](Path(folder), args)


if __name__ == "__main__":
    main()
