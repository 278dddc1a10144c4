"""Fragmented MP4 of live H.264: an initialization segment, then one fragment (moof+mdat) per frame.

PyAV's mp4 muxer writes into memory. ``frag_every_frame`` closes a frame's fragment when the next
frame comes (the muxer needs its time for the duration), so a fragment leaves one frame interval
after its frame was encoded. The media timeline is milliseconds since an origin the caller keeps,
not since this writer's first frame (``frag_discont`` without an edit list), so the fragments of a
restarted encoder continue the timeline of the ones before and a player need not reset its clock.
"""
import io
import logging
import struct

import av

from camera_server.media.video_file import TIME_BASE, NOMINAL_FPS, configure_encoder, encoder_options

log = logging.getLogger(__name__)

LIVE_MP4 = {"movflags": "empty_moov+default_base_moof+frag_every_frame+frag_discont", "use_editlist": "0",
            "avoid_negative_ts": "make_non_negative", "video_track_timescale": "1000", "flush_packets": "1"}
INIT_BOXES = ("ftyp", "moov")


def codecs_string(extradata):
    """The RFC 6381 name of an H.264 stream (``avc1.4D401F``: profile, constraint flags and level of
    its SPS), from the encoder's extradata, in avcC form or as Annex B NAL units."""
    if extradata[:1] == b"\x01" and len(extradata) >= 4:            # avcC: the SPS's three bytes at 1..3
        return "avc1." + extradata[1:4].hex().upper()
    for start in _nal_starts(extradata):
        if extradata[start] & 0x1F == 7 and start + 4 <= len(extradata):     # the SPS
            return "avc1." + extradata[start + 1:start + 4].hex().upper()
    raise ValueError("the encoder's stream header has no SPS")


def _nal_starts(data):
    """Offsets of the NAL units after each 00 00 01 start code."""
    index = data.find(b"\x00\x00\x01")
    while index >= 0 and index + 3 < len(data):
        yield index + 3
        index = data.find(b"\x00\x00\x01", index + 3)


class _Collected(io.RawIOBase):
    """Where the muxer writes: the bytes are taken out, box by box, as soon as they are complete."""

    def __init__(self):
        self._pending = bytearray()

    def writable(self):
        return True

    def write(self, data):
        self._pending += data
        return len(data)

    def take_boxes(self):
        """The complete top-level boxes written so far, as (type, bytes)."""
        boxes, offset = [], 0
        while offset + 8 <= len(self._pending):
            size, kind = struct.unpack_from(">I4s", self._pending, offset)
            if size < 8 or offset + size > len(self._pending):
                break
            boxes.append((kind.decode("latin-1"), bytes(self._pending[offset:offset + size])))
            offset += size
        del self._pending[:offset]
        return boxes


class LiveMp4Writer:
    """One run of a live encoder: pictures in; its initialization segment, then (bytes, keyframe,
    capture time) of each frame's fragment out. The size is fixed by the first picture: one of
    another size needs a new writer (and so a new initialization segment)."""

    def __init__(self, encoder, width, height, quality, profile="main", keyframe_interval_s=1.0, origin=0.0):
        self.encoder, self.width, self.height = encoder, width, height
        self.init_segment = None            # bytes, once the muxer has written the header
        self._keyframe_interval_ms = round(keyframe_interval_s * 1000)
        self._origin = origin               # capture time (Unix s) of pts 0
        self._last_pts = self._last_keyframe = None
        self._keyframe_wanted = False
        self._interval = round(1000 / NOMINAL_FPS)
        self._muxed = []                    # (keyframe, capture time) of the packets whose fragment is to come
        self._init_parts = []
        self._moof = None                   # a fragment's first box, until its mdat is complete too
        self._closed = False
        self._output = _Collected()
        self._container = av.open(self._output, "w", format="mp4", options=LIVE_MP4)
        try:
            self._stream = self._container.add_stream(encoder, rate=NOMINAL_FPS,
                                                      options=encoder_options(encoder, quality, profile))
            configure_encoder(self._stream.codec_context, encoder, width, height, quality)
            self._stream.codec_context.flags |= av.codec.context.Flags.global_header
            self._stream.time_base = TIME_BASE
            self._stream.codec_context.open()
            self.codecs = codecs_string(bytes(self._stream.codec_context.extradata or b""))
        except Exception:
            self._container.close()
            raise

    @property
    def mime(self):
        return f'video/mp4; codecs="{self.codecs}"'

    def force_keyframe(self):
        """Make the next picture a keyframe (a bounded buffer that must start over)."""
        self._keyframe_wanted = True

    def write(self, image, captured):
        """Encode one picture (BGR or gray) captured at ``captured`` (Unix s); answer the fragments
        completed by it, each (bytes, keyframe, capture time)."""
        frame = av.VideoFrame.from_ndarray(image, format="gray" if image.ndim == 2 else "bgr24")
        frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        pts = max(round((captured - self._origin) * 1000), 0)
        if self._last_pts is not None:
            pts = max(pts, self._last_pts + 1)
            self._interval = pts - self._last_pts
        frame.pts, frame.time_base = pts, TIME_BASE
        if (self._keyframe_wanted or self._last_keyframe is None
                or pts - self._last_keyframe >= self._keyframe_interval_ms):
            frame.pict_type = av.video.frame.PictureType.I
            self._last_keyframe, self._keyframe_wanted = pts, False
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            packet.duration = self._interval      # the muxer sets it from the next frame; a guess till then
            self._muxed.append((packet.is_keyframe, captured))
            self._container.mux(packet)
        return self._fragments()

    def _fragments(self):
        fragments = []
        for kind, data in self._output.take_boxes():
            if kind in INIT_BOXES and self.init_segment is None:
                self._init_parts.append(data)
                if kind == "moov":
                    self.init_segment = b"".join(self._init_parts)
            elif kind == "moof":
                self._moof = data
            elif kind == "mdat" and self._moof is not None:
                keyframe, captured = self._muxed.pop(0)
                fragments.append((self._moof + data, keyframe, captured))
                self._moof = None
        return fragments

    def close(self):
        """Close the muxer without flushing the encoder: the last frame's fragment is not needed live.
        Again: nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError) as error:
            log.debug("closing the live encoder of %s: %s", self.encoder, error)
