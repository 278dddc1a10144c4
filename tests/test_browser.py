"""The live page in Debian's chromium, through Playwright, against gunicorn's gevent worker."""
import json

# Reads the <img> pixels through a canvas: a list of [r, g, b] samples across the picture.
SAMPLE_PIXELS = """() => {
  const image = document.getElementById('stream');
  if (!image.naturalWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const samples = [];
  for (let y = 10; y < canvas.height; y += 40)
    for (let x = 10; x < canvas.width; x += 40)
      samples.push(Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3)));
  return samples;
}"""


def test_live_view_moves_and_turns_gray(live_server, browser_page):
    page = browser_page
    page.goto(live_server + "/")
    page.wait_for_function("document.getElementById('stream').naturalWidth > 0")
    first = page.evaluate(SAMPLE_PIXELS)
    page.wait_for_function(f"before => JSON.stringify(({SAMPLE_PIXELS})()) !== before",
                           arg=json.dumps(first), timeout=10000)
    assert any(len(set(pixel)) > 1 for pixel in first), "the demo picture is in colour"

    page.click("#grayscale")
    page.wait_for_function("document.getElementById('grayscale').getAttribute('aria-pressed') === 'true'")
    page.wait_for_function(f"({SAMPLE_PIXELS})().every(p => Math.max(...p) - Math.min(...p) <= 2)",
                           timeout=10000)
    assert page.locator("#state").inner_text() in ("streaming", "starting", "stopped")
