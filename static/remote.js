// Seed 004's page (templates/remote.html): the picture over the WebSocket (live_view.js), recording and
// motion detection sent as controls over that same socket (POST while the page shows MJPEG), the PTZ
// pad (ptz.js, over HTTP), and the recording and motion state from /status every second.
"use strict";

const live = startLiveView();
const cameraName = document.getElementById("stream-canvas").dataset.camera;
const recordButton = document.getElementById("record");
const motionButton = document.getElementById("motion");

// A control over the socket when it is open, else the route's POST; the route's body either way.
async function control(action, members, route, fields) {
  if (live.view && live.view.open) return live.view.control(cameraName, action, members);
  return post(cameraUrl(route), fields);
}

function showRecording(recording) {
  recordButton.classList.toggle("recording", recording.recording);
  recordButton.textContent = recording.recording ? "Stop recording" : "Record";
  document.getElementById("record-time").textContent =
    recording.recording ? `${Math.round(recording.elapsed_s || 0)} s` : "";
}

function showMotion(motion) {
  motionButton.setAttribute("aria-pressed", motion.on ? "true" : "false");
  motionButton.textContent = motion.on ? "Stop motion detection" : "Start motion detection";
  document.getElementById("motion-now").textContent = motion.motion ? "yes" : "no";
  document.getElementById("motion-event").hidden = !motion.event;
}

recordButton.addEventListener("click", () => run(async () => {
  if (recordButton.classList.contains("recording")) {
    const body = await control("record/stop", {}, "/video_capture", { action: "stop" });
    showRecording({ recording: false });
    say(`Saved ${body.file} (${body.duration.toFixed(1)} s)`);
  } else {
    const body = await control("record/start", {}, "/video_capture", { action: "start" });
    showRecording({ recording: true, elapsed_s: 0 });
    say(`Recording ${body.file}`);
  }
}));

motionButton.addEventListener("click", () => run(async () => {
  const action = motionButton.getAttribute("aria-pressed") === "true" ? "motion/stop" : "motion/start";
  showMotion(await control(action, {}, `/${action}`, {}));
}));

async function refreshStatus() {
  try {
    const status = await getJSON(cameraUrl("/status"));
    const state = document.getElementById("state");
    state.textContent = status.camera.state;
    state.className = `badge ${status.camera.state}`;
    document.getElementById("fps").textContent = status.camera.fps;
    showRecording(status.recording);
    showMotion(status.motion);
  } catch (error) {
    // The server is restarting; the next refresh will tell.
  }
}
setInterval(refreshStatus, 1000);
