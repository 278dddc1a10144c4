// Light controls and the live heart rate (templates/_light_controls.html).
// Changes go through common.js's post() (form-encoded, with the page's control token); the heart
// rate arrives by server-sent events (/heart_rate_stream), or by polling where EventSource is missing.
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
  const POLL_MS = 2000;
  const samples = new Map();  // server time of a heart rate -> {at: local seconds, bpm}
  let dragging = false;
  let shownVersion = -1;  // the server's version of the state on screen

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
          showAnswer(await send(next));
        }
      } catch (error) {
        showNote(error.message);
      } finally {
        busy = false;
      }
    };
  }

  function showNote(text) {
    note.textContent = text || "";
    note.hidden = !text;
  }

  // A control's answer can arrive after a newer event from the stream: then it is not shown.
  function showAnswer(data) {
    if (data.version >= shownVersion) showState(data);
  }

  // The stream's events and the polls are always current (also after a server restart).
  function showState(data) {
    shownVersion = data.version;
    power.setAttribute("aria-pressed", data.on ? "true" : "false");
    power.textContent = data.on ? "Light on" : "Light off";
    if (!dragging) {
      brightness.value = data.brightness;
      color.value = "#" + data.color.slice(0, 6).toLowerCase();
      white.value = parseInt(data.color.slice(6, 8) || "00", 16);
    }
    showNote(data.connected ? "" : `Light board not connected${data.error ? ": " + data.error : ""}`);
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

  async function getJson(url) {
    const response = await fetch(url);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `${url}: ${response.status}`);
    return data;
  }

  async function loadHistory() {
    const history = await getJson("/heart_rate_history");
    for (const s of history.samples) addSample(s.t, s.age_s, s.bpm);
  }

  function listen() {
    if (!window.EventSource) {
      setInterval(() => getJson("/get_controller_data").then(showState, (e) => showNote(e.message)), POLL_MS);
      return;
    }
    const events = new EventSource("/heart_rate_stream");
    events.onmessage = (event) => showState(JSON.parse(event.data));
    events.onerror = () => showNote("Lost the connection to the server; retrying…");
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
    post("/light", { state: on ? "on" : "off" }).then(showAnswer, (e) => showNote(e.message));
  });
  for (const input of [brightness, color, white]) {
    input.addEventListener("pointerdown", () => { dragging = true; });
    input.addEventListener("change", () => { dragging = false; });
  }
  brightness.addEventListener("input", () => sendBrightness(brightness.value));
  color.addEventListener("input", () => sendColor(chosenColor()));
  white.addEventListener("input", () => sendColor(chosenColor()));

  Promise.all([loadHistory(), getJson("/get_controller_data").then(showState)])
    .catch((error) => showNote(error.message))
    .finally(listen);
  setInterval(drawChart, 1000);  // keeps the chart sliding while no new value comes
})();
