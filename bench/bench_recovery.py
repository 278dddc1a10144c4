#!/usr/bin/env python3
"""Benchmark how soon a camera that comes back streams again, after an outage.

A source that delivers 30 fps is made to fail (read and open raise, as an unplugged camera or a
stream that drops) for ``--outage`` seconds, while a viewer reads the camera's frames. The recovery
time is from the moment the source answers again to the first live frame the viewer gets; it
depends on where the outage ends between two attempts to reopen, so the trials end it at evenly
spread points of the longest wait. Goal: under 2 s. This is the real Camera worker and FrameHub; a
real device adds its own open time (a USB camera about 0.1-0.5 s, an RTSP stream up to a few seconds).

    .venv/bin/python bench/bench_recovery.py                    # 4 trials of a 10 s outage, about a minute
    .venv/bin/python bench/bench_recovery.py --backoff 0.5,8    # the old backoff, for comparison
    .venv/bin/python bench/bench_recovery.py --write            # also writes bench/results_recovery.md
"""
import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from camera_server.capture import camera as camera_base  # noqa: E402
from camera_server.capture.camera import Camera, CameraError, Source  # noqa: E402
from code_version import code_version  # noqa: E402


class FlakySource(Source):
    """30 small frames a second, except while ``down_until`` (time.monotonic) lies in the future."""

    name = "flaky"

    def __init__(self, fps=30.0):
        self.frame_interval = 1.0 / fps
        self.down_until = 0.0
        self.image = np.full((240, 320, 3), 128, np.uint8)

    def _answer(self):
        if time.monotonic() < self.down_until:
            raise CameraError("unplugged (benchmark outage)")

    def open(self):
        self._answer()

    def read(self):
        self._answer()
        return self.image


class Viewer(threading.Thread):
    """Reads every frame; notes when the first live one after ``since`` arrived."""

    def __init__(self, camera):
        super().__init__(daemon=True)
        self.camera = camera
        self.since = None
        self.first_live_after = None
        self.got_live = threading.Event()
        self.stop = threading.Event()

    def run(self):
        for frame in self.camera.frames(timeout=0.5, until=self.stop):
            now = time.monotonic()
            if frame.live and self.since is not None and now >= self.since and self.first_live_after is None:
                self.first_live_after = now
                self.got_live.set()


def recovery_after(camera, source, viewer, outage_s):
    """One outage of ``outage_s``: the seconds from the source's return to the viewer's first live frame."""
    viewer.first_live_after = None
    viewer.got_live.clear()
    source.down_until = viewer.since = time.monotonic() + outage_s
    if not viewer.got_live.wait(outage_s + 30):
        raise RuntimeError("the camera did not come back within 30 s")
    return viewer.first_live_after - source.down_until


def run(outage_s, trials):
    source = FlakySource()
    camera = Camera(source, kind="bench", width=320, height=240, idle_timeout=5)
    viewer = Viewer(camera)
    viewer.start()
    try:
        time.sleep(1.0)                                   # streaming before the first outage
        results = []
        for trial in range(trials):
            # End the outage at evenly spread points of the longest wait between attempts.
            length = outage_s + camera_base.BACKOFF_MAX * trial / trials
            recovery = recovery_after(camera, source, viewer, length)
            results.append((length, recovery))
            print(f"outage {length:6.2f} s: streaming again {recovery:.3f} s after the source came back",
                  flush=True)
            time.sleep(1.0)
        return results, camera.outages
    finally:
        viewer.stop.set()
        camera.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the source is away (default 10)")
    parser.add_argument("--trials", type=int, default=4, help="outages, each ending at another point (default 4)")
    parser.add_argument("--backoff", default=None, help="FIRST,MAX seconds instead of the camera worker's")
    parser.add_argument("--write", action="store_true", help="also write bench/results_recovery.md")
    args = parser.parse_args()
    if args.backoff:
        camera_base.BACKOFF_FIRST, camera_base.BACKOFF_MAX = (float(part) for part in args.backoff.split(","))
    backoff = f"{camera_base.BACKOFF_FIRST:g} s doubling to {camera_base.BACKOFF_MAX:g} s"
    print(f"reopen backoff {backoff}; {args.trials} outages of {args.outage:g} s or a little longer")
    results, outages = run(args.outage, args.trials)
    recoveries = [recovery for _, recovery in results]
    verdict = "within" if max(recoveries) < 2.0 else "NOT within"
    summary = (f"recovery after a {args.outage:g} s outage: median {statistics.median(recoveries):.2f} s, "
               f"max {max(recoveries):.2f} s ({verdict} the 2 s goal); {outages} outages counted")
    print(summary)
    if args.write:
        lines = ["# Recovery after an outage (bench/bench_recovery.py)", "",
                 f"{code_version()}; backoff {backoff}", "", "| outage s | streaming again after s |",
                 "|---:|---:|"]
        lines += [f"| {length:.2f} | {recovery:.3f} |" for length, recovery in results]
        lines += ["", summary, ""]
        (ROOT / "bench" / "results_recovery.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
