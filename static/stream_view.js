// One WebSocket per page (/ws) for every camera it shows: each binary message is a small header
// (kind, camera name, sequence number, capture time; see camera_server/stream/websocket.py) and
// the JPEG, drawn with createImageBitmap into the camera's canvas (no base64, no object URL). Each
// frame is acknowledged once drawn, so the server sends only what the page draws. A camera shown with
// codec "h264" plays the server's fragmented MP4 in its <video> instead (h264_player.js), and falls
// back to the canvas when the browser cannot play it or the server has no encoder. A hidden tab and
// a canvas out of view are unsubscribed. After a server restart the socket comes back by itself
// (1, 2, 4 ... 30 s); a socket that never worked calls onUnavailable, and the page falls back to MJPEG
// (or, on the grid, to stills). control() sends a control over the same socket with the page's token
// (camera_server/web/socket_controls.py) and answers the route's body, or throws the server's message.
"use strict";

const KIND_JPEG = 1;                // the first byte of a binary message
const KIND_MP4_INIT = 2;
const KIND_MP4_FRAGMENT = 3;

class StreamView {
  constructor({ onUnavailable = () => {}, onFrame = () => {}, onFollow = () => {}, onCodec = () => {},
                token = "" } = {}) {
    this.views = new Map();         // camera name -> { canvas, video, codec, player, wanted, subscribed, ... }
    this.onUnavailable = onUnavailable;
    this.onFrame = onFrame;         // (name, { seq, captured, drawnAt })
    this.onFollow = onFollow;       // (name, subscribed): a subscribe or unsubscribe was sent
    this.onCodec = onCodec;         // (name, codec, reason): what a camera plays now, "jpeg" or "h264"
    this.token = token;
    this.controls = new Map();      // id -> { resolve, reject } of the controls waiting for their answer
    this.nextId = 1;
    this.worked = false;
    this.open = false;              // the server said hello on the current socket
    this.delay = 1;
    this.socket = null;
    this.observer = "IntersectionObserver" in window
      ? new IntersectionObserver((entries) => entries.forEach((entry) => this._inView(entry)))
      : null;
    document.addEventListener("visibilitychange", () => this._follow());
  }

  static available() {
    return "WebSocket" in window && "createImageBitmap" in window;
  }

  // Show a camera's frames in ``canvas``, or with codec "h264" its video in ``video`` (the canvas
  // stays the fallback).
  show(name, canvas, { codec = "jpeg", video = null } = {}) {
    const h264 = codec === "h264" && video !== null && H264Player.supports();
    const view = { canvas, video, codec: h264 ? "h264" : "jpeg", player: null, mime: null, wanted: true,
                   visible: true, subscribed: false, drawing: false, pending: null };
    this.views.set(name, view);
    canvas.hidden = view.codec === "h264";       // what is observed must be shown to be in view
    if (video) video.hidden = view.codec !== "h264";
    if (this.observer) this.observer.observe(this._element(view));
    if (codec === "h264" && !h264) this._useJpeg(name, view, "this browser cannot play H.264 (no MediaSource)");
    else this.onCodec(name, view.codec, null);
    if (!this.socket) this._connect();
    else this._follow();
  }

  // Kilobits a second and seconds of latency of a camera playing H.264 (null for JPEG).
  h264Stats(name) {
    const view = this.views.get(name);
    if (!view || !view.player) return null;
    return { kbps: view.player.kbps(), latency: view.player.latency(), buffered: view.player.bufferedSeconds() };
  }

  _element(view) {
    return view.codec === "h264" ? view.video : view.canvas;
  }

  // Play JPEG frames in the canvas instead of H.264 (no decoder here, no encoder there).
  _useJpeg(name, view, reason) {
    if (this.observer && view.codec === "h264") {
      this.observer.unobserve(view.video);
      this.observer.observe(view.canvas);
    }
    if (view.player) view.player.stop();
    view.player = null;
    view.codec = "jpeg";
    if (view.video) view.video.hidden = true;
    view.canvas.hidden = false;
    this.onCodec(name, "jpeg", reason);
  }

  // Stop showing a camera (its tile was removed).
  forget(name) {
    const view = this.views.get(name);
    if (!view) return;
    view.wanted = false;
    this._follow();
    if (this.observer) this.observer.unobserve(this._element(view));
    if (view.player) view.player.stop();
    this.views.delete(name);
  }

  // A control over the socket: resolves with the route's body, rejects with an Error of the server's message.
  control(camera, action, members = {}) {
    if (!this.open) return Promise.reject(new Error("the WebSocket is not connected"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.controls.set(id, { resolve, reject });
      this._send({ op: "control", id, camera, action, token: this.token, ...members });
    });
  }

  _connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("message", (event) => this._receive(event.data));
    socket.addEventListener("close", () => this._closed(socket));
  }

  _closed(socket) {
    if (socket !== this.socket) return;
    this.open = false;
    for (const view of this.views.values()) view.subscribed = false;
    for (const waiting of this.controls.values()) waiting.reject(new Error("the connection closed; try again"));
    this.controls.clear();
    if (!this.worked) {             // refused, or no WebSocket on the way here (a proxy): MJPEG
      this.socket = null;
      this.onUnavailable();
      return;
    }
    setTimeout(() => this._connect(), this.delay * 1000);
    this.delay = Math.min(this.delay * 2, 30);
  }

  _send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  _inView(entry) {
    for (const view of this.views.values()) {
      if (this._element(view) === entry.target) view.visible = entry.isIntersecting;
    }
    this._follow();
  }

  // Subscribe the cameras shown now, unsubscribe the others.
  _follow() {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    for (const [name, view] of this.views) {
      const wanted = view.wanted && view.visible && !document.hidden;
      if (wanted === view.subscribed) continue;
      // ack: JPEG frames are acknowledged once drawn (also those the server sends instead of H.264).
      const subscribe = { op: "subscribe", camera: name, ack: true, ...(view.codec === "h264" ? { codec: "h264" } : {}) };
      this._send(wanted ? subscribe : { op: "unsubscribe", camera: name });
      view.subscribed = wanted;
      this.onFollow(name, wanted);
    }
  }

  _receive(data) {
    if (typeof data === "string") {
      const answer = JSON.parse(data);
      if ((answer.op === "result" || answer.op === "error") && this.controls.has(answer.id)) {
        const waiting = this.controls.get(answer.id);
        this.controls.delete(answer.id);
        if (answer.op === "result") waiting.resolve(answer.body);
        else waiting.reject(Object.assign(new Error(answer.message), { status: answer.status }));
      } else if (answer.op === "hello") {
        this.worked = true;
        this.open = true;
        this.delay = 1;
        this._follow();
      } else if (answer.op === "subscribed" && this.views.has(answer.camera)) {
        this._subscribed(answer);
      } else if (answer.op === "error" && answer.codec === "h264" && this.views.has(answer.camera)) {
        this._useJpeg(answer.camera, this.views.get(answer.camera), answer.message);     // JPEG follows
      } else if (answer.op === "unsubscribed" && answer.reason && this.views.has(answer.camera)) {
        this.views.get(answer.camera).subscribed = false;     // its camera stopped: ask again later
        setTimeout(() => this._follow(), 2000);
      }
      return;
    }
    const bytes = new Uint8Array(data);
    const kind = bytes[0];
    const nameLength = bytes[1];
    const name = new TextDecoder().decode(bytes.subarray(2, 2 + nameLength));
    const header = new DataView(data, 2 + nameLength, 16);
    const captured = header.getFloat64(8);
    const payload = bytes.subarray(2 + nameLength + 16);
    const view = this.views.get(name);
    if (!view) return;
    if (kind === KIND_MP4_INIT || kind === KIND_MP4_FRAGMENT) {
      if (!view.player) return;     // unsubscribed from H.264 meanwhile
      if (kind === KIND_MP4_FRAGMENT) {
        view.player.fragment(payload, captured);
        return;
      }
      const mime = mp4Mime(payload) || view.mime;
      if (H264Player.supports(mime)) view.player.init(payload, mime);
      else this._refuseH264(name, view, `this browser cannot play ${mime}`);
      return;
    }
    if (kind !== KIND_JPEG || view.codec !== "jpeg") return;
    const frame = { seq: Number(header.getBigUint64(0)), captured, jpeg: payload };
    if (view.drawing) {             // draw only the newest: one waits, older ones are dropped
      if (view.pending) this._send({ op: "ack", camera: name });
      view.pending = frame;
      return;
    }
    this._draw(name, view, frame);
  }

  // The server's answer to a subscribe: which codec the camera plays now.
  _subscribed(answer) {
    const name = answer.camera;
    const view = this.views.get(name);
    if (view.codec !== "h264") return;
    if (answer.codec !== "h264") {  // the server plays JPEG: its error said why
      this._useJpeg(name, view, "the server sends JPEG");
      return;
    }
    if (answer.mime && !H264Player.supports(answer.mime)) {
      this._refuseH264(name, view, `this browser cannot play ${answer.mime}`);
      return;
    }
    view.mime = answer.mime;
    if (!view.player) {
      view.player = new H264Player(view.video, {
        onFrame: ({ drawnAt, captured }) => this.onFrame(name, { seq: null, captured, drawnAt }),
      });
    }
  }

  // This profile or level cannot play here: subscribe to JPEG instead.
  _refuseH264(name, view, reason) {
    this._send({ op: "unsubscribe", camera: name });
    view.subscribed = false;
    this._useJpeg(name, view, reason);
    this._follow();
  }

  async _draw(name, view, frame) {
    view.drawing = true;
    try {
      const bitmap = await createImageBitmap(new Blob([frame.jpeg], { type: "image/jpeg" }));
      const canvas = view.canvas;
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        [canvas.width, canvas.height] = [bitmap.width, bitmap.height];
      }
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      bitmap.close();
      this.onFrame(name, { seq: frame.seq, captured: frame.captured, drawnAt: Date.now() / 1000 });
    } catch (error) {
      // A frame that cannot be decoded is skipped; the next one comes.
    } finally {
      view.drawing = false;
      this._send({ op: "ack", camera: name });
      const next = view.pending;
      view.pending = null;
      if (next) this._draw(name, view, next);
    }
  }
}
