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
