"""The live page's WebSocket view (its default) in chromium against the real gunicorn server: the
canvas's pixels change, the page shows the frame rate it draws and the latency, and never opens the
MJPEG stream; with the socket refused it falls back to the MJPEG stream, whose picture moves."""
from conftest import wait_for
from server_process import status

CANVAS_PIXELS = """() => {
  const canvas = document.getElementById('stream-canvas');
  if (canvas.hidden || !canvas.width) return null;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let index = 0; index < pixels.length; index += 7) sum = (sum * 31 + pixels[index]) % 1000000007;
  return [canvas.width, canvas.height, sum];
}"""
IMAGE_PIXELS = CANVAS_PIXELS.replace("const canvas = document.getElementById('stream-canvas');\n  if (canvas.hidden || !canvas.width) return null;",
                                     """const image = document.getElementById('stream');
  if (image.hidden || !image.naturalWidth) return null;
  const canvas = document.createElement('canvas');
  [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
  canvas.getContext('2d').drawImage(image, 0, 0);""")


def changes(page, script):
    first = []
    assert wait_for(lambda: first.append(page.evaluate(script)) or first[-1] is not None, timeout=15)
    return wait_for(lambda: page.evaluate(script)[2] != first[-1][2], timeout=10)


def test_the_live_page_draws_the_socket_frames_into_its_canvas(live_server, browser_page):
    page = browser_page
    streams = []
    page.on("request", lambda request: streams.append(request.url) if "/video_feed" in request.url else None)
    page.goto(f"{live_server}/")
    assert changes(page, CANVAS_PIXELS)
    assert page.inner_text("#view-kind") == "JPEG over WebSocket"
    assert page.evaluate(CANVAS_PIXELS)[:2] == [320, 240]
    assert page.evaluate("document.getElementById('stream').hidden")          # no MJPEG beside it
    page.wait_for_function("parseFloat(document.getElementById('drawn-fps').textContent) > 5")
    page.wait_for_function("!document.getElementById('latency').hidden")
    assert 0 <= float(page.inner_text("#latency-ms")) < 2000
    port = int(live_server.rsplit(":", 1)[1])
    assert wait_for(lambda: status(port)["camera"]["viewers"] == 1)
    assert not streams                                                       # the MJPEG stream was never asked for


def test_with_the_socket_refused_the_page_falls_back_to_mjpeg(live_server, browser_page):
    page = browser_page
    page.route_web_socket("**/ws", lambda socket: socket.close())
    page.goto(f"{live_server}/")
    page.wait_for_function("document.getElementById('stream').src.includes('/video_feed')")
    assert changes(page, IMAGE_PIXELS)
    assert page.evaluate("document.getElementById('stream-canvas').hidden")
    assert page.inner_text("#view-kind") == "MJPEG (the WebSocket was refused)"


VIDEO_STATE = """() => {
  const video = document.getElementById('stream-video');
  return { hidden: video.hidden, time: video.currentTime, width: video.videoWidth, height: video.videoHeight,
           buffered: parseFloat(video.dataset.buffered) };
}"""
# The video's picture and the camera's newest still, each drawn into a canvas: their mean difference per
# pixel and channel (0-255).
PICTURE_DIFFERENCE = """async (url) => {
  const video = document.getElementById('stream-video');
  const still = new Image();
  still.src = url;
  await still.decode();
  const pixels = (source) => {
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [80, 60];
    canvas.getContext('2d').drawImage(source, 0, 0, 80, 60);
    return canvas.getContext('2d').getImageData(0, 0, 80, 60).data;
  };
  const [a, b] = [pixels(video), pixels(still)];
  let sum = 0;
  for (let index = 0; index < a.length; index += 4) {
    sum += Math.abs(a[index] - b[index]) + Math.abs(a[index + 1] - b[index + 1]) + Math.abs(a[index + 2] - b[index + 2]);
  }
  return sum / (a.length / 4 * 3);
}"""


def test_with_view_h264_the_page_plays_the_cameras_h264_near_the_live_edge(live_server, browser_page):
    page = browser_page
    page.goto(f"{live_server}/?view=h264")
    page.wait_for_function("document.getElementById('view-kind').textContent === 'H.264 over WebSocket'")
    page.wait_for_function("document.getElementById('stream-video').currentTime > 0", timeout=15000)
    state = page.evaluate(VIDEO_STATE)
    assert not state["hidden"] and [state["width"], state["height"]] == [320, 240]
    assert page.evaluate("document.getElementById('stream-canvas').hidden")
    page.wait_for_function(f"document.getElementById('stream-video').currentTime > {state['time'] + 2}", timeout=15000)
    assert page.evaluate(PICTURE_DIFFERENCE, f"{live_server}/latest.jpg") < 25      # the camera's picture
    page.wait_for_function("!document.getElementById('latency').hidden")     # shown once plausible (bench: how low)
    assert float(page.inner_text("#latency-ms")) >= 0
    assert 0 < float(page.inner_text("#bitrate-kbps")) < 5000
    # Left open, the page keeps a few seconds of video: what was played leaves the buffer.
    page.wait_for_function(f"document.getElementById('stream-video').currentTime > {state['time'] + 9}", timeout=20000)
    assert page.evaluate(VIDEO_STATE)["buffered"] < 5


def test_a_browser_that_cannot_play_h264_gets_jpeg_frames(live_server, browser_page):
    page = browser_page
    page.add_init_script("MediaSource.isTypeSupported = () => false;")
    page.goto(f"{live_server}/?view=h264")
    assert changes(page, CANVAS_PIXELS)
    assert page.inner_text("#view-kind").startswith("JPEG over WebSocket (not H.264: this browser cannot play")
    assert page.evaluate("document.getElementById('stream-video').hidden")
