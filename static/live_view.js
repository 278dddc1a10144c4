// The live picture of a camera's page (templates/_stream_view.html), one of three ways, chosen with
// ?view=:
// - socket (the default): JPEG frames from the page's WebSocket drawn into the canvas (stream_view.js);
// - h264: H.264 from the same socket played in the <video> (h264_player.js), about a tenth of the
//   bytes; JPEG instead when the browser or the server cannot;
// - mjpeg: the MJPEG <img>, also without WebSocket or when the socket is refused.
// The page shows the frame rate it draws, the bit rate of H.264 and the latency from capture to
// drawing. The MJPEG stream reconnects by itself when the connection drops (server restart, network),
// and a hidden tab lets go of it: browsers open at most 6 connections per server, and each stream
// holds one.
"use strict";

const VIEWS = ["socket", "h264", "mjpeg"];

function chosenView() {
  const asked = new URLSearchParams(location.search).get("view");
  return VIEWS.includes(asked) ? asked : "socket";
}

function startLiveView() {
  const stream = document.getElementById("stream");
  const canvas = document.getElementById("stream-canvas");
  const video = document.getElementById("stream-video");
  const kind = document.getElementById("view-kind");
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

  function showChoice(current) {
    for (const name of ["jpeg", "h264", "mjpeg"]) {
      document.getElementById(`view-${name}`).toggleAttribute("aria-current", name === current);
    }
  }

  function useMjpeg() {
    live.mjpeg = true;
    canvas.hidden = true;
    video.hidden = true;
    stream.hidden = false;
    drawn.hidden = true;
    kind.textContent = "MJPEG";
    showChoice("mjpeg");
    followVisibility();       // a page opened in a background tab waits until it is shown
  }

  stream.addEventListener("error", () => {
    if (live.mjpeg && !document.hidden && stream.getAttribute("src")) setTimeout(connectStream, 2000);
  });
  document.addEventListener("visibilitychange", followVisibility);

  function useSocket(codec) {
    const times = [];
    const name = canvas.dataset.camera;
    live.mjpeg = false;
    stream.hidden = true;
    live.view = new StreamView({
      token: controlToken,
      onUnavailable: () => {
        live.view = null;
        useMjpeg();
        kind.textContent = "MJPEG (the WebSocket was refused)";
      },
      onCodec: (camera, playing, reason) => {
        kind.textContent = playing === "h264" ? "H.264 over WebSocket"
          : `JPEG over WebSocket${reason ? ` (not H.264: ${reason})` : ""}`;
        document.getElementById("bitrate").hidden = playing !== "h264";
        showChoice(playing === "h264" ? "h264" : "jpeg");
      },
      onFrame: (camera, frame) => {
        canvas.dataset.frames = Number(canvas.dataset.frames) + 1;
        times.push(frame.drawnAt);
        while (times.length > 30) times.shift();
        const fps = times.length > 1 ? (times.length - 1) / (times[times.length - 1] - times[0]) : 0;
        drawn.hidden = false;
        document.getElementById("drawn-fps").textContent = fps.toFixed(1);
        const stats = live.view.h264Stats(camera);
        if (stats) {
          document.getElementById("bitrate-kbps").textContent = Math.round(stats.kbps);
          video.dataset.buffered = stats.buffered.toFixed(2);     // seconds of video held (the browser test reads it)
        }
        // The two clocks are only comparable when server and browser agree on the time.
        const latency = frame.captured === null ? null : (frame.drawnAt - frame.captured) * 1000;
        const plausible = latency !== null && latency >= 0 && latency < 5000;
        document.getElementById("latency").hidden = !plausible;
        if (plausible) document.getElementById("latency-ms").textContent = Math.round(latency);
      },
    });
    live.view.show(name, canvas, { codec, video });
  }

  const view = chosenView();
  if (view !== "mjpeg" && StreamView.available()) {
    useSocket(view === "h264" ? "h264" : "jpeg");
  } else {
    useMjpeg();
  }
  return live;
}
