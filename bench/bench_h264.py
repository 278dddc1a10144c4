#!/usr/bin/env python3
"""Live H.264 against JPEG: bytes per viewer, picture quality, server CPU, latency in chromium.

1. **Bytes and quality**, in this process, on the same frames: ``--seconds`` of the demo camera's
   640x480 pattern at 30 fps ("demo"), and the same with sensor-like noise (sigma 6) on every frame
   ("noisy"), each encoded as the server does: JPEG at quality 80 (the stream's default) and H.264
   through the live encoder (stream/fmp4.py, the default settings: crf 26, at most 1500 kbit/s, a
   keyframe a second). Bytes a second, and PSNR and SSIM of the decoded pictures against the
   camera's own frames.
2. **The server**: the real gunicorn gevent server on the demo camera; for N in ``--viewers``,
   N viewers of MJPEG, of JPEG over the WebSocket and of H.264 over the WebSocket, each for
   ``--duration`` s (viewers in 2 asyncio processes on the same 2 cores): fps, bytes a second per
   viewer, server CPU (encode included), latency from capture to receipt.
3. **Latency in chromium**: the live page with ?view=h264 and with JPEG frames, the latency it
   shows from capture to drawing (median of 20 readings).

    .venv/bin/python bench/bench_h264.py
    .venv/bin/python bench/bench_h264.py --parts quality --seconds 5
"""
import argparse
import json
import math
import statistics
import sys
import tempfile
import time

import av
import cv2
import numpy as np

import bench_stream
import bench_websocket
from bench_stream import make_server

sys.path.insert(0, str(bench_stream.REPO))
from camera_server.capture.camera import encode_jpeg  # noqa: E402
from camera_server.capture.demo import DemoSource  # noqa: E402
from camera_server.media.video_file import EncoderQuality, default_encoders, pick_encoder  # noqa: E402
from camera_server.settings import Settings  # noqa: E402
from camera_server.stream.fmp4 import LiveMp4Writer  # noqa: E402

FPS = 30


def scene_frames(seconds, noise):
    source = DemoSource(640, 480, FPS)
    source.open()
    generator = np.random.default_rng(7)
    for _ in range(int(seconds * FPS)):
        image = source.read()
        if noise:
            image = np.clip(image + generator.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
        yield image


def psnr(reference, picture):
    error = np.mean((reference.astype(np.float64) - picture.astype(np.float64)) ** 2)
    return 99.0 if error == 0 else 10 * math.log10(255 ** 2 / error)


def ssim(reference, picture):
    """SSIM of the luma (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5)."""
    a = cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY).astype(np.float64)
    b = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).astype(np.float64)
    blur = lambda image: cv2.GaussianBlur(image, (11, 11), 1.5)  # noqa: E731
    mean_a, mean_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mean_a ** 2, blur(b * b) - mean_b ** 2
    covariance = blur(a * b) - mean_a * mean_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / ((mean_a ** 2 + mean_b ** 2 + c1) * (var_a + var_b + c2))
    return float(values.mean())


def quality(seconds):
    settings = Settings()
    live_quality = EncoderQuality(crf=settings.record_crf, max_kbps=settings.live_max_kbps)
    encoder = pick_encoder(default_encoders(), 640, 480, live_quality, settings.live_profile)
    rows = []
    for scene, noise in (("demo", 0), ("noisy", 6)):
        frames = list(scene_frames(seconds, noise))
        jpeg_bytes, jpeg_psnr, jpeg_ssim = 0, [], []
        for image in frames:
            jpeg = encode_jpeg(image, settings.jpeg_quality)
            jpeg_bytes += len(jpeg)
            decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            jpeg_psnr.append(psnr(image, decoded))
            jpeg_ssim.append(ssim(image, decoded))
        writer = LiveMp4Writer(encoder, 640, 480, live_quality, settings.live_profile, settings.live_keyframe_s)
        stream = bytearray()
        started = time.process_time()
        for index, image in enumerate(frames):
            for data, _, _ in writer.write(image, index / FPS):
                stream += data
            if writer.init_segment is not None and index == 0:
                stream[:0] = writer.init_segment
        encode_s = time.process_time() - started
        writer.close()
        h264_psnr, h264_ssim = [], []
        with av.open(__import__("io").BytesIO(bytes(stream))) as container:
            for image, frame in zip(frames, container.decode(video=0)):
                decoded = frame.to_ndarray(format="bgr24")
                h264_psnr.append(psnr(image, decoded))
                h264_ssim.append(ssim(image, decoded))
        rows.append({"scene": scene, "frames": len(frames), "encoder": encoder,
                     "jpeg_kbps": jpeg_bytes * 8 / 1000 / seconds, "jpeg_psnr": statistics.mean(jpeg_psnr),
                     "jpeg_ssim": statistics.mean(jpeg_ssim),
                     "h264_kbps": len(stream) * 8 / 1000 / seconds, "h264_psnr": statistics.mean(h264_psnr),
                     "h264_ssim": statistics.mean(h264_ssim), "h264_decoded": len(h264_psnr),
                     "h264_encode_ms_per_frame": 1000 * encode_s / len(frames)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def server_runs(counts, args):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = make_server("ours", tmp, worker="gevent")
        server.start()
        try:
            for count in counts:
                for kind in ("mjpeg", "websocket", "h264"):
                    row = bench_websocket.measure(server, kind, count, args)
                    if kind == "mjpeg":     # its clients count parts, not bytes: a part is the JPEG and ~90 bytes
                        row["bytes_per_s_per_viewer"] = None
                    rows.append(row)
                    print(json.dumps(rows[-1]), flush=True)
                    time.sleep(1.5)         # the H.264 encoder stops after its last viewer
            if "browser" in args.parts:
                rows.append({"kind": "chromium", **browser_latency(server.port)})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            server.stop()
    return rows


def browser_latency(port):
    from playwright.sync_api import sync_playwright
    sys.path.insert(0, str(bench_stream.REPO / "tests"))
    from conftest import CHROMIUM_FLAGS, chromium_path
    latencies = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        for view in ("h264", "socket"):
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/?view={view}")
            page.wait_for_function("!document.getElementById('latency').hidden", timeout=20000)
            page.wait_for_timeout(2000)
            readings = []
            for _ in range(20):
                readings.append(float(page.inner_text("#latency-ms")))
                page.wait_for_timeout(250)
            latencies[f"{view}_latency_median_ms"] = statistics.median(readings)
            latencies[f"{view}_latency_max_ms"] = max(readings)
            page.close()
        browser.close()
    return latencies


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="quality,server,browser")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the quality scenes")
    parser.add_argument("--viewers", default="1,50,200")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args()
    quality_rows = quality(args.seconds) if "quality" in args.parts else []
    server_rows = server_runs([int(value) for value in args.viewers.split(",")], args) \
        if "server" in args.parts or "browser" in args.parts else []
    if quality_rows:
        print("\n| scene | JPEG q80 kbit/s | JPEG PSNR / SSIM | H.264 kbit/s | H.264 PSNR / SSIM | H.264 share of JPEG's bytes |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in quality_rows:
            print(f"| {row['scene']} | {row['jpeg_kbps']:.0f} | {row['jpeg_psnr']:.1f} dB / {row['jpeg_ssim']:.3f} | "
                  f"{row['h264_kbps']:.0f} | {row['h264_psnr']:.1f} dB / {row['h264_ssim']:.3f} | "
                  f"{100 * row['h264_kbps'] / row['jpeg_kbps']:.1f} % |")
    runs = [row for row in server_rows if row["kind"] != "chromium"]
    if runs:
        print("\n| viewers | kind | min fps | median fps | kbit/s per viewer | server CPU % | latency median / p95 ms | errors |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for row in runs:
            rate = "" if row["bytes_per_s_per_viewer"] is None else f"{row['bytes_per_s_per_viewer'] * 8 / 1000:.0f}"
            print(f"| {row['viewers']} | {row['kind']} | {row['min_fps']:.1f} | {row['median_fps']:.1f} | {rate} | "
                  f"{row['cpu_percent']:.1f} | {row['latency_median_ms']:.1f} / {row['latency_p95_ms']:.1f} | "
                  f"{row['errors']} |")
    for row in server_rows:
        if row["kind"] == "chromium":
            print(f"\nchromium, capture to drawing: H.264 median {row['h264_latency_median_ms']:.0f} ms "
                  f"(max {row['h264_latency_max_ms']:.0f}), JPEG frames median {row['socket_latency_median_ms']:.0f} ms "
                  f"(max {row['socket_latency_max_ms']:.0f})")


if __name__ == "__main__":
    main()
