// The scene watch page and /shows: baseline, monitor, motion, delete the captured changes.
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

function showBaseline() {
  const baseline = document.getElementById("baseline");
  baseline.src = `/monitor/baseline.jpg?${Date.now()}`;
  baseline.hidden = false;
}

bind("take-baseline", async () => {
  await post("/monitor/baseline");
  showBaseline();
  say("Baseline taken");
});

bind("monitor-toggle", async () => {
  if (pressed("monitor-toggle")) {
    await post("/monitor/stop");
  } else {
    await post("/monitor/start", { threshold: document.getElementById("threshold").value });
    showBaseline();
  }
  await refreshWatch();
});

bind("motion-toggle", async () => {
  await post(pressed("motion-toggle") ? "/motion/stop" : "/motion/start");
  await refreshWatch();
});

bind("delete-changes", async () => {
  if (!confirm("Delete every captured change? The baseline stays.")) return;
  const body = await post("/delete");
  say(`Deleted ${body.deleted} pictures`);
  setTimeout(() => window.location.reload(), 600);
});

async function refreshWatch() {
  showWatch(await (await fetch("/status")).json());
}

if (document.getElementById("monitor-toggle")) {
  setInterval(() => refreshWatch().catch(() => {}), 2000);
}
