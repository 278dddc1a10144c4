"""The camera grid in chromium against the real server with 8 cameras: every tile's picture changes
within a few seconds in one tab, each tile has at most one still on its way, a hidden tab and a tile
out of view ask for none, a click opens the camera's page, and the form adds a camera."""
import os
import socket
import subprocess
import sys
from collections import Counter

import pytest

from conftest import ROOT, chromium_path, wait_for
from server_process import status, stop_server

USERKEY = "sesame"
# Demo cameras of different sizes and rates: name -> (width, height, fps).
CAMERAS = {f"cam{index}": (160 + 32 * (index % 4), 120 + 24 * (index % 4), 5 + index) for index in range(8)}
TILE_PICTURE = """name => {
  const image = document.querySelector(`.camera-tile[data-camera="${name}"] img`);
  if (!image.complete || !image.naturalWidth) return null;
  const canvas = document.createElement('canvas');
  [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let index = 0; index < pixels.length; index += 7) sum = (sum * 31 + pixels[index]) % 1000000007;
  return [image.naturalWidth, image.naturalHeight, sum];
}"""


def tile_picture(page, name):
    """(width, height, checksum) of the tile's picture, taken between two stills (not while one loads)."""
    found = []
    assert wait_for(lambda: found.append(page.evaluate(TILE_PICTURE, name)) or found[-1] is not None, timeout=5)
    return found[-1]


def set_hidden(page, hidden):
    """What switching to another tab does to a page: visibilityState and a visibilitychange event."""
    page.evaluate("""hidden => {
      Object.defineProperty(document, 'hidden', { value: hidden, configurable: true });
      Object.defineProperty(document, 'visibilityState', { value: hidden ? 'hidden' : 'visible', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    }""", hidden)


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


def test_the_grid_shows_every_camera_changing_and_asks_only_while_shown(server, browser_page):
    port, config = server
    page = browser_page
    page.set_default_timeout(15000)
    page.set_viewport_size({"width": 1400, "height": 1000})
    stills = StillRequests(page)
    page.goto(f"http://127.0.0.1:{port}/cameras")

    first = {}
    for name, (width, height, _) in CAMERAS.items():
        page.wait_for_function(f"document.querySelector('.camera-tile[data-camera=\"{name}\"]').dataset.stills >= 2")
        first[name] = tile_picture(page, name)
        assert first[name][:2] == [width, height]
    for name in CAMERAS:
        assert wait_for(lambda: tile_picture(page, name)[2] != first[name][2], timeout=5), name
    page.wait_for_function("[...document.querySelectorAll('.camera-tile .state')].every(s => s.textContent === 'streaming')")
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

    page.fill("#add-camera-form [name=name]", "porch")
    page.select_option("#add-camera-form [name=camera]", "demo")
    page.fill("#add-camera-form [name=width]", "200")
    page.fill("#add-camera-form [name=height]", "100")
    page.fill("#userkey", USERKEY)
    page.click("#add-camera-form button[type=submit]")
    page.wait_for_function("document.getElementById('message').textContent === 'Added porch'")
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.wait_for_function("document.querySelector('.camera-tile[data-camera=\"porch\"]').dataset.stills >= 1")
    assert tile_picture(page, "porch")[:2] == [200, 100]
    assert "[camera porch]" in config.read_text()
    assert "porch" in status(port)["cameras"]

    page.click('.camera-tile[data-camera="cam3"] a')
    page.wait_for_url(f"http://127.0.0.1:{port}/cam/cam3/")
    # The camera's own page: its stream, and controls that act on it alone.
    page.wait_for_function("document.getElementById('stream').naturalWidth === 256")   # cam3: 256x192
    assert "/cam/cam3/video_feed" in page.eval_on_selector("#stream", "image => image.src")
    page.click("#grayscale")
    page.wait_for_function("document.getElementById('grayscale').getAttribute('aria-pressed') === 'true'")
    cameras = status(port)["cameras"]
    assert cameras["cam3"]["camera"]["grayscale"]
    assert not any(cameras[name]["camera"]["grayscale"] for name in cameras if name != "cam3")
