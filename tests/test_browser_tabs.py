"""Several live pages open at once in one chromium (which opens at most 6 connections per server):
with ?view=mjpeg each holds one long connection, the MJPEG stream, and lets go of it while hidden, so
every page still loads, answers and shows the heart rate (the light is on the board emulator). The
pages that draw over the WebSocket (the default) hold none of the 6, and a hidden one unsubscribes."""
import socket

import pytest

from conftest import chromium_path, set_hidden, wait_for
from server_process import start_server, status, stop_server

PAGES = 5                   # 5 streams leave one of chromium's 6 connections for everything else
STATUS_ANSWERS = """async () => {
  const response = await fetch('/status', { signal: AbortSignal.timeout(5000) });
  return response.ok;
}"""
HEART_RATE_SHOWN = "/^[0-9]+$/.test(document.querySelector('#heart-rate').textContent)"
STREAM_SHOWN = "document.getElementById('stream').naturalWidth > 0"
FRAMES_DRAWN = "Number(document.getElementById('stream-canvas').dataset.frames)"
CANVAS_DRAWN = f"{FRAMES_DRAWN} > 0"


@pytest.fixture
def server(tmp_path):
    chromium_path()                       # skips (or fails under CI) before starting a server for nothing
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_server(tmp_path, port, light="true", tty="emulator")
    yield port
    stop_server(process)


def test_five_live_pages_at_once_all_answer_and_show_the_heart_rate(server, browser_page):
    tabs = browser_page.context.browser.new_context()     # one profile: its pages share connections like tabs
    pages = [tabs.new_page() for _ in range(PAGES)]
    for page in pages:
        page.set_default_timeout(10000)
        page.goto(f"http://127.0.0.1:{server}/?view=mjpeg")
        page.wait_for_function(STREAM_SHOWN)
    for page in pages:
        page.wait_for_function(HEART_RATE_SHOWN)
        assert page.evaluate(STATUS_ANSWERS) is True
    assert wait_for(lambda: status(server)["camera"]["viewers"] == PAGES)

    for page in pages[1:]:
        set_hidden(page, True)
    assert wait_for(lambda: status(server)["camera"]["viewers"] == 1)   # hidden pages let go of the stream
    assert pages[0].evaluate(STATUS_ANSWERS) is True

    set_hidden(pages[1], False)
    pages[1].wait_for_function("document.getElementById('stream').src.includes('/video_feed')")
    assert wait_for(lambda: status(server)["camera"]["viewers"] == 2)
    pages[1].wait_for_function(HEART_RATE_SHOWN)


def test_socket_pages_hold_none_of_the_six_connections_and_a_hidden_one_unsubscribes(server, browser_page):
    tabs = browser_page.context.browser.new_context()
    pages = [tabs.new_page() for _ in range(PAGES + 3)]            # more than 6 pages: no stream holds a connection
    for page in pages:
        page.set_default_timeout(10000)
        page.goto(f"http://127.0.0.1:{server}/")
        page.wait_for_function(CANVAS_DRAWN)
    for page in pages:
        page.wait_for_function(HEART_RATE_SHOWN)
        assert page.evaluate(STATUS_ANSWERS) is True
    assert wait_for(lambda: status(server)["camera"]["viewers"] == len(pages))

    for page in pages[1:]:
        set_hidden(page, True)
    assert wait_for(lambda: status(server)["camera"]["viewers"] == 1)
    drawn = pages[1].evaluate(FRAMES_DRAWN)
    pages[1].wait_for_timeout(1000)
    assert pages[1].evaluate(FRAMES_DRAWN) <= drawn + 2            # at most the frames on their way
    set_hidden(pages[1], False)
    pages[1].wait_for_function(f"{FRAMES_DRAWN} > {drawn + 5}")
    assert wait_for(lambda: status(server)["camera"]["viewers"] == 2)
