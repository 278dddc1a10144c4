#!/usr/bin/env python3
"""Benchmark recording: CPU per frame of the H.264 writer and memory over a long recording.

Records the demo camera (camera_demo.DemoSource, 640x480 at 30 fps, through camera_base.Camera)
with recorder.Recorder into a temporary folder, in this process. It reports, after the first
checkpoint (1 min, or half the run if shorter) and at the end:
- frames written and dropped (a full queue drops frames: the writer did not keep up);
- CPU ms per written frame of the writer thread alone (thread CPU time, psutil) and of every thread
  the recording started (writer, feeder and any encoder threads), whole run and between checkpoints;
  targets: <= 5 ms per frame;
- the process RSS before recording, at each checkpoint and its peak (sampled every 5 s); target: the
  end within 20 MB of the first checkpoint;
- the file: stop() time (the remux into a regular MP4), size, bit rate, duration, frames read back.
The camera thread's CPU per frame (capture, processing, JPEG) is shown for context; it is not part
of the recording's cost.

    /tmp/venv/bin/python bench/bench_record.py                # 10 min, writes bench/results_record.md
    /tmp/venv/bin/python bench/bench_record.py --minutes 3
    /tmp/venv/bin/python bench/bench_record.py --quick        # 20 s, prints only
"""
import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from camera_server.capture.camera import Camera  # noqa: E402
from camera_server.capture.demo import DemoSource  # noqa: E402
from camera_server.media.recorder import Recorder  # noqa: E402
from camera_server.media.video_file import EncoderQuality, encoder_options, probe  # noqa: E402
from code_version import code_version  # noqa: E402

ME = psutil.Process()
MB = 1024 * 1024
SAMPLE_INTERVAL = 5.0
CPU_TARGET_MS, RSS_TARGET_MB = 5.0, 20.0


def thread_cpu():
    """CPU seconds (user + system) of each thread of this process, by native thread id."""
    return {thread.id: thread.user_time + thread.system_time for thread in ME.threads()}


def native_id(name):
    return next(thread.native_id for thread in threading.enumerate() if thread.name == name)


class Checkpoint:
    def __init__(self, label, elapsed, status, cpu, writer_id, camera_id, baseline):
        self.label, self.elapsed = label, elapsed
        self.frames, self.dropped = status["frames"], status["dropped"]
        self.rss = ME.memory_info().rss / MB
        self.writer = cpu.get(writer_id, 0.0)
        self.recording = sum(seconds for tid, seconds in cpu.items() if tid not in baseline)
        self.camera = cpu.get(camera_id, 0.0)
        self.camera_frames = None


def per_frame(seconds, frames):
    return seconds * 1000 / frames if frames else float("nan")


def record(args, media_dir):
    camera = Camera(DemoSource(640, 480, 30), kind="demo", width=640, height=480)
    with camera.consumer():
        camera.current_frame()
        time.sleep(3)                                   # warm up; the camera thread exists now
        camera_id = native_id("camera-demo")
        baseline = set(thread_cpu())
        recorder = Recorder(camera, media_dir)
        rss_before = ME.memory_info().rss / MB
        seq_start = camera.hub.latest.seq
        camera_cpu_start = thread_cpu()[camera_id]
        recorder.start("bench.mp4")
        began = time.monotonic()
        writer_id = native_id("recorder-writer")
        total = args.minutes * 60
        checkpoints_at = [min(60.0, total / 2), total]
        checkpoints, rss_peak, machine_cpu = [], rss_before, []
        psutil.cpu_percent()
        for at in checkpoints_at:
            while (remaining := began + at - time.monotonic()) > 0:
                time.sleep(min(SAMPLE_INTERVAL, remaining))
                rss_peak = max(rss_peak, ME.memory_info().rss / MB)
                machine_cpu.append(psutil.cpu_percent())
            point = Checkpoint(f"{at / 60:.1f} min" if at >= 60 else f"{at:.0f} s", time.monotonic() - began,
                               recorder.status(), thread_cpu(), writer_id, camera_id, baseline)
            point.camera -= camera_cpu_start
            point.camera_frames = camera.hub.latest.seq - seq_start
            checkpoints.append(point)
            print(f"# {point.label}: {point.frames} frames, {point.dropped} dropped, RSS {point.rss:.1f} MB, "
                  f"writer {per_frame(point.writer, point.frames):.2f} ms/frame", file=sys.stderr, flush=True)
        stop_began = time.monotonic()
        result = recorder.stop()
        stop_seconds = time.monotonic() - stop_began
    camera.stop()
    frames_in_file, duration_in_file = probe(media_dir / result["file"])
    return dict(checkpoints=checkpoints, result=result, stop_seconds=stop_seconds, rss_before=rss_before,
                rss_peak=rss_peak, frames_in_file=frames_in_file, duration_in_file=duration_in_file,
                machine_cpu=sum(machine_cpu) / len(machine_cpu) if machine_cpu else float("nan"))


def report(args, command, started, measured_code, run):
    first, last = run["checkpoints"]
    result = run["result"]
    window_frames = last.frames - first.frames
    writer_window = per_frame(last.writer - first.writer, window_frames)
    recording_window = per_frame(last.recording - first.recording, window_frames)
    rss_growth = last.rss - first.rss
    writer_run, recording_run = per_frame(last.writer, last.frames), per_frame(last.recording, last.frames)
    libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
    kbits = result["size"] * 8 / max(result["duration"], 0.001) / 1000
    lines = [
        "# Recording benchmark",
        "",
        f"Command: `{command}`  ",
        f"Run: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}, {args.minutes * 60:.0f} s of "
        f"recording; {measured_code}; {platform.machine()}, {psutil.cpu_count()} CPUs ({cpu_model()}); "
        f"PyAV {av.__version__}, libavcodec {libavcodec}; demo camera 640x480 @ 30 fps; "
        f"encoder {result['encoder']} {encoder_options(result['encoder'], EncoderQuality())}.  ",
        "CPU is thread CPU time (user + system) per written frame. \"Recording\" is every thread the "
        "recording started (writer, feeder, encoder threads); the camera thread (capture, processing, "
        "JPEG for the viewers) is context, not part of the recording's cost. The machine is shared: "
        f"its average CPU use during the run was {run['machine_cpu']:.0f} % (of all cores).",
        "",
        "| at | frames written | dropped | writer CPU ms/frame | recording CPU ms/frame "
        "| camera thread CPU ms/frame | RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| before start | | | | | | {run['rss_before']:.1f} |",
    ]
    for point in (first, last):
        lines.append(f"| {point.label} | {point.frames} | {point.dropped} "
                     f"| {per_frame(point.writer, point.frames):.2f} | {per_frame(point.recording, point.frames):.2f} "
                     f"| {per_frame(point.camera, point.camera_frames):.2f} | {point.rss:.1f} |")
    lines += [
        f"| {first.label} to {last.label} | {window_frames} | {last.dropped - first.dropped} "
        f"| {writer_window:.2f} | {recording_window:.2f} | | {rss_growth:+.1f} |",
        "",
        f"- CPU per frame: writer {writer_run:.2f} ms over the run ({writer_window:.2f} ms after {first.label}); "
        f"all recording threads {recording_run:.2f} ms "
        f"(target <= {CPU_TARGET_MS:g} ms: {'met' if recording_run <= CPU_TARGET_MS else 'MISSED'}).",
        f"- RSS: {run['rss_before']:.1f} MB before, {first.rss:.1f} MB at {first.label}, "
        f"{last.rss:.1f} MB at {last.label} ({rss_growth:+.1f} MB; target within {RSS_TARGET_MB:g} MB: "
        f"{'met' if abs(rss_growth) <= RSS_TARGET_MB else 'MISSED'}); peak {run['rss_peak']:.1f} MB.",
        f"- Frames: {last.frames} written, {last.dropped} dropped, {last.camera_frames} published by the camera "
        f"during the recording ({last.camera_frames / last.elapsed:.2f} fps; the recording also takes the "
        "frame that was newest when it started).",
        f"- stop(): {run['stop_seconds']:.2f} s (finish the encoder, remux into a regular MP4 with the index "
        f"in front, read it back); file {result['size'] / MB:.1f} MB, {kbits:.0f} kbit/s, "
        f"duration {result['duration']:.2f} s ({last.elapsed:.2f} s of recording), "
        f"{run['frames_in_file']} frames read back, {'fragmented' if result['fragmented'] else 'regular MP4'}, "
        f"reason {result['reason']}.",
        "- The demo pattern is easy to compress; a real camera's picture gives larger files.",
    ]
    return "\n".join(lines) + "\n"


def cpu_model():
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        fields = {key.strip().lower(): value.strip() for key, value in fields.items()}
        return fields.get("model name") or fields.get("model") or "?"
    except OSError:
        pass
    return platform.processor() or "?"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the recording (default 10)")
    parser.add_argument("--quick", action="store_true", help="a 20 s recording, nothing written")
    parser.add_argument("--output", default=None,
                        help="markdown file (default: bench/results_record.md, none with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 20 / 60
    elif args.output is None:
        args.output = str(BENCH_DIR / "results_record.md")
    return args


def main(argv=None):
    args = parse_args(argv)
    command = " ".join([sys.executable, os.path.relpath(__file__, REPO)]
                       + (argv if argv is not None else sys.argv[1:]))
    started, measured_code = time.time(), code_version()
    with tempfile.TemporaryDirectory(prefix="bench_record-") as media_dir:
        run = record(args, Path(media_dir))
    text = report(args, command, started, measured_code, run)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
        print(f"# written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
