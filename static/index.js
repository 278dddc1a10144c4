// The live page: controls POST with the page's control token (common.js); the status, the scene watch
// line and the events (watch.js) refresh every 2 s.
"use strict";

const message = document.getElementById("message");

function setPressed(id, pressed) {
  document.getElementById(id).setAttribute("aria-pressed", pressed ? "true" : "false");
}

document.getElementById("grayscale").addEventListener("click", () => run(async () => {
  const body = await post(cameraUrl("/grayscale"), { state: "toggle" });
  setPressed("grayscale", body.grayscale);
}));

document.getElementById("resolution-toggle").addEventListener("click", () => run(async () => {
  const body = await post(cameraUrl("/resolution"), { state: "toggle" });
  setPressed("resolution-toggle", body.half_resolution);
}));

document.getElementById("snapshot-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    const name = document.getElementById("snapshot-name").value.trim();
    const body = await post(cameraUrl("/snapshot"), name ? { filename: name } : {});
    message.innerHTML = "";
    const link = document.createElement("a");
    link.href = body.url;
    link.textContent = body.file;
    link.target = "_blank";
    message.append("Saved ", link);
    refreshMedia();
  });
});

const recordButton = document.getElementById("record");

function noticeRecordingEnd(recording) {
  // The recording this page showed ended without its button: by itself (disk, length, camera) or elsewhere.
  if (recording.recording || !recordButton.classList.contains("recording")) return;
  if (recording.last_reason && recording.last_reason !== "stopped") {
    const note = document.getElementById("record-note");
    note.textContent = `Recording ${recording.last_file} stopped: ${recording.last_error || recording.last_reason}`;
    note.hidden = false;
  } else if (recording.last_file) {
    say(`Saved ${recording.last_file}`);
  }
  refreshMedia();
}

function showRecording(recording) {
  recordButton.classList.toggle("recording", recording.recording);
  recordButton.textContent = recording.recording ? "Stop recording" : "Record";
  document.getElementById("record-time").textContent =
    recording.recording ? `${Math.round(recording.elapsed_s)} s` : "";
}

document.getElementById("record-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    if (recordButton.classList.contains("recording")) {
      const body = await post(cameraUrl("/video_capture"), { action: "stop" });
      showRecording({ recording: false });
      say(`Saved ${body.file} (${body.duration.toFixed(1)} s)`);
      refreshMedia();
    } else {
      const name = document.getElementById("record-name").value.trim();
      const body = await post(cameraUrl("/video_capture"), name ? { action: "start", filename: name } : { action: "start" });
      document.getElementById("record-note").hidden = true;
      showRecording({ recording: true, elapsed_s: 0 });
      say(`Recording ${body.file}`);
    }
  });
});

const MEDIA_ROWS = 20;      // as many as the index route renders

async function refreshMedia() {
  const entries = await getJSON(`/get_database?limit=${MEDIA_ROWS}${cameraFilter("&")}`);
  const rows = document.getElementById("media-rows");
  rows.replaceChildren(...entries.map(mediaRow));
  if (!entries.length) {
    const row = rows.insertRow();
    row.className = "empty";
    Object.assign(row.insertCell(), { colSpan: 6, textContent: "No pictures yet" });
  }
}

function mediaRow(entry) {
  const row = document.createElement("tr");
  row.dataset.filename = entry.filename;
  const url = `/media/${encodeURIComponent(entry.filename)}`;
  const link = Object.assign(document.createElement("a"), { href: url, target: "_blank", textContent: entry.filename });
  const download = Object.assign(document.createElement("a"), { href: `${url}?download=1`, textContent: "download" });
  for (const content of [formatTime(entry.created), link, entry.kind, entry.camera || "", formatSize(entry.size), download]) {
    row.insertCell().append(content);
  }
  return row;
}

function showFocus(focus) {
  if (!focus) return;
  setPressed("autofocus", focus.autofocus);
  if (focus.focus !== null && focus.focus !== undefined) {
    document.getElementById("focus-value").value = focus.focus;
  }
}

document.getElementById("autofocus").addEventListener("click", () => run(async () => {
  showFocus((await post(cameraUrl("/autofocus"), { state: "toggle" })).focus);
}));

for (const button of document.querySelectorAll(".step-focus")) {
  button.addEventListener("click", () => run(async () => {
    showFocus((await post(cameraUrl("/step_focus"), { steps: button.dataset.steps })).focus);
  }));
}

document.getElementById("set-focus").addEventListener("click", () => run(async () => {
  const value = document.getElementById("focus-value").value;
  showFocus((await post(cameraUrl("/set_focus"), { value })).focus);
}));

function userkeyHeader() {
  return { "X-User-Key": document.getElementById("userkey").value };
}

document.getElementById("show-logs").addEventListener("click", () => run(async () => {
  const response = await fetch("/logs?lines=200", { headers: userkeyHeader() });
  if (!response.ok) {
    throw new Error((await response.json()).error);
  }
  const logs = document.getElementById("logs");
  logs.textContent = await response.text();
  logs.hidden = false;
}));

for (const button of document.querySelectorAll(".power")) {
  button.addEventListener("click", () => run(async () => {
    const action = button.dataset.action;
    if (!confirm(`Really ${action} the camera server's computer?`)) return;
    await post(`/${action}`, {}, userkeyHeader());
    say(`${action} requested`);
  }));
}

startLiveView();     // the picture: over the WebSocket, or MJPEG (live_view.js)

async function refreshStatus() {
  try {
    const status = await getJSON(cameraUrl("/status"));
    const camera = status.camera;
    if (status.recording) {
      noticeRecordingEnd(status.recording);
      showRecording(status.recording);
    }
    showWatchSummary(status);
    await refreshEvents(5);    // as many as the live page shows
    const state = document.getElementById("state");
    state.textContent = camera.state;
    state.className = `badge ${camera.state}`;
    document.getElementById("fps").textContent = camera.fps;
    document.getElementById("resolution").textContent = camera.resolution.join("x");
    document.getElementById("viewers").textContent = camera.viewers;
    setPressed("grayscale", camera.grayscale);
    setPressed("resolution-toggle", camera.half_resolution);
    const lastError = document.getElementById("last-error");
    lastError.textContent = camera.last_error || "";
    lastError.hidden = !camera.last_error;
    for (const control of document.querySelectorAll("#focus-controls button, #focus-controls input")) {
      control.disabled = camera.focus === null;
    }
    document.getElementById("focus-note").hidden = camera.focus !== null;
    showFocus(camera.focus);
  } catch (error) {
    // The server is restarting; the next refresh will tell.
  }
}
setInterval(refreshStatus, 2000);
