// The pan-tilt-zoom pad (templates/_ptz_controls.html): hold an arrow (mouse, touch and pen through
// pointer events) or an arrow key while the pad has focus to move, release to stop; zoom while + or -
// is held; home, presets (go, save, delete) and the Tapo privacy mode. Uses common.js's post() and
// getJSON(). While a move is held it is sent again every few seconds: the server stops a move by itself
// when none comes for a while (a browser that vanished mid-move).
(() => {
  "use strict";
  const root = document.getElementById("ptz-controls");
  if (!root) return;

  const pad = document.getElementById("ptz-pad");
  const note = document.getElementById("ptz-note");
  const speed = document.getElementById("ptz-speed");
  const presetList = document.getElementById("ptz-presets");
  const presetForm = document.getElementById("ptz-preset-form");
  const privacy = document.getElementById("ptz-privacy");
  const KEEPALIVE_MS = 3000;
  const KEYS = { ArrowUp: [0, 1], ArrowDown: [0, -1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
  let held = null;        // the motion being held: {pan, tilt, zoom}, or null
  let keepalive = null;
  const keysDown = new Set();

  function show(text) {
    note.textContent = text || "";
    note.hidden = !text;
  }

  async function send(path, fields = {}) {
    try {
      const answer = await post(cameraUrl(`/ptz/${path}`), fields);
      show("");
      return answer;
    } catch (error) {
      show(error.message);
      return null;
    }
  }

  function motionFields(motion) {
    return { pan: motion.pan, tilt: motion.tilt, zoom: motion.zoom, speed: speed ? speed.value : 1 };
  }

  function start(motion) {
    if (held && held.pan === motion.pan && held.tilt === motion.tilt && held.zoom === motion.zoom) return;
    held = motion;
    send("move", motionFields(motion));
    clearInterval(keepalive);
    keepalive = setInterval(() => { if (held) send("move", motionFields(held)); }, KEEPALIVE_MS);
  }

  function stop() {
    clearInterval(keepalive);
    keepalive = null;
    if (!held) return;
    held = null;
    for (const button of root.querySelectorAll(".held")) button.classList.remove("held");
    send("stop");
  }

  function holdable(button, motion) {
    button.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || button.disabled) return;
      event.preventDefault();
      button.setPointerCapture(event.pointerId);
      button.classList.add("held");
      start(motion());
    });
    for (const type of ["pointerup", "pointercancel", "pointerleave", "lostpointercapture"]) {
      button.addEventListener(type, stop);
    }
    button.addEventListener("contextmenu", (event) => event.preventDefault());   // a long touch
  }

  for (const button of pad.querySelectorAll("button[data-pan]")) {
    holdable(button, () => ({ pan: Number(button.dataset.pan), tilt: Number(button.dataset.tilt), zoom: 0 }));
  }
  for (const button of root.querySelectorAll(".ptz-zoom")) {
    holdable(button, () => ({ pan: 0, tilt: 0, zoom: Number(button.dataset.zoom) }));
  }

  // The arrow keys while the pad has focus; two at once move diagonally.
  function keyMotion() {
    let pan = 0;
    let tilt = 0;
    for (const key of keysDown) {
      pan += KEYS[key][0];
      tilt += KEYS[key][1];
    }
    return { pan: Math.max(-1, Math.min(1, pan)), tilt: Math.max(-1, Math.min(1, tilt)), zoom: 0 };
  }
  pad.addEventListener("keydown", (event) => {
    if (!(event.key in KEYS)) return;
    event.preventDefault();
    if (event.repeat) return;
    keysDown.add(event.key);
    const motion = keyMotion();
    if (motion.pan || motion.tilt) start(motion); else stop();
  });
  pad.addEventListener("keyup", (event) => {
    if (!(event.key in KEYS)) return;
    event.preventDefault();
    keysDown.delete(event.key);
    const motion = keyMotion();
    if (motion.pan || motion.tilt) start(motion); else stop();
  });
  pad.addEventListener("blur", () => { keysDown.clear(); stop(); });
  window.addEventListener("blur", () => { keysDown.clear(); stop(); });
  document.addEventListener("visibilitychange", () => { if (document.hidden) stop(); });

  const home = document.getElementById("ptz-home");
  if (home) home.addEventListener("click", () => send("home"));

  if (privacy) {
    privacy.addEventListener("click", async () => {
      const on = privacy.getAttribute("aria-pressed") !== "true";
      const answer = await send("privacy", { state: on ? "on" : "off" });
      if (answer) privacy.setAttribute("aria-pressed", String(Boolean(answer.privacy)));
    });
  }

  function showPresets(presets) {
    if (!presetList) return;
    presetList.replaceChildren(...presets.map((preset) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = preset.name;
      const go = document.createElement("button");
      go.type = "button";
      go.textContent = "Go";
      go.addEventListener("click", () => send("preset/goto", { preset: preset.id }));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Delete";
      remove.addEventListener("click", async () => {
        if (!window.confirm(`Delete the preset ${preset.name}?`)) return;
        const answer = await send("preset/delete", { preset: preset.id });
        if (answer) showPresets(answer.presets);
      });
      item.append(name, go, remove);
      return item;
    }));
  }

  if (presetForm) {
    presetForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("ptz-preset-name");
      const answer = await send("preset/save", { name: input.value });
      if (answer) {
        input.value = "";
        showPresets(answer.presets);
      }
    });
    getJSON(cameraUrl("/ptz/presets")).then((answer) => showPresets(answer.presets), (error) => show(error.message));
  }
})();
