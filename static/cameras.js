// The camera grid: ONE WebSocket for every tile (stream_view.js). Each tile's canvas draws its camera's
// frames (with ?view=h264 its video plays the camera's H.264) while the tile is in view and the tab is
// shown; the other cameras are unsubscribed, so the server sends them nothing. Browsers open at most 6 connections to a server, so a grid of MJPEG
// streams could show only 6 cameras; one socket shows any number. When the socket is refused (or the
// browser has no WebSocket), each tile shows its camera's newest still (latest.jpg) instead, asked for
// one at a time (the next only once the last one loaded or failed), a few times a second, under the same
// conditions. State and fps come from one /status poll every 2 s. What each tile did is in its dataset
// (frames drawn, subscriptions, stills), which the browser test reads.
"use strict";

const STILL_INTERVAL_MS = 250;        // at most 4 stills a second per tile
const RETRY_MS = [1000, 2000, 5000];  // after a failed still: the server restarting, the camera removed
const STATUS_INTERVAL_MS = 2000;
const CODEC = new URLSearchParams(location.search).get("view") === "h264" ? "h264" : "jpeg";

const grid = document.getElementById("camera-grid");
const tiles = new Map();              // camera name -> Tile
let socketView = null;                // the StreamView while the tiles draw from the socket

class Tile {
  constructor(element) {
    this.element = element;
    this.name = element.dataset.camera;
    this.image = element.querySelector("img");
    this.canvas = element.querySelector("canvas");
    this.video = element.querySelector("video");
    this.frames = 0;                  // drawn from the socket
    this.subscriptions = 0;           // subscribe messages sent for this tile
    this.inView = false;
    this.loading = false;
    this.timer = null;
    this.failures = 0;
    this.stills = 0;                  // loaded so far (the browser test reads it)
    this.image.addEventListener("load", () => this.finished(true));
    this.image.addEventListener("error", () => this.finished(false));
  }

  wanted() {
    return !socketView && this.inView && !document.hidden && this.element.isConnected;
  }

  useSocket() {
    this.image.hidden = true;
    socketView.show(this.name, this.canvas, { codec: CODEC, video: this.video });
  }

  played(codec) {
    this.element.dataset.codec = codec;
  }

  useStills() {
    this.canvas.hidden = true;
    this.video.hidden = true;
    this.image.hidden = false;
    this.schedule(0);
  }

  drew() {
    this.frames += 1;
    this.element.dataset.frames = this.frames;
  }

  followed(subscribed) {
    this.element.dataset.subscribed = subscribed;
    if (subscribed) this.element.dataset.subscriptions = ++this.subscriptions;
  }

  // Ask for the next still after ``delay`` ms, unless one is asked for or on its way already.
  schedule(delay) {
    if (this.timer !== null || this.loading || !this.wanted()) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load();
    }, delay);
  }

  load() {
    if (this.loading || !this.wanted()) return;
    this.loading = true;
    this.startedAt = performance.now();
    // A new address each time (the same one would not be asked again); the answer is never cached.
    this.image.src = `/cam/${encodeURIComponent(this.name)}/latest.jpg?n=${this.stills}-${Date.now()}`;
  }

  finished(loaded) {
    if (!this.loading) return;
    this.loading = false;
    if (loaded) {
      this.failures = 0;
      this.stills += 1;
      this.element.dataset.stills = this.stills;
      this.schedule(Math.max(0, STILL_INTERVAL_MS - (performance.now() - this.startedAt)));
    } else {
      this.schedule(RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)]);
      this.failures += 1;
    }
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  show(status) {
    const state = this.element.querySelector(".state");
    state.textContent = status.state;
    state.className = `badge state ${status.state}`;
    this.element.querySelector(".fps").textContent = status.fps;
  }
}

const inView = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const tile = tiles.get(entry.target.dataset.camera);
    if (!tile) continue;
    tile.inView = entry.isIntersecting;
    if (tile.inView) tile.schedule(0);
    else tile.stop();
  }
});

function follow(element) {
  const tile = new Tile(element);
  tiles.set(tile.name, tile);
  inView.observe(element);
  if (socketView) tile.useSocket();
  element.querySelector(".remove").addEventListener("click", () => removeCamera(tile.name));
  return tile;
}

function newTile(name) {
  const element = document.getElementById("camera-tile").content.firstElementChild.cloneNode(true);
  element.dataset.camera = name;
  element.querySelector("a").href = `/cam/${encodeURIComponent(name)}/`;
  element.querySelector("img").alt = name;
  element.querySelector("canvas").setAttribute("aria-label", name);
  element.querySelector("video").setAttribute("aria-label", name);
  element.querySelector(".camera-name").textContent = name;
  grid.append(element);
  return follow(element);
}

function forget(name) {
  const tile = tiles.get(name);
  tile.stop();
  if (socketView) socketView.forget(name);
  inView.unobserve(tile.element);
  tile.element.remove();
  tiles.delete(name);
}

// The grid follows the server's cameras (added or removed here, in another tab, or by a script).
function showCameras(cameras) {
  for (const name of [...tiles.keys()]) {
    if (!(name in cameras)) forget(name);
  }
  for (const [name, status] of Object.entries(cameras)) {
    (tiles.get(name) || newTile(name)).show(status.camera);
  }
  document.getElementById("camera-count").textContent = tiles.size;
}

let statusTimer = null;

async function refreshStatus() {
  statusTimer = null;
  try {
    showCameras((await getJSON("/status")).cameras);
  } catch (error) {
    // The server is restarting; the next refresh will tell.
  }
  if (!document.hidden) statusTimer = setTimeout(refreshStatus, STATUS_INTERVAL_MS);
}

document.addEventListener("visibilitychange", () => {
  for (const tile of tiles.values()) {
    if (document.hidden) tile.stop();
    else tile.schedule(0);
  }
  if (!document.hidden && statusTimer === null) refreshStatus();
});

function userkeyHeader() {
  const userkey = document.getElementById("userkey");
  return userkey ? { "X-User-Key": userkey.value } : {};
}

document.getElementById("add-camera-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    const fields = {};
    for (const [key, value] of new FormData(event.target)) {
      if (String(value).trim()) fields[key] = value;
    }
    const body = await post("/cameras/add", fields, userkeyHeader());
    (tiles.get(body.added) || newTile(body.added)).show(body.status.camera);
    document.getElementById("camera-count").textContent = tiles.size;
    event.target.reset();
    say(`Added ${body.added}`);
  });
});

function removeCamera(name) {
  if (!confirm(`Remove camera ${name}? Its section is taken out of config.txt too.`)) return;
  run(async () => {
    await post("/cameras/remove", { name }, userkeyHeader());
    if (tiles.has(name)) forget(name);
    document.getElementById("camera-count").textContent = tiles.size;
    say(`Removed ${name}`);
  });
}

// Tile of a camera -> what it did; the socket refused: stills from now on.
function tileOf(name, action) {
  const tile = tiles.get(name);
  if (tile) action(tile);
}

if (StreamView.available()) {
  socketView = new StreamView({
    token: controlToken,
    onFrame: (name) => tileOf(name, (tile) => tile.drew()),
    onFollow: (name, subscribed) => tileOf(name, (tile) => tile.followed(subscribed)),
    onCodec: (name, codec) => tileOf(name, (tile) => tile.played(codec)),
    onUnavailable: () => {
      socketView = null;
      for (const tile of tiles.values()) tile.useStills();
    },
  });
}
document.getElementById(CODEC === "h264" ? "view-h264" : "view-jpeg").setAttribute("aria-current", "true");
for (const element of grid.querySelectorAll(".camera-tile")) follow(element);
if (!document.hidden) refreshStatus();
