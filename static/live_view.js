// The live picture of a camera's page (templates/_stream_view.html): by default drawn from the page's
// WebSocket into the canvas (stream_view.js), with the frame rate drawn and the latency from capture to
// drawing; the MJPEG <img> with ?view=mjpeg, without WebSocket, or when the socket is refused. The MJPEG
// stream reconnects by itself when the connection drops (server restart, network), and a hidden tab
// lets go of it: browsers open at most 6 connections per server, and each stream holds one.
"use strict";

function startLiveView() {
  const stream = document.getElementById("stream");
  const canvas = document.getElementById("stream-canvas");
  const kind = document.getElementById("view-kind");
  const switchLink = document.getElementById("view-switch");
  const drawn = document.getElementById("drawn");
  const live = { view: null, mjpeg: true };

  function connectStream() {
    if (live.mjpeg && !document.hidden) stream.src = `${stream.dataset.src}?connect=${Date.now()}`;
  }

  function followVisibility() {
    if (!live.mjpeg) return;
    if (document.hidden) {
      stream.removeAttribute("src");
    } else if (!(stream.getAttribute("src") || "").includes("/video_feed")) {
      connectStream();
    }
  }

  function useMjpeg() {
    live.mjpeg = true;
    canvas.hidden = true;
    stream.hidden = false;
    drawn.hidden = true;
    kind.textContent = "MJPEG";
    switchLink.textContent = "use the WebSocket";
    switchLink.href = "?view=socket";
    followVisibility();       // a page opened in a background tab waits until it is shown
  }

  stream.addEventListener("error", () => {
    if (live.mjpeg && !document.hidden && stream.getAttribute("src")) setTimeout(connectStream, 2000);
  });
  document.addEventListener("visibilitychange", followVisibility);

  function useSocket() {
    const times = [];
    live.mjpeg = false;
    stream.hidden = true;
    canvas.hidden = false;
    kind.textContent = "JPEG over WebSocket";
    switchLink.textContent = "use MJPEG";
    switchLink.href = "?view=mjpeg";
    live.view = new StreamView({
      token: controlToken,
      onUnavailable: () => {
        live.view = null;
        useMjpeg();
        kind.textContent = "MJPEG (the WebSocket was refused)";
      },
      onFrame: (name, frame) => {
        canvas.dataset.frames = Number(canvas.dataset.frames) + 1;
        times.push(frame.drawnAt);
        while (times.length > 30) times.shift();
        const fps = times.length > 1 ? (times.length - 1) / (times[times.length - 1] - times[0]) : 0;
        const latency = (frame.drawnAt - frame.captured) * 1000;
        drawn.hidden = false;
        document.getElementById("drawn-fps").textContent = fps.toFixed(1);
        // The two clocks are only comparable when server and browser agree on the time.
        const plausible = latency >= 0 && latency < 5000;
        document.getElementById("latency").hidden = !plausible;
        if (plausible) document.getElementById("latency-ms").textContent = Math.round(latency);
      },
    });
    live.view.show(canvas.dataset.camera, canvas);
  }

  if (new URLSearchParams(location.search).get("view") !== "mjpeg" && StreamView.available()) {
    useSocket();
  } else {
    useMjpeg();
  }
  return live;
}
