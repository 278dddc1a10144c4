// Live H.264 in a <video> through Media Source Extensions (ManagedMediaSource where MediaSource is
// missing, as on iPhones): the server's initialization segment, then a fragment per frame
// (camera_server/stream/h264.py), as stream_view.js hands them over. The playhead stays near the live
// edge (it jumps forward when it is more than LIVE_LAG_S behind the newest frame), and what was played
// is removed from the buffer, so a page left open keeps a few seconds of video, not hours.
"use strict";

const LIVE_LAG_S = 0.5;           // further behind the newest frame than this: jump to it
const KEEP_PLAYED_S = 2;          // seconds of played video the buffer keeps
const TRIM_AFTER_S = 4;           // trim once this much played video is buffered
const RATE_WINDOW_S = 2;          // the bit rate is measured over this many seconds

class H264Player {
  static mediaSource() {
    return window.MediaSource || window.ManagedMediaSource || null;
  }

  // Whether this browser can play ``mime`` (video/mp4; codecs="avc1...") through MSE.
  static supports(mime = 'video/mp4; codecs="avc1.42E01E"') {
    const Source = H264Player.mediaSource();
    return Boolean(Source && Source.isTypeSupported(mime));
  }

  constructor(video, { onFrame = () => {} } = {}) {
    this.video = video;
    this.onFrame = onFrame;         // ({ drawnAt, captured }) for each frame shown
    this.source = null;
    this.buffer = null;
    this.queue = [];                // what came while the buffer was busy
    this.received = [];             // [seconds, bytes] of the last RATE_WINDOW_S
    this.newestCaptured = null;     // capture time of the newest fragment, Unix seconds
    video.muted = true;
    video.playsInline = true;
    video.disableRemotePlayback = true;     // ManagedMediaSource plays only without AirPlay
    this._watchFrames();
  }

  // The initialization segment of an encoder run (the first, or a new one after a restart): a new
  // MediaSource, whose object URL is revoked as soon as the video has opened it.
  init(data, mime) {
    this.stop();
    const Source = H264Player.mediaSource();
    const source = new Source();
    const url = URL.createObjectURL(source);
    this.source = source;
    this.queue = [data];
    source.addEventListener("sourceopen", () => {
      URL.revokeObjectURL(url);
      if (source !== this.source) return;
      this.buffer = source.addSourceBuffer(mime);
      this.buffer.addEventListener("updateend", () => this._next());
      this._next();
    }, { once: true });
    this.video.src = url;
  }

  fragment(data, captured) {
    if (!this.source) return;       // no initialization segment yet
    this.queue.push(data);
    this.newestCaptured = captured;
    const now = performance.now() / 1000;
    this.received.push([now, data.byteLength]);
    while (this.received.length && this.received[0][0] < now - RATE_WINDOW_S) this.received.shift();
    this._next();
  }

  // Kilobits a second received over the last RATE_WINDOW_S.
  kbps() {
    const bytes = this.received.reduce((sum, [, size]) => sum + size, 0);
    return (bytes * 8) / 1000 / RATE_WINDOW_S;
  }

  // Seconds from the capture of the frame shown now to now: the newest fragment's age plus how far
  // the playhead is behind it.
  latency() {
    const end = this._bufferedEnd();
    if (this.newestCaptured === null || end === null) return null;
    return Date.now() / 1000 - this.newestCaptured + Math.max(0, end - this.video.currentTime);
  }

  // Seconds of video in the buffer (the browser test reads it).
  bufferedSeconds() {
    const ranges = this.video.buffered;
    let total = 0;
    for (let index = 0; index < ranges.length; index += 1) total += ranges.end(index) - ranges.start(index);
    return total;
  }

  stop() {
    this.source = null;
    this.buffer = null;
    this.queue = [];
    if (this.video.getAttribute("src")) {
      this.video.removeAttribute("src");
      this.video.load();            // lets go of the old MediaSource and its buffer
    }
  }

  _next() {
    const buffer = this.buffer;
    if (!buffer || buffer.updating || this.source.readyState !== "open") return;
    if (this._trim()) return;       // its updateend calls this again
    if (!this.queue.length) {
      this._chase();
      return;
    }
    const parts = this.queue.splice(0);
    const data = parts.length === 1 ? parts[0] : joined(parts);
    try {
      buffer.appendBuffer(data);
    } catch (error) {               // QuotaExceededError: remove what was played, then try again
      this.queue.unshift(data);
      this._trim(true);
    }
  }

  _bufferedEnd() {
    const ranges = this.video.buffered;
    return ranges.length ? ranges.end(ranges.length - 1) : null;
  }

  // Keep the playhead at the live edge, and playing.
  _chase() {
    const ranges = this.video.buffered;
    if (!ranges.length) return;
    const end = ranges.end(ranges.length - 1);
    const time = this.video.currentTime;
    if (time < ranges.start(ranges.length - 1) || end - time > LIVE_LAG_S) {
      this.video.currentTime = Math.max(ranges.start(ranges.length - 1), end - 0.05);
    }
    if (this.video.paused) this.video.play().catch(() => {});
  }

  _trim(force = false) {
    const ranges = this.video.buffered;
    if (!ranges.length) return false;
    const until = this.video.currentTime - KEEP_PLAYED_S;
    if (until - ranges.start(0) < (force ? 0.1 : TRIM_AFTER_S - KEEP_PLAYED_S)) return false;
    this.buffer.remove(0, until);
    return true;
  }

  _watchFrames() {
    const video = this.video;
    if (!("requestVideoFrameCallback" in video)) {
      video.addEventListener("timeupdate", () => this._shown());
      return;
    }
    const shown = () => {
      this._shown();
      video.requestVideoFrameCallback(shown);
    };
    video.requestVideoFrameCallback(shown);
  }

  _shown() {
    const latency = this.latency();
    const drawnAt = Date.now() / 1000;
    this.onFrame({ drawnAt, captured: latency === null ? null : drawnAt - latency });
  }
}

// The MSE type of an initialization segment: avc1 and the profile, compatibility and level bytes
// of its avcC box (what the server's "mime" says, when it knew it at the subscription).
function mp4Mime(segment) {
  for (let index = 4; index + 8 <= segment.length; index += 1) {
    if (segment[index] === 0x61 && segment[index + 1] === 0x76 && segment[index + 2] === 0x63
        && segment[index + 3] === 0x43) {           // "avcC"
      const hex = (byte) => byte.toString(16).toUpperCase().padStart(2, "0");
      const [profile, compatibility, level] = segment.subarray(index + 5, index + 8);
      return `video/mp4; codecs="avc1.${hex(profile)}${hex(compatibility)}${hex(level)}"`;
    }
  }
  return null;
}

function joined(parts) {
  const size = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const data = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    data.set(part, offset);
    offset += part.byteLength;
  }
  return data;
}
