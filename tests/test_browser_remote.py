"""Seed 004's page (/remote) in chromium against the real gunicorn server: the canvas draws the
WebSocket frames, Record and motion detection are sent as controls over that socket (the page's
token), the recording lands in the catalogue and the motion state follows; the live page links to it."""
import json

from conftest import wait_for
from server_process import status

DRAWN = "Number(document.getElementById('stream-canvas').dataset.frames)"


class SocketControls:
    """The control messages the page sends over its WebSocket, and the answers it gets."""

    def __init__(self, page):
        self.sent, self.answers = [], []
        page.on("websocket", self._opened)

    def _opened(self, socket):
        socket.on("framesent", lambda payload: self._note(self.sent, payload))
        socket.on("framereceived", lambda payload: self._note(self.answers, payload))

    @staticmethod
    def _note(into, payload):
        if isinstance(payload, str):
            message = json.loads(payload)
            if message["op"] in ("control", "result") or (message["op"] == "error" and "id" in message):
                into.append(message)


def test_the_remote_page_draws_records_and_switches_motion_over_its_socket(live_server, browser_page):
    page, port = browser_page, int(live_server.rsplit(":", 1)[1])
    page.set_default_timeout(15000)
    controls = SocketControls(page)
    page.goto(f"{live_server}/")
    page.click("nav >> text=Remote")
    page.wait_for_url(f"{live_server}/remote")
    page.wait_for_function(f"{DRAWN} > 3")
    assert page.inner_text("#view-kind") == "JPEG over WebSocket"
    first = page.evaluate(f"{DRAWN}")
    page.wait_for_function(f"{DRAWN} > {first + 5}")

    page.click("#record")
    page.wait_for_function("document.getElementById('record').classList.contains('recording')")
    assert status(port)["recording"]["recording"]
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_function("document.getElementById('message').textContent.startsWith('Saved ')")
    saved = page.inner_text("#message").split()[1]
    assert saved.endswith(".mp4") and not status(port)["recording"]["recording"]
    assert saved in {entry["filename"] for entry in json.loads(page.evaluate(
        "fetch('/get_database').then(answer => answer.text())"))}

    page.click("#motion")
    page.wait_for_function("document.getElementById('motion').getAttribute('aria-pressed') === 'true'")
    assert status(port)["motion"]["on"]
    page.click("#motion")
    page.wait_for_function("document.getElementById('motion').getAttribute('aria-pressed') === 'false'")
    assert not status(port)["motion"]["on"]

    # All four went over the socket with the page's token, and each was answered there.
    assert [message["action"] for message in controls.sent] == ["record/start", "record/stop", "motion/start",
                                                                 "motion/stop"]
    assert all(message["token"] for message in controls.sent)
    assert wait_for(lambda: [answer["status"] for answer in controls.answers] == [200] * 4, timeout=5)
    assert status(port)["camera"]["viewers"] == 1


def test_with_the_socket_refused_the_remote_page_streams_mjpeg_and_posts_its_controls(live_server, browser_page):
    page, port = browser_page, int(live_server.rsplit(":", 1)[1])
    page.set_default_timeout(15000)
    page.route_web_socket("**/ws", lambda socket: socket.close())
    page.goto(f"{live_server}/remote")
    page.wait_for_function("document.getElementById('stream').naturalWidth > 0")
    assert page.inner_text("#view-kind") == "MJPEG (the WebSocket was refused)"
    with page.expect_request(lambda request: request.url.endswith("/motion/start") and request.method == "POST"):
        page.click("#motion")
    page.wait_for_function("document.getElementById('motion').getAttribute('aria-pressed') === 'true'")
    assert status(port)["motion"]["on"]
