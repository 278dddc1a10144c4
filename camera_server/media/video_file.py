"""MP4 files: the H.264 writer, the encoder choice and settings, reading back, crash repair.

A recording is written as a fragmented MP4 (a fragment per keyframe, a keyframe every second), so a
crash or kill -9 leaves a playable file. A clean stop remuxes it (no re-encode) into a regular MP4
with the index in front; after a crash, ``recover_interrupted`` does the same for what was left.
"""
import contextlib
import dataclasses
import fractions
import logging
import os
import platform
import struct
from pathlib import Path

import av

from camera_server.media.files import create_temporary, lock_for_writing, open_regular_file

log = logging.getLogger(__name__)

ARM_MACHINES = ("aarch64", "arm64", "armv6l", "armv7l")
TIME_BASE = fractions.Fraction(1, 1000)     # pts are capture times in milliseconds
KEYFRAME_INTERVAL_MS = 1000                 # and so a fragment a second: what a kill -9 can lose
NOMINAL_FPS = 30                            # a rate-control hint; the real timing is in the pts
# flush_packets: each finished fragment goes to the file at once, not when a 32 KiB buffer fills.
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
INDEX_IN_FRONT = {"movflags": "+faststart"}


class VideoFileError(RuntimeError):
    """No encoder works, or a rewritten file does not match its source; the message says why."""


@dataclasses.dataclass(frozen=True)
class EncoderQuality:
    """libx264's constant rate factor (lower: better and bigger files) and every encoder's bit rate cap."""
    crf: int = 26
    max_kbps: int = 2000


def encoder_options(name, quality, profile="main"):
    """The codec options of encoder ``name``; the hardware encoder's rate is set by configure_encoder.
    Recordings use the main profile; the live stream may ask for baseline."""
    if name != "libx264":
        return {}
    # zerolatency: no B-frames and no lookahead, so each frame is written as it comes; crf 26 with
    # a 2 Mbit/s cap (the defaults) keeps 640x480 small, also when the scene is busy.
    return {"preset": "veryfast", "tune": "zerolatency", "profile": profile, "crf": str(quality.crf),
            "maxrate": f"{quality.max_kbps}k", "bufsize": f"{2 * quality.max_kbps}k", "threads": "1"}


def default_encoders(machine=None):
    """The Pi's hardware encoder first on ARM, with libx264 as the fallback; libx264 elsewhere."""
    machine = (machine or platform.machine()).lower()
    return ("h264_v4l2m2m", "libx264") if machine in ARM_MACHINES else ("libx264",)


def encoders_for(setting):
    """The encoders to try, in order, for the ``record_encoder`` setting: auto, or one name with
    libx264 as its fallback."""
    if setting == "auto":
        return default_encoders()
    return (setting,) if setting == "libx264" else (setting, "libx264")


class VideoFileWriter:
    """H.264 yuv420p into a fragmented MP4; the size is fixed by the first frame, later ones are scaled."""

    def __init__(self, path, width, height, encoders, quality=EncoderQuality()):
        self.width, self.height = max(width - width % 2, 2), max(height - height % 2, 2)
        self.encoder = pick_encoder(encoders, self.width, self.height, quality)
        self.frames = 0
        self._origin = self._last_pts = self._last_keyframe = None
        self._interval = round(1000 / NOMINAL_FPS)
        self._container = av.open(str(path), "w", format="mp4", options=FRAGMENTED_MP4)
        try:
            self._stream = self._container.add_stream(self.encoder, rate=NOMINAL_FPS,
                                                      options=encoder_options(self.encoder, quality))
            configure_encoder(self._stream.codec_context, self.encoder, self.width, self.height, quality)
            self._stream.time_base = TIME_BASE
            self._sync_descriptor = os.open(path, os.O_RDONLY)
        except Exception:
            self._container.close()
            raise

    def write(self, image, captured):
        """Encode one picture; ``captured`` is its capture time in seconds on a monotonic clock."""
        frame = av.VideoFrame.from_ndarray(image, format="gray" if image.ndim == 2 else "bgr24")
        frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        if self._origin is None:
            self._origin = captured
        pts = round((captured - self._origin) * 1000)
        if self._last_pts is not None:
            pts = max(pts, self._last_pts + 1)
            self._interval = pts - self._last_pts
        frame.pts, frame.time_base = pts, TIME_BASE
        if self._last_keyframe is None or pts - self._last_keyframe >= KEYFRAME_INTERVAL_MS:
            frame.pict_type = av.video.frame.PictureType.I
            self._last_keyframe = pts
        self._last_pts = pts
        self._mux(self._stream.encode(frame))
        self.frames += 1

    @property
    def duration(self):
        return (self._last_pts + self._interval) / 1000 if self._last_pts is not None else 0.0

    def sync(self):
        """Put the fragments written so far on the disk, so a power cut loses only the last seconds."""
        os.fsync(self._sync_descriptor)

    def close(self, flush=True):
        """Flush the encoder (unless a write failed) and close the container."""
        try:
            if flush:
                self._mux(self._stream.encode(None))
        finally:
            os.close(self._sync_descriptor)
            self._container.close()

    def _mux(self, packets):
        for packet in packets:
            packet.duration = self._interval    # the last frame's duration, which the MP4 needs
            self._container.mux(packet)


class SharedVideoFile:
    """A recording written from the camera's live encode (stream/h264.py) instead of an encode of its
    own: the initialization segment, then each fragment, as they are, which is a fragmented MP4 like
    VideoFileWriter's. The same interface as VideoFileWriter, but ``write`` takes a fragment (a
    LiveFeed's next_in_stream() gives no second segment)."""

    def __init__(self, path, init):
        self.encoder, self.width, self.height = init.encoder, init.width, init.height
        self.frames = 0
        self._first = self._last = None         # capture times of the first and last fragment
        self._descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _write_all(self._descriptor, init.data)
        except BaseException:
            os.close(self._descriptor)
            raise

    def write(self, item):
        _write_all(self._descriptor, item.data)
        self.frames += 1
        self._first = item.timestamp if self._first is None else self._first
        self._last = item.timestamp

    @property
    def duration(self):
        if self._first is None:
            return 0.0
        return self._last - self._first + (self._last - self._first) / max(self.frames - 1, 1)

    def sync(self):
        os.fsync(self._descriptor)

    def close(self, flush=True):
        os.close(self._descriptor)


def _write_all(descriptor, data):
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def pick_encoder(encoders, width, height, quality=EncoderQuality(), profile="main"):
    """The first encoder that opens and gives the stream header before the first frame."""
    failures = []
    for name in encoders:
        try:
            context = av.CodecContext.create(name, "w")
            configure_encoder(context, name, width, height, quality)
            context.options = encoder_options(name, quality, profile)
            context.flags |= av.codec.context.Flags.global_header
            context.open()
            if not context.extradata:
                raise VideoFileError("no stream header (SPS/PPS) before the first frame, which MP4 needs")
            return name
        except Exception as error:      # not built in, no device, or unusable: try the next one
            log.info("encoder %s cannot be used: %s", name, error)
            failures.append(f"{name}: {error}")
    raise VideoFileError("no H.264 encoder works: " + "; ".join(failures))


def configure_encoder(context, name, width, height, quality):
    """Size, pixel format, time base and rate control of an H.264 encoder's context."""
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base = TIME_BASE
    context.framerate = NOMINAL_FPS
    context.gop_size = NOMINAL_FPS * 10     # a backstop: keyframes are forced every second
    if name != "libx264":
        # No CRF here: ~3 bits per pixel per second (0.9 Mbit/s at 640x480), at most the cap.
        context.gop_size = NOMINAL_FPS
        context.bit_rate = min(max(width * height * 3, 250_000), quality.max_kbps * 1000)


def probe(path):
    """(frames, duration in s) of an MP4, read from its packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, first, end = 0, None, 0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            frames += 1
            first = packet.pts if first is None else min(first, packet.pts)
            end = max(end, packet.pts + (packet.duration or 0))
        return frames, float((end - first) * stream.time_base) if frames else 0.0


def read_duration(path):
    """The duration in seconds of a video file, from its index when it has one (cheap) or else its
    packets; None, and a log line, when it cannot be read."""
    try:
        with av.open(str(path)) as container:
            if container.duration:          # microseconds; a fragmented MP4 states none
                return container.duration / 1e6
        return probe(path)[1]
    except (OSError, av.error.FFmpegError, IndexError, ValueError) as error:
        log.warning("cannot read the duration of %s: %s", Path(path).name, error)
        return None


def rewrite_with_index_in_front(path, source=None):
    """Remux (no re-encode) into a regular MP4 with +faststart, then replace the file atomically.
    ``source``: a descriptor of the file open already, read instead of its name (which a symbolic
    link could take meanwhile).

    A fragmented MP4 states no duration: a player has to find it in the fragments, and some report
    it short. A regular MP4 states it in the index, and with the index in front a browser can show
    the length and seek before it has loaded the whole file.

    Answers a descriptor of the new file that holds the writer's lock, taken before it replaced the
    old one, so the file is never unlocked; the caller closes it when done with the file.
    """
    descriptor, temporary = create_temporary(path.parent, suffix=".mp4")
    try:
        lock_for_writing(descriptor)        # start-up cleaning leaves a locked temporary alone
        copied = 0
        with av.open(_readable(path, source)) as original, \
                av.open(str(temporary), "w", format="mp4", options=INDEX_IN_FRONT) as target:
            source_stream = original.streams.video[0]
            target_stream = target.add_stream_from_template(source_stream)
            shift = None                # a recording of the live encode starts at its time: made 0
            for packet in original.demux(source_stream):
                if packet.dts is None:
                    continue
                shift = max(packet.dts, 0) if shift is None else shift
                packet.dts -= shift
                packet.pts -= shift
                packet.stream = target_stream
                target.mux(packet)
                copied += 1
        frames, _ = probe(temporary)
        if frames != copied:
            raise VideoFileError(f"the rewritten file has {frames} frames instead of {copied}")
        os.fsync(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        os.close(descriptor)
        raise
    return descriptor


def _readable(path, descriptor):
    """What PyAV opens: the open file itself when there is a descriptor (Linux's /proc), else the name."""
    return str(path) if descriptor is None else f"/proc/self/fd/{descriptor}"


def mp4_boxes(file):
    """The complete top-level boxes of an MP4 (a path, or a readable descriptor) as (type, offset,
    size); a box cut short ends the list."""
    if not isinstance(file, int):
        with open(file, "rb") as handle:
            return mp4_boxes(handle.fileno())
    boxes, offset, end = [], 0, os.fstat(file).st_size
    while offset + 8 <= end:
        header = os.pread(file, 16, offset)
        size, kind = struct.unpack(">I4s", header[:8])
        if size == 1 and len(header) == 16:
            size = struct.unpack(">Q", header[8:])[0]
        if size < 8 or offset + size > end:
            break
        boxes.append((kind.decode("latin-1"), offset, size))
        offset += size
    return boxes


def trim_to_complete_fragments(descriptor, name):
    """Cut what a failed write left after the last complete fragment, so players read to the end.
    Works on the open file (read and write), never on a name a link could take."""
    boxes, keep = mp4_boxes(descriptor), 0
    for index, (kind, offset, size) in enumerate(boxes):
        follows_moof = kind == "mdat" and index > 0 and boxes[index - 1][0] == "moof"
        if kind in ("ftyp", "moov", "mfra") or follows_moof:
            keep = offset + size
    size = os.fstat(descriptor).st_size
    if keep < size:
        log.info("%s: cut %d bytes of an unfinished fragment", name, size - keep)
        os.ftruncate(descriptor, keep)


def repair(path, descriptor=None):
    """Finish a recording that a crash or power cut left fragmented: cut an unfinished fragment, then
    rewrite it with the index in front. Answers False when the file was not fragmented.
    ``descriptor``: the file open for reading and writing (else it is opened by ``path``)."""
    if descriptor is None:
        with open(path, "r+b") as handle:
            return repair(path, handle.fileno())
    if "moof" not in [kind for kind, _, _ in mp4_boxes(descriptor)]:
        return False
    trim_to_complete_fragments(descriptor, path.name)
    os.close(rewrite_with_index_in_front(path, source=descriptor))
    return True


def recover_interrupted(media_dir):
    """After a crash: delete the empty files reserved for recordings that never got a frame, and
    repair the ones left fragmented. A file another process is recording (it holds the writer's
    lock) is left alone. Answers {name: (frames, duration)} for the repaired ones."""
    repaired = {}
    for path in sorted(Path(media_dir).iterdir()):
        if path.suffix.lower() != ".mp4" or path.name.startswith("."):
            continue
        try:
            handle = open_regular_file(path, writable=True)        # never a symbolic link's target
            if handle is None:
                continue
            with handle:
                if not lock_for_writing(handle.fileno(), wait=False):
                    log.info("left %s alone: it is being recorded", path.name)
                    continue
                if os.fstat(handle.fileno()).st_size == 0:
                    path.unlink()
                    log.info("removed %s: a recording that never got its first frame", path.name)
                elif repair(path, handle.fileno()):
                    repaired[path.name] = probe(path)
                    log.info("repaired %s: a recording interrupted by a crash", path.name)
        except (OSError, av.error.FFmpegError, ValueError, VideoFileError) as error:
            log.warning("could not check or repair %s: %s", path.name, error)
    return repaired
