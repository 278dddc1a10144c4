"""Shared fixtures: settings in a tmp folder, the app with the demo or a fake camera, free ports."""
import contextlib
import logging
import os
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_server import logging_setup
from camera_server.board.emulator import BoardEmulator
from camera_server.capture.camera import Camera, CameraError, Source
from camera_server.settings import Settings
from camera_server.web.app import create_app, stop_services

ROOT = Path(__file__).resolve().parent.parent


class FakeSource(Source):
    """A source the test drives: numbered frames, and failures switched on and off."""

    name = "fake"

    def __init__(self, width=64, height=48, interval=0.01):
        self.width, self.height, self.frame_interval = width, height, interval
        self.fail_open = None          # an error message, or None
        self.fail_read = None
        self.reads = 0
        self.opens = 0
        self.closes = 0
        self.is_open = False
        self.lock = threading.Lock()

    def open(self):
        if self.fail_open:
            raise CameraError(self.fail_open)
        self.opens += 1
        self.is_open = True

    def read(self):
        if self.fail_read:
            raise CameraError(self.fail_read)
        self.reads += 1
        image = np.zeros((self.height, self.width, 3), np.uint8)
        image[:, :, 2] = self.reads % 256        # red channel counts frames
        image[:, :, 1] = 40
        return image

    def close(self):
        self.closes += 1
        self.is_open = False


@pytest.fixture(autouse=True)
def server_logging_put_back():
    """main_app() (and logging_setup.configure) add the server's log handlers to the root and camera
    loggers; a test that calls it must not leave them, bound to its captured output, to later tests."""
    loggers = [logging.getLogger(), logging.getLogger(logging_setup.CAMERA_LOGGER)]
    before = [(logger, list(logger.handlers), logger.level) for logger in loggers]
    yield
    for logger, handlers, level in before:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)


@pytest.fixture
def emulator():
    """The light board's firmware behind a pty, with no heart rate of its own."""
    board = BoardEmulator(heart_rate=None).start()
    yield board
    board.stop()


@pytest.fixture
def fake_source():
    return FakeSource()


@pytest.fixture
def fake_camera(fake_source):
    camera = Camera(fake_source, kind="fake", width=64, height=48, idle_timeout=0.2)
    yield camera
    camera.stop()


@pytest.fixture
def settings(tmp_path):
    return Settings(media_dir=str(tmp_path / "media"), log_file=str(tmp_path / "flask.log"),
                    config_path=str(tmp_path / "config.txt"),      # /cameras/add writes here, never the project's
                    userkey="sesame", idle_timeout=0.5)


@pytest.fixture
def app(settings):
    application = create_app(settings)
    yield application
    stop_services(application)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def control(app):
    """Headers that carry the live page's control token."""
    return {"X-Control-Token": app.config["CONTROL_TOKEN"]}


@pytest.fixture
def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_test_video(path, frames=20, fps=10, size=(160, 120)):
    """A small MJPEG AVI whose frame i is filled with brightness 10*i, so frames can be told apart."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write the test video"
    for index in range(frames):
        writer.write(np.full((size[1], size[0], 3), (10 * index) % 256, np.uint8))
    writer.release()
    return path


@pytest.fixture
def video_file(tmp_path):
    return write_test_video(tmp_path / "clip.avi")


def read_one_part(client, url="/video_feed"):
    """The first MJPEG part of a stream: (headers dict, jpeg bytes)."""
    response = client.get(url, buffered=False)
    try:
        chunks = iter(response.response)
        assert next(chunks) == b"--frame\r\n"
        return parse_part(next(chunks))
    finally:
        response.close()


def parse_part(part):
    head, _, rest = part.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
    length = int(headers["Content-Length"])
    assert rest[length:] == b"\r\n--frame\r\n", "the boundary must follow the JPEG at once"
    return headers, rest[:length]


def in_ci():
    return bool(os.environ.get("CI"))


def unavailable(message):
    """A missing tool: a failure under CI (which installs everything), a skip that says why elsewhere."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def wait_for(predicate, timeout=10.0):
    """Poll a condition the threads will reach (tests assert outcomes, not timings)."""
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        event.wait(0.01)
    return predicate()


CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path():
    """Debian's chromium; a failure under CI, a skip that says why elsewhere."""
    found = [path for path in CHROMIUM_PATHS if shutil.which(path)]
    if found:
        return found[0]
    unavailable("Debian's chromium is not installed (apt install chromium; ./run_tests.sh does it)")


@pytest.fixture
def browser_page():
    """A fresh page in headless chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser.new_page()
        browser.close()


def set_hidden(page, hidden):
    """What switching to another tab does to a page: visibilityState and a visibilitychange event."""
    page.evaluate("""hidden => {
      Object.defineProperty(document, 'hidden', { value: hidden, configurable: true });
      Object.defineProperty(document, 'visibilityState', { value: hidden ? 'hidden' : 'visible', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    }""", hidden)


@pytest.fixture
def live_server(tmp_path, free_port):
    """The real server (gunicorn, gevent worker) on the demo camera; its base URL."""
    from server_process import start_server, stop_server
    process = start_server(tmp_path, free_port)
    yield f"http://127.0.0.1:{free_port}"
    stop_server(process)


@contextlib.contextmanager
def small_tmpfs(folder, size="2m"):
    """A tmpfs of ``size`` mounted on ``folder`` (made if needed) for a disk that fills up; needs root."""
    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


class Held:
    """Stands in for ``function``: each call waits until the test sets ``let_go`` (3 s at most)."""

    def __init__(self, function):
        self.function = function
        self.entered, self.let_go = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        self.entered.set()
        self.let_go.wait(3)
        return self.function(*args, **kwargs)


def other_greenlets_run_while_held(send, held):
    """Run ``send()`` in a greenlet until it waits in ``held`` (anything with ``entered`` and ``let_go``
    events); other greenlets must go on running meanwhile. Then let go; answers what send() returned."""
    import gevent
    request = gevent.spawn(send)
    for _ in range(500):
        if held.entered.is_set():
            break
        gevent.sleep(0.01)
    assert held.entered.is_set(), "the call never reached the held function"
    ticks = []
    gevent.spawn(lambda: [ticks.append(gevent.sleep(0.001)) for _ in range(50)]).join(10)
    assert len(ticks) == 50 and not request.ready()      # the others ran while the request waited
    held.let_go.set()
    return request.get(timeout=10)


def top_level_boxes(path):
    """The top-level MP4 box types, read independently of the recorder's own parser."""
    kinds, data = [], path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        kinds.append(kind.decode("latin-1"))
        offset += size
    return kinds
