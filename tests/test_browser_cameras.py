"""The camera grid in chromium against the real server with 8 cameras: one WebSocket draws every tile,
each tile's picture changes within a few seconds, a hidden tab and a tile out of view are sent no
frames (the server's frames on the socket are counted, not only what the page drew), a click opens the
camera's page, and the form adds a camera. With the socket refused the tiles poll their stills: each
has at most one on its way, and a hidden tab asks for none."""
import json
import os
import socket
import subprocess
import sys
from collections import Counter

import pytest

from conftest import ROOT, chromium_path, set_hidden, wait_for
from server_process import status, stop_server

USERKEY = "sesame"
# Demo cameras of different sizes and rates: name -> (width, height, fps).
CAMERAS = {f"cam{index}": (160 + 32 * (index % 4), 120 + 24 * (index % 4), 5 + index) for index in range(8)}
TILE_PICTURE = """name => {
  const tile = document.querySelector(`.camera-tile[data-camera="${name}"]`);
  let canvas = tile.querySelector('canvas');
  if (canvas.hidden) {
    const image = tile.querySelector('img');
    if (!image.complete || !image.naturalWidth) return null;
    canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
    canvas.getContext('2d').drawImage(image, 0, 0);
  } else if (!Number(tile.dataset.frames)) {
    return null;
  }
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let index = 0; index < pixels.length; index += 7) sum = (sum * 31 + pixels[index]) % 1000000007;
  return [canvas.width, canvas.height, sum];
}"""


def tile_picture(page, name):
    """(width, height, checksum) of the tile's picture (its canvas, or its still between two loads)."""
    found = []
    assert wait_for(lambda: found.append(page.evaluate(TILE_PICTURE, name)) or found[-1] is not None, timeout=5)
    return found[-1]


@pytest.fixture
def server(tmp_path):
    chromium_path()                       # skips (or fails under CI) before starting a server for nothing
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "config.txt"
    config.write_text(
        f"[SETTINGS]\nhost = 127.0.0.1\nmedia_dir = {tmp_path / 'media'}\nlog_file = {tmp_path / 'flask.log'}\n"
        f"[KEYS]\nuserkey = {USERKEY}\n" + "".join(
            f"[camera {name}]\ncamera = demo\nwidth = {width}\nheight = {height}\nfps = {fps}\n"
            for name, (width, height, fps) in CAMERAS.items()))
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:main_app()"],
                               cwd=ROOT, env=dict(os.environ, CONFIG_FILE=str(config), PORT=str(port)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait_for(lambda: _answers(port), timeout=60):
        raise RuntimeError(f"server did not start:\n{stop_server(process)}")
    yield port, config
    stop_server(process)


def _answers(port):
    try:
        return bool(status(port))
    except OSError:
        return False


class StillRequests:
    """The page's latest.jpg requests per camera, and the most each camera had on their way at once."""

    def __init__(self, page):
        self.asked, self.on_their_way, self.most_at_once = Counter(), Counter(), Counter()
        page.on("request", self._sent)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._done)

    @staticmethod
    def _camera(request):
        parts = request.url.split("/")
        return parts[4] if "/latest.jpg" in request.url else None

    def _sent(self, request):
        camera = self._camera(request)
        if camera:
            self.asked[camera] += 1
            self.on_their_way[camera] += 1
            self.most_at_once[camera] = max(self.most_at_once[camera], self.on_their_way[camera])

    def _done(self, request):
        camera = self._camera(request)
        if camera:
            self.on_their_way[camera] -= 1


class SocketFrames:
    """What went over the page's WebSockets: the sockets opened, the frames the server sent per camera
    (read from each binary message's header), and the subscribe messages the page sent."""

    def __init__(self, page):
        self.sockets, self.frames, self.subscribed = [], Counter(), Counter()
        page.on("websocket", self._opened)

    def _opened(self, socket):
        self.sockets.append(socket.url)
        socket.on("framereceived", self._received)
        socket.on("framesent", self._sent)

    def _received(self, payload):
        if isinstance(payload, bytes):
            self.frames[payload[2:2 + payload[1]].decode()] += 1

    def _sent(self, payload):
        message = json.loads(payload)
        if message["op"] == "subscribe":
            self.subscribed[message["camera"]] += 1

    def total(self):
        return sum(self.frames.values())


def test_the_grid_draws_every_camera_from_one_socket_and_only_while_shown(server, browser_page):
    port, config = server
    page = browser_page
    page.set_default_timeout(15000)
    page.set_viewport_size({"width": 1400, "height": 1000})
    stills = StillRequests(page)
    socket_frames = SocketFrames(page)
    page.goto(f"http://127.0.0.1:{port}/cameras")

    first = {}
    for name, (width, height, _) in CAMERAS.items():
        page.wait_for_function(f"document.querySelector('.camera-tile[data-camera=\"{name}\"]').dataset.frames >= 2")
        first[name] = tile_picture(page, name)
        assert first[name][:2] == [width, height]
    for name in CAMERAS:
        assert wait_for(lambda: tile_picture(page, name)[2] != first[name][2], timeout=5), name
    page.wait_for_function("[...document.querySelectorAll('.camera-tile .state')].every(s => s.textContent === 'streaming')")
    assert len(socket_frames.sockets) == 1 and set(socket_frames.frames) == set(CAMERAS)    # one socket for all
    assert not stills.asked                                                                # and no stills
    assert all(status(port)["cameras"][name]["camera"]["viewers"] == 1 for name in CAMERAS)

    set_hidden(page, True)
    page.wait_for_timeout(500)                                     # the frames on their way arrive
    sent = socket_frames.total()
    page.wait_for_timeout(1500)
    assert socket_frames.total() == sent                           # a hidden tab is sent nothing
    assert page.evaluate("[...document.querySelectorAll('.camera-tile')].every(t => t.dataset.subscribed === 'false')")
    assert wait_for(lambda: all(camera["camera"]["viewers"] == 0 for camera in status(port)["cameras"].values()))

    page.set_viewport_size({"width": 1400, "height": 300})         # only the first row in view
    set_hidden(page, False)
    page.wait_for_timeout(500)
    before = Counter(socket_frames.frames)
    page.wait_for_timeout(1500)
    in_view = {name for name in CAMERAS if socket_frames.frames[name] > before[name] + 2}
    out_of_view = {name for name in CAMERAS if socket_frames.frames[name] == before[name]}
    assert in_view and out_of_view                                 # tiles out of view are sent none
    assert len(socket_frames.sockets) == 1

    page.fill("#add-camera-form [name=name]", "porch")
    page.select_option("#add-camera-form [name=camera]", "demo")
    page.fill("#add-camera-form [name=width]", "200")
    page.fill("#add-camera-form [name=height]", "100")
    page.fill("#userkey", USERKEY)
    page.click("#add-camera-form button[type=submit]")
    page.wait_for_function("document.getElementById('message').textContent === 'Added porch'")
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.wait_for_function("document.querySelector('.camera-tile[data-camera=\"porch\"]').dataset.frames >= 1")
    assert tile_picture(page, "porch")[:2] == [200, 100]
    assert socket_frames.subscribed["porch"] == 1 and len(socket_frames.sockets) == 1
    assert "[camera porch]" in config.read_text()
    assert "porch" in status(port)["cameras"]

    page.click('.camera-tile[data-camera="cam3"] a')
    page.wait_for_url(f"http://127.0.0.1:{port}/cam/cam3/")
    # The camera's own page: its picture over its own socket, and controls that act on it alone.
    page.wait_for_function("Number(document.getElementById('stream-canvas').dataset.frames) > 0")
    assert page.evaluate("document.getElementById('stream-canvas').width") == 256      # cam3: 256x192
    assert socket_frames.frames["cam3"] > 0 and len(socket_frames.sockets) == 2
    page.click("#grayscale")
    page.wait_for_function("document.getElementById('grayscale').getAttribute('aria-pressed') === 'true'")
    cameras = status(port)["cameras"]
    assert cameras["cam3"]["camera"]["grayscale"]
    assert not any(cameras[name]["camera"]["grayscale"] for name in cameras if name != "cam3")


def test_with_the_socket_refused_the_tiles_poll_their_stills_only_while_shown(server, browser_page):
    port, _ = server
    page = browser_page
    page.set_default_timeout(15000)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.route_web_socket("**/ws", lambda socket: socket.close())
    stills = StillRequests(page)
    page.goto(f"http://127.0.0.1:{port}/cameras")

    first = {}
    for name, (width, height, _) in CAMERAS.items():
        page.wait_for_function(f"document.querySelector('.camera-tile[data-camera=\"{name}\"]').dataset.stills >= 2")
        first[name] = tile_picture(page, name)
        assert first[name][:2] == [width, height]
    for name in CAMERAS:
        assert wait_for(lambda: tile_picture(page, name)[2] != first[name][2], timeout=5), name
    assert max(stills.most_at_once.values()) == 1                  # one still on its way per tile

    set_hidden(page, True)
    page.wait_for_timeout(500)                                     # the stills on their way arrive
    asked = sum(stills.asked.values())
    page.wait_for_timeout(1500)
    assert sum(stills.asked.values()) == asked                     # a hidden tab asks for nothing

    page.set_viewport_size({"width": 1400, "height": 300})         # only the first row in view
    set_hidden(page, False)
    page.wait_for_timeout(500)
    before = Counter(stills.asked)
    page.wait_for_timeout(1500)
    in_view = {name for name in CAMERAS if stills.asked[name] > before[name] + 2}
    assert in_view and len(in_view) < len(CAMERAS)                 # tiles out of view ask for none


def test_with_view_h264_the_tiles_play_their_cameras_h264_over_the_one_socket(server, browser_page):
    port, _ = server
    page = browser_page
    frames = SocketFrames(page)
    kinds = Counter()
    page.on("websocket", lambda socket: socket.on(
        "framereceived", lambda payload: kinds.update([payload[0]]) if isinstance(payload, bytes) else None))
    page.goto(f"http://127.0.0.1:{port}/cameras?view=h264")
    shown = page.evaluate("""() => [...document.querySelectorAll('.camera-tile')]
      .filter(tile => { const box = tile.getBoundingClientRect(); return box.top < innerHeight && box.bottom > 0; })
      .map(tile => tile.dataset.camera)""")
    assert shown
    for name in shown:
        page.wait_for_function(f"""() => {{
          const tile = document.querySelector('.camera-tile[data-camera="{name}"]');
          return tile.dataset.codec === 'h264' && tile.querySelector('video').currentTime > 0.5
            && tile.querySelector('canvas').hidden;
        }}""", timeout=20000)
    assert len(frames.sockets) == 1
    assert kinds[2] >= len(shown) and kinds[3] > 0 and kinds[1] == 0      # segments and fragments, no JPEG
