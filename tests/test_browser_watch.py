"""The scene watch and the recorder on the pages in Debian's chromium, without reloading them:
events appear and end in the lists, and a recording that stops by itself says why."""
import socket

import pytest

from conftest import chromium_path
from server_process import start_server, stop_server

FIRST_ROW = "document.querySelector('#event-rows tr')"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn on the demo camera (a ball that never stops moving), recordings capped at 3 s."""
    chromium_path()                       # skips (or fails under CI) before starting a server for nothing
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_server(tmp_path_factory.mktemp("watch-server"), port, event_quiet_s=0.5,
                           max_recording_minutes=0.05)
    yield f"http://127.0.0.1:{port}"
    stop_server(process)


def open_page(page, url):
    page.goto(url)
    page.evaluate("window.sameDocument = true")     # gone if the page reloads


def test_the_live_page_shows_an_event_start_and_end_without_reloading(server, browser_page):
    page = browser_page
    open_page(page, server + "/")
    assert page.locator("#event-rows tr.empty").inner_text() == "No events yet"
    assert page.locator("#watch-motion").inner_text() == "off"

    page.evaluate("post('/motion/start')")
    page.wait_for_function("document.getElementById('watch-motion').textContent === 'on'", timeout=10000)
    page.wait_for_function(f"{FIRST_ROW}.dataset.event && {FIRST_ROW}.cells[1].textContent === 'going on'",
                           timeout=15000)
    page.wait_for_function("!document.getElementById('watch-event').hidden", timeout=10000)
    assert page.locator("#event-rows tr").first.locator("td").nth(2).inner_text() == "motion"

    page.evaluate("post('/motion/stop')")            # ends the event
    page.wait_for_function(f"{FIRST_ROW}.cells[1].textContent !== 'going on'", timeout=10000)
    page.wait_for_function("document.getElementById('watch-event').hidden", timeout=10000)
    assert page.locator("#watch-motion").inner_text() == "off"
    assert page.evaluate("window.sameDocument") is True


def test_the_watch_page_lists_new_events_without_reloading(server, browser_page):
    page = browser_page
    open_page(page, server + "/watch")
    before = page.locator("#event-rows tr[data-event]").count()
    page.click("#motion-toggle")
    page.wait_for_function(f"document.querySelectorAll('#event-rows tr[data-event]').length > {before}",
                           timeout=15000)
    page.wait_for_function(f"{FIRST_ROW}.cells[1].textContent === 'going on'", timeout=10000)
    page.click("#motion-toggle")
    page.wait_for_function(f"{FIRST_ROW}.cells[1].textContent !== 'going on'", timeout=10000)
    assert page.evaluate("window.sameDocument") is True


def test_a_recording_that_stops_by_itself_says_why_and_is_listed(server, browser_page):
    page = browser_page
    open_page(page, server + "/")
    page.fill("#record-name", "capped")
    page.click("#record")
    page.wait_for_function("document.getElementById('record').classList.contains('recording')")
    page.wait_for_function("!document.getElementById('record-note').hidden", timeout=20000)
    assert "capped.mp4 stopped: reached the maximum length" in page.locator("#record-note").inner_text()
    assert page.locator("#record").inner_text() == "Record"
    page.wait_for_selector("#media-rows tr[data-filename='capped.mp4']", timeout=10000)
    assert page.evaluate("window.sameDocument") is True


def test_both_pages_say_without_reloading_that_the_monitor_saves_nothing_on_a_low_disk(tmp_path, free_port,
                                                                                        browser_page):
    """min_free_mb above any disk's free space: the monitor runs but saves no change, and says why."""
    process = start_server(tmp_path, free_port, min_free_mb=10_000_000)
    server = f"http://127.0.0.1:{free_port}"
    try:
        page = browser_page
        for url in (server + "/", server + "/watch"):
            open_page(page, url)
            assert page.locator("#monitor-not-saving").is_hidden()
            page.evaluate("post('/monitor/start')")
            page.wait_for_function("!document.getElementById('monitor-not-saving').hidden", timeout=15000)
            assert "below min_free_mb = 10000000" in page.locator("#monitor-not-saving").inner_text()
            page.evaluate("post('/monitor/stop')")
            page.wait_for_function("document.getElementById('monitor-not-saving').hidden", timeout=10000)
            assert page.evaluate("window.sameDocument") is True
    finally:
        stop_server(process)
