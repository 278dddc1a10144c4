// Light controls and the live heart rate (templates/_light_controls.html).
// Changes go through common.js's post() (form-encoded, with the page's control token); the state and
// the heart rate come from polling /get_controller_data every second, not from /heart_rate_stream:
// browsers open at most 6 connections per server, and the page's stream already holds one.
(() => {
  "use strict";
  const root = document.getElementById("light-controls");
  if (!root) return;

  const power = document.getElementById("light-power");
  const brightness = document.getElementById("light-brightness");
  const color = document.getElementById("light-color");
  const white = document.getElementById("light-white");
  const note = document.getElementById("light-note");
  const heartRate = document.getElementById("heart-rate");
  const heartRateAge = document.getElementById("heart-rate-age");
  const heartRateRange = document.getElementById("heart-rate-range");
  const line = document.getElementById("heart-rate-line");
  const WINDOW_S = 60;
  const POLL_MS = 1000;
  const samples = new Map();  // server time of a heart rate -> {at: local seconds, bpm}
  const notes = { board: "", control: "" };  // the board's connection, the last control's error
  let dragging = false;
  let shownVersion = -1;  // the server's version of the state on screen
  let clock = 0;          // counts requests sent and answers shown, to tell which came first
  let shownAt = 0;        // when the answer on screen arrived, on that count

  // Sends the newest value only, one request at a time, so a dragged slider never queues up.
  function latestOnly(send) {
    let busy = false;
    let pending = null;
    return async (value) => {
      pending = value;
      if (busy) return;
      busy = true;
      try {
        while (pending !== null) {
          const next = pending;
          pending = null;
          await control(() => send(next));
        }
      } finally {
        busy = false;
      }
    };
  }

  function showNotes() {
    const text = [notes.board, notes.control].filter(Boolean).join("; ");
    note.textContent = text;
    note.hidden = !text;
  }

  // Answers (polls and controls) can arrive out of order: one is shown unless it is older than the
  // state on screen. A lower version is older, except from a request sent after that state arrived:
  // then the server restarted and counts from 0 again.
  async function fetchState(request) {
    const sentAt = ++clock;
    const data = await request();
    if (data.version >= shownVersion || sentAt > shownAt) {
      shownAt = ++clock;
      showState(data);
    }
  }

  // A control's error stays on screen until the next control answers.
  async function control(request) {
    try {
      await fetchState(request);
      notes.control = "";
    } catch (error) {
      notes.control = error.message;
    }
    showNotes();
  }

  function showState(data) {
    shownVersion = data.version;
    power.setAttribute("aria-pressed", data.on ? "true" : "false");
    power.textContent = data.on ? "Light on" : "Light off";
    if (!dragging) {
      brightness.value = data.brightness;
      color.value = "#" + data.color.slice(0, 6).toLowerCase();
      white.value = parseInt(data.color.slice(6, 8) || "00", 16);
    }
    notes.board = data.connected ? "" : `Light board not connected${data.error ? ": " + data.error : ""}`;
    showNotes();
    showHeartRate(data);
  }

  function showHeartRate(data) {
    if (data.heart_rate === null || data.heart_rate === undefined) {
      heartRate.textContent = "--";
      heartRateAge.textContent = data.connected ? "no reading" : "";
    } else {
      heartRate.textContent = data.heart_rate === 0 ? "no pulse" : String(data.heart_rate);
      heartRateAge.textContent = `${Math.round(data.heart_rate_age_s)} s ago`;
      addSample(data.heart_rate_received_at, data.heart_rate_age_s, data.heart_rate);
    }
    drawChart();
  }

  function addSample(serverTime, ageSeconds, bpm) {
    if (!samples.has(serverTime)) samples.set(serverTime, { at: Date.now() / 1000 - ageSeconds, bpm });
  }

  function drawChart() {
    const now = Date.now() / 1000;
    for (const [key, sample] of samples) {
      if (now - sample.at > WINDOW_S) samples.delete(key);
    }
    const points = [...samples.values()].filter((s) => s.bpm > 0).sort((a, b) => a.at - b.at);
    if (points.length === 0) {
      line.setAttribute("points", "");
      heartRateRange.textContent = "";
      return;
    }
    const values = points.map((s) => s.bpm);
    const low = Math.min(...values) - 5;
    const high = Math.max(...values) + 5;
    line.setAttribute("points", points.map((s) => {
      const x = 300 * (1 - (now - s.at) / WINDOW_S);
      const y = 90 - 80 * (s.bpm - low) / (high - low);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    }).join(" "));
    heartRateRange.textContent = `: ${Math.min(...values)}–${Math.max(...values)} bpm`;
  }

  async function loadHistory() {
    const history = await getJSON("/heart_rate_history");
    for (const s of history.samples) addSample(s.t, s.age_s, s.bpm);
  }

  // One poll at a time, the next a second after the answer, so a slow server gets no pile of them.
  async function poll() {
    try {
      if (!document.hidden) await fetchState(() => getJSON("/get_controller_data"));
    } catch (error) {
      notes.board = `No answer from the server (${error.message}); retrying…`;
      showNotes();
    }
    setTimeout(poll, POLL_MS);
  }

  const sendBrightness = latestOnly((value) => post("/set_brightness", { value }));
  const sendColor = latestOnly((value) => post("/set_color", { color: value }));

  function chosenColor() {
    const whitePart = Number(white.value);
    const hex = color.value.replace("#", "").toUpperCase();
    return whitePart > 0 ? hex + whitePart.toString(16).padStart(2, "0").toUpperCase() : hex;
  }

  power.addEventListener("click", () => {
    const on = power.getAttribute("aria-pressed") !== "true";
    control(() => post("/light", { state: on ? "on" : "off" }));
  });
  for (const input of [brightness, color, white]) {
    input.addEventListener("pointerdown", () => { dragging = true; });
    input.addEventListener("change", () => { dragging = false; });
  }
  brightness.addEventListener("input", () => sendBrightness(brightness.value));
  color.addEventListener("input", () => sendColor(chosenColor()));
  white.addEventListener("input", () => sendColor(chosenColor()));

  loadHistory().catch((error) => { notes.board = error.message; showNotes(); }).finally(poll);
  setInterval(drawChart, 1000);  // keeps the chart sliding while no new value comes
})();
