"""The live page in Debian's chromium, through Playwright, against gunicorn's gevent worker: its picture
moves and turns gray, drawn over the WebSocket (the default) or streamed as MJPEG (?view=mjpeg)."""
import json

import pytest

# Reads the shown picture's pixels (the canvas the socket draws into, or the MJPEG <img> through a
# canvas): a list of [r, g, b] samples across the picture.
SAMPLE_PIXELS = """() => {
  const drawn = document.getElementById('stream-canvas');
  const image = document.getElementById('stream');
  let canvas = drawn;
  if (drawn.hidden) {
    if (!image.naturalWidth) return null;
    canvas = document.createElement('canvas');
    canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
    canvas.getContext('2d').drawImage(image, 0, 0);
  } else if (!Number(drawn.dataset.frames)) {
    return null;
  }
  const context = canvas.getContext('2d');
  const samples = [];
  for (let y = 10; y < canvas.height; y += 40)
    for (let x = 10; x < canvas.width; x += 40)
      samples.push(Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3)));
  return samples;
}"""


@pytest.mark.parametrize("view, shown, kind", [("", "stream-canvas", "JPEG over WebSocket"),
                                               ("?view=mjpeg", "stream", "MJPEG")])
def test_live_view_moves_and_turns_gray(live_server, browser_page, view, shown, kind):
    page = browser_page
    page.goto(live_server + "/" + view)
    page.wait_for_function(f"({SAMPLE_PIXELS})() !== null")
    assert page.evaluate(f"!document.getElementById('{shown}').hidden")
    assert page.inner_text("#view-kind") == kind
    first = page.evaluate(SAMPLE_PIXELS)
    page.wait_for_function(f"before => JSON.stringify(({SAMPLE_PIXELS})()) !== before",
                           arg=json.dumps(first), timeout=10000)
    assert any(len(set(pixel)) > 1 for pixel in first), "the demo picture is in colour"

    page.click("#grayscale")
    page.wait_for_function("document.getElementById('grayscale').getAttribute('aria-pressed') === 'true'")
    page.wait_for_function(f"({SAMPLE_PIXELS})().every(p => Math.max(...p) - Math.min(...p) <= 2)",
                           timeout=10000)
    assert page.locator("#state").inner_text() in ("streaming", "starting", "stopped")
