#!/usr/bin/env python3
"""MJPEG and WebSocket viewers of one demo camera (640x480, 30 fps) on the real gunicorn gevent server.

For each N (``--viewers``), N MJPEG viewers (bench_stream.py's) and then N WebSocket viewers read for
``--duration`` s (the first ``--warmup`` s not counted), in ``--client-procs`` asyncio processes. Per
run: min and median fps per viewer, the server's CPU (% of one core) and CPU ms per delivered frame,
and the latency from capture (X-Timestamp / the frame header's capture time) to receipt. Last, one
WebSocket viewer that acknowledges each frame and reads 5 a second (``/metrics`` counts what the
server sent it).

    .venv/bin/python bench/bench_websocket.py                       # N = 50, 200, 400
    .venv/bin/python bench/bench_websocket.py --viewers 50 --duration 5
"""
import argparse
import array
import asyncio
import base64
import json
import multiprocessing
import os
import signal
import statistics
import struct
import sys
import tempfile
import time
import urllib.request

import bench_stream
from bench_stream import cpu_delta, cpu_snapshot, make_server

sys.path.insert(0, str(bench_stream.REPO))
from camera_server.stream.websocket import KIND_JPEG, KIND_MP4_INIT, parse_frame_header  # noqa: E402

KEY = base64.b64encode(os.urandom(16))


def _masked_text(text):
    """A client's text frame (clients mask theirs)."""
    payload, mask = text.encode(), os.urandom(4)
    body = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return struct.pack(">BB", 0x81, 0x80 | len(payload)) + mask + body


class SocketViewer(asyncio.Protocol):
    """One WebSocket viewer: the handshake, then whole frames; latency from the header's capture time."""

    def __init__(self, window_start, window_end, ack=False, codec="jpeg"):
        self.window_start, self.window_end, self.ack, self.codec = window_start, window_end, ack, codec
        self.buf = bytearray()
        self.upgraded = False
        self.frames = self.total = self.corrupt = self.bytes = 0
        self.latencies = array.array("d")
        self.error = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + KEY + b"\r\n\r\n")

    def data_received(self, data):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                self.error = bytes(self.buf[:40])
                self.transport.abort()
                return
            del self.buf[:end + 4]
            self.upgraded = True
            self.transport.write(_masked_text(json.dumps({"op": "subscribe", "ack": self.ack, "codec": self.codec})))
        self._parse()

    def _parse(self):
        now = time.time()
        while len(self.buf) >= 2:
            opcode, size, start = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if size == 126:
                if len(self.buf) < 4:
                    return
                size, start = struct.unpack_from(">H", self.buf, 2)[0], 4
            elif size == 127:
                if len(self.buf) < 10:
                    return
                size, start = struct.unpack_from(">Q", self.buf, 2)[0], 10
            if len(self.buf) < start + size:
                return
            payload = bytes(self.buf[start:start + size])
            del self.buf[:start + size]
            if opcode == 0x2:
                self._frame(payload, now)
            elif opcode == 0x9:         # ping: answer with a (masked) pong
                self.transport.write(struct.pack(">BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)

    def _frame(self, payload, now):
        try:
            _, _, captured, start = parse_frame_header(payload)
        except ValueError:
            self.corrupt += 1
            return
        counted = self.window_start <= now <= self.window_end
        if counted:
            self.bytes += len(payload)
        if payload[0] == KIND_MP4_INIT:
            return
        if payload[0] == KIND_JPEG and not (payload[start:start + 2] == b"\xff\xd8" and payload.endswith(b"\xff\xd9")):
            self.corrupt += 1
        self.total += 1
        if counted:
            self.frames += 1
            self.latencies.append(now - captured)

    def connection_lost(self, exc):
        self.error = self.error or ("lost" if time.time() < self.window_end else None)


async def _run(codec, port, count, start_at, window_start, window_end, read_rate=None):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    viewers = [SocketViewer(window_start, window_end, ack=read_rate is not None, codec=codec) for _ in range(count)]
    await asyncio.gather(*(loop.create_connection(lambda viewer=viewer: viewer, "127.0.0.1", port)
                           for viewer in viewers))
    while read_rate and time.time() < window_end:       # acknowledge read_rate frames a second
        await asyncio.sleep(1 / read_rate)
        for viewer in viewers:
            viewer.transport.write(_masked_text(json.dumps({"op": "ack", "camera": "demo"})))
    await asyncio.sleep(max(0.0, window_end - time.time()))
    for viewer in viewers:
        viewer.transport.abort()
    latencies = array.array("d")
    for viewer in viewers:
        latencies.extend(viewer.latencies)
    return {"viewers": [{"frames": v.frames, "bytes": v.bytes, "corrupt": v.corrupt, "error": v.error} for v in viewers],
            "latencies": latencies}


def socket_process(pipe, port, count, start_at, window_start, window_end, read_rate=None, codec="jpeg"):
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    pipe.send(asyncio.run(_run(codec, port, count, start_at, window_start, window_end, read_rate)))
    pipe.close()


def measure(server, kind, count, args, read_rate=None):
    start_at = time.time() + 1.0
    window_start, window_end = start_at + args.warmup, start_at + args.duration
    procs, pipes = [], []
    parts = [count // args.client_procs + (index < count % args.client_procs) for index in range(args.client_procs)]
    for part in filter(None, parts):
        receive, send = multiprocessing.Pipe(duplex=False)
        if kind == "mjpeg":
            target, extra = bench_stream.client_process, (False,)
        else:                           # "websocket" (JPEG frames) or "h264" (over the socket)
            target, extra = socket_process, (read_rate, "h264" if kind == "h264" else "jpeg")
        proc = multiprocessing.Process(target=target, args=(send, server.port, part, start_at, window_start,
                                                            window_end, *extra))
        proc.start()
        procs.append(proc)
        pipes.append(receive)
    time.sleep(max(0.0, window_start - time.time()))
    processes = server.processes()
    before = cpu_snapshot(processes)
    time.sleep(max(0.0, window_end - time.time()))
    cpu = cpu_delta(before, cpu_snapshot(processes))
    results = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join(10)
    viewers = [viewer for result in results for viewer in result["viewers"]]
    latencies = sorted(value for result in results for value in result["latencies"])
    seconds = window_end - window_start
    fps = sorted(viewer["frames"] / seconds for viewer in viewers)
    frames = sum(viewer["frames"] for viewer in viewers)
    return {"kind": kind, "viewers": count, "min_fps": fps[0], "median_fps": statistics.median(fps),
            "cpu_percent": 100 * cpu / seconds, "cpu_ms_per_frame": 1000 * cpu / max(frames, 1),
            "bytes_per_s_per_viewer": sum(viewer.get("bytes", 0) for viewer in viewers) / seconds / len(viewers),
            "latency_median_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
            "latency_p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else None,
            "corrupt": sum(viewer.get("corrupt", 0) for viewer in viewers),
            "errors": sum(1 for viewer in viewers if viewer.get("error"))}


def frames_sent(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("camera_stream_frames_sent_total{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="50,200,400")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = make_server("ours", tmp, worker="gevent")
        server.start()
        try:
            rows = []
            for count in [int(value) for value in args.viewers.split(",")]:
                for kind in ("mjpeg", "websocket"):
                    rows.append(measure(server, kind, count, args))
                    print(json.dumps(rows[-1]), flush=True)
                    time.sleep(1.0)
            before = frames_sent(server.port)
            slow = measure(server, "websocket", 1, argparse.Namespace(**{**vars(args), "client_procs": 1}), read_rate=5)
            sent_per_s = (frames_sent(server.port) - before) / (args.duration + 1.0)
        finally:
            server.stop()
    print("\n| viewers | kind | min fps | median fps | server CPU % | CPU ms per delivered frame | latency median / p95 ms | corrupt | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['viewers']} | {row['kind']} | {row['min_fps']:.1f} | {row['median_fps']:.1f} | "
              f"{row['cpu_percent']:.1f} | {row['cpu_ms_per_frame']:.3f} | "
              f"{row['latency_median_ms']:.1f} / {row['latency_p95_ms']:.1f} | {row['corrupt']} | {row['errors']} |")
    print(f"\nA WebSocket viewer that acknowledges 5 frames a second: received {slow['median_fps']:.1f} fps; "
          f"the server sent {sent_per_s:.1f} frames a second (all its viewers, /metrics).")


if __name__ == "__main__":
    main()
