// The scene watch on the live page, /watch and /shows: baseline, monitor, motion, delete the captured
// changes; the watch state and the event list follow /status and /events without reloading.
"use strict";

function bind(id, action) {
  const element = document.getElementById(id);
  if (element) element.addEventListener("click", () => run(action));
}

function pressed(id) {
  return document.getElementById(id).getAttribute("aria-pressed") === "true";
}

function showWatch(status) {
  const monitor = document.getElementById("monitor-toggle");
  if (!monitor) return;
  monitor.setAttribute("aria-pressed", status.monitor.on ? "true" : "false");
  monitor.textContent = status.monitor.on ? "Stop monitoring" : "Start monitoring";
  document.getElementById("monitor-score").textContent =
    status.monitor.last_score === null ? "-" : Math.round(status.monitor.last_score);
  document.getElementById("changes-saved").textContent = status.monitor.changes_saved;
  const motion = document.getElementById("motion-toggle");
  motion.setAttribute("aria-pressed", status.motion.on ? "true" : "false");
  motion.textContent = status.motion.on ? "Stop motion detection" : "Start motion detection";
  document.getElementById("motion-state").textContent = status.motion.motion ? "yes" : "no";
  document.getElementById("motion-score").textContent = status.motion.score === null ? "-" : status.motion.score;
}

// The watch line of the live page, and what both pages say when the monitor stopped saving (limit, low disk).
function showWatchSummary(status) {
  for (const [id, on] of [["watch-monitor", status.monitor.on], ["watch-motion", status.motion.on]]) {
    const element = document.getElementById(id);
    if (element) element.textContent = on ? "on" : "off";
  }
  const event = document.getElementById("watch-event");
  if (event) event.hidden = !status.motion.event;
  const notSaving = document.getElementById("monitor-not-saving");
  const stopped = status.monitor.saving_stopped;
  if (notSaving) {
    notSaving.hidden = !stopped;
    notSaving.textContent = stopped ? `Scene changes not saved: ${stopped.message}` : "";
  }
}

function mediaLink(name, text) {
  return Object.assign(document.createElement("a"),
    { href: `/media/${encodeURIComponent(name)}`, target: "_blank", textContent: text });
}

function eventRow(event) {
  const row = document.createElement("tr");
  row.dataset.event = event.id;
  const peak = event.peak_score === null ? "" : `${(100 * event.peak_score).toFixed(1)} %`;
  for (const content of [formatTime(event.start), event.end ? formatTime(event.end) : "going on", event.kind,
                         event.labels.join(", "), peak, event.snapshot ? mediaLink(event.snapshot, "picture") : "",
                         event.clip ? mediaLink(event.clip, "video") : ""]) {
    row.insertCell().append(content);
  }
  return row;
}

let shownEvents = null;      // the /events answer on the page, so an unchanged list is not redrawn

async function refreshEvents(limit) {
  const rows = document.getElementById("event-rows");
  if (!rows) return;
  const answer = await (await fetch(`/events?limit=${limit}${cameraFilter("&")}`)).text();
  if (answer === shownEvents) return;
  shownEvents = answer;
  const events = JSON.parse(answer);
  rows.replaceChildren(...events.map(eventRow));
  if (!events.length) {
    const row = rows.insertRow();
    row.className = "empty";
    Object.assign(row.insertCell(), { colSpan: 7, textContent: "No events yet" });
  }
}

function showBaseline() {
  const baseline = document.getElementById("baseline");
  baseline.src = cameraUrl(`/monitor/baseline.jpg?${Date.now()}`);
  baseline.hidden = false;
}

bind("take-baseline", async () => {
  await post(cameraUrl("/monitor/baseline"));
  showBaseline();
  say("Baseline taken");
});

bind("monitor-toggle", async () => {
  if (pressed("monitor-toggle")) {
    await post(cameraUrl("/monitor/stop"));
  } else {
    await post(cameraUrl("/monitor/start"), { threshold: document.getElementById("threshold").value });
    showBaseline();
  }
  await refreshWatch();
});

bind("motion-toggle", async () => {
  await post(cameraUrl(pressed("motion-toggle") ? "/motion/stop" : "/motion/start"));
  await refreshWatch();
});

bind("delete-changes", async () => {
  if (!confirm("Delete every captured change? The baseline stays.")) return;
  const body = await post(cameraUrl("/delete"));
  say(`Deleted ${body.deleted} pictures`);
  setTimeout(() => window.location.reload(), 600);
});

async function refreshWatch() {
  const status = await getJSON(cameraUrl("/status"));
  showWatch(status);
  showWatchSummary(status);
  await refreshEvents(50);     // as many as the /watch page shows
}

if (document.getElementById("monitor-toggle")) {
  setInterval(() => refreshWatch().catch(() => {}), 2000);
}
