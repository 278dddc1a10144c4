#!/usr/bin/env python3
"""Benchmark the scene-watch algorithms on a synthetic 640x480 scene (tests/scenes.py).

1. Per frame, as the camera thread would pay it: SceneMonitor.compare (target <= 3 ms) and
   MotionDetector.process (target <= 3 ms), colour and gray, over a few hundred frames of a person
   walking through a textured room at 30 fps; median and p95. The seed's numpy float64 MSE is
   timed too, for comparison.
2. Object detectors, cost per run on one 640x480 frame: hog and haar when this OpenCV has them
   (OpenCV 5 moved them to opencv-contrib), and dnn with two synthetic ONNX models (no download
   here): a tiny one that shows the fixed cost of blobFromImage + forward + decoding, and a stack
   of stride-2 convolutions whose multiply-accumulates are printed, to scale from.

    /tmp/venv/bin/python bench/bench_detect.py            # prints the results
    /tmp/venv/bin/python bench/bench_detect.py --write    # also writes bench/results_detect.md
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import scenes  # noqa: E402
from camera_server.watch.detection import DetectorError, create_detector  # noqa: E402
from camera_server.watch.monitor import SceneMonitor  # noqa: E402
from camera_server.watch.motion import MotionDetector, rectangle  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 480, 30.0
NOTES = """
Per frame: the time of one call on the camera thread, the frame's making not counted. The targets
are 3 ms each for SceneMonitor.compare and MotionDetector.process. MotionDetector works on a copy
shrunk by a whole factor (480 -> 96 rows): OpenCV's INTER_AREA is about five times faster for whole
factors than for 480 -> 100. Exposure compensation (the median brightness ratio) costs about
0.2 ms and keeps slow light changes from looking like motion.

Object detectors: hog and haar need an OpenCV that has HOGDescriptor and CascadeClassifier: 4.x,
which requirements.txt keeps (OpenCV 5 moved both to opencv-contrib). The dnn models are
synthetic (written by tests/scenes.py, random weights): "tiny" shows the fixed cost around the
network, the conv stacks what plain 3x3 convolutions of that many multiply-adds cost here. A real
SSD MobileNet v1 at 300x300 (seed 002) has about 1.2 G multiply-adds, mostly depthwise layers; it
could not be measured (no downloads here). Run this script on the Pi for its numbers.
"""


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(name, seconds, target_ms=None):
    ms = [value * 1000 for value in seconds]
    line = (f"{name:<56} n={len(ms):<4} median {statistics.median(ms):7.3f} ms   "
            f"p95 {percentile(ms, 0.95):7.3f} ms")
    if target_ms is not None:
        line += "   ok" if percentile(ms, 0.95) <= target_ms else f"   OVER the {target_ms} ms target"
    return line


def scene_frames(seconds):
    scene = scenes.ObjectEntering(width=WIDTH, height=HEIGHT, fps=FPS, seconds=seconds,
                                  enter_at=1.0, leave_at=max(2.0, seconds - 1.0))
    return scene.frames()


def time_per_frame(step, frames, gray=False):
    """Seconds per call of step(image, timestamp) over the frames (their making is not timed)."""
    timings = []
    for timestamp, image in frames:
        if gray:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        started = time.perf_counter()
        step(image, timestamp)
        timings.append(time.perf_counter() - started)
    return timings


def seed_mse(baseline, image):
    """The seed's formula, made correct (float64), for comparison."""
    return float(np.mean((baseline.astype(np.float64) - image.astype(np.float64)) ** 2))


def per_frame_results(seconds):
    lines = []
    for gray in (False, True):
        colour = "gray" if gray else "colour"
        first = next(iter(scene_frames(0.1)))[1]
        baseline = cv2.cvtColor(first, cv2.COLOR_BGR2GRAY) if gray else first
        monitor = SceneMonitor()
        monitor.set_baseline(baseline)
        lines.append(summary(f"SceneMonitor.compare, {colour}",
                             time_per_frame(lambda image, _: monitor.compare(image), scene_frames(seconds), gray), 3))
        lines.append(summary(f"  (seed's numpy float64 MSE, {colour})",
                             time_per_frame(lambda image, _: seed_mse(baseline, image), scene_frames(seconds / 3), gray)))
        for label, detector in [("", MotionDetector()),
                                (", with a mask", MotionDetector(masks=[rectangle(500, 0, 639, 100)])),
                                (", no exposure compensation", MotionDetector(exposure_compensation=False))]:
            lines.append(summary(f"MotionDetector.process, {colour}{label}",
                                 time_per_frame(detector.process, scene_frames(seconds), gray), 3))
    monitor, detector = SceneMonitor(), MotionDetector()
    monitor.set_baseline(first)

    def both(image, timestamp):
        monitor.check(image, timestamp)
        detector.process(image, timestamp)
    lines.append(summary("compare + motion together, colour", time_per_frame(both, scene_frames(seconds)), 6))
    return lines


def detector_results(runs):
    image = None
    for timestamp, frame in scene_frames(3.0):
        if timestamp >= 1.5:
            image = frame
            break
    lines = []
    for name in ("hog", "haar"):
        try:
            detector = create_detector(name)
        except DetectorError as error:
            lines.append(f"{name:<56} not available: {error}")
            continue
        lines.append(summary(f"{name} detector, one 640x480 frame", time_runs(detector, image, runs)))
    with tempfile.TemporaryDirectory() as folder:
        tiny = scenes.write_onnx(os.path.join(folder, "tiny.onnx"), np.zeros((3, 7)), np.zeros(7), (1, 1, 1, 7))
        detector = create_detector("dnn", model=tiny, input_size=300)
        lines.append(summary("dnn, tiny ONNX (fixed cost: blob, forward, decode)", time_runs(detector, image, runs)))
        for size, channels in [(300, (32, 64, 128, 256, 512, 1024)), (300, (64, 128, 256, 512, 1024, 1024))]:
            path, macs = scenes.write_conv_onnx(os.path.join(folder, "conv.onnx"), size, channels)
            detector = create_detector("dnn", model=path, input_size=size)
            lines.append(summary(f"dnn, conv stack {size}x{size}, {macs / 1e9:.2f} G multiply-adds",
                                 time_runs(detector, image, runs)))
    return lines


def time_runs(detector, image, runs):
    detector.detect(image)                  # the first run allocates; do not count it
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        detector.detect(image)
        timings.append(time.perf_counter() - started)
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="scene length at 30 fps (default 12: 360 frames)")
    parser.add_argument("--runs", type=int, default=20, help="runs per object detector")
    parser.add_argument("--write", action="store_true", help="write bench/results_detect.md")
    args = parser.parse_args()
    header = (f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
              f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), numpy {np.__version__}; "
              f"{WIDTH}x{HEIGHT} frames")
    lines = [header, "", "per frame (camera thread):"] + per_frame_results(args.seconds)
    lines += ["", "object detectors, per run (detection thread):"] + detector_results(args.runs)
    output = "\n".join(lines)
    print(output)
    if args.write:
        (ROOT / "bench" / "results_detect.md").write_text(
            f"# bench/bench_detect.py\n\n```\n{output}\n```\n{NOTES}")


if __name__ == "__main__":
    main()
