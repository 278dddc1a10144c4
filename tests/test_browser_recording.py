"""Record 3 s on the demo camera in chromium; the video appears in the list and plays."""


def test_record_three_seconds_then_play_it_in_the_gallery(live_server, browser_page):
    page, server = browser_page, live_server
    page.goto(server + "/")
    page.wait_for_function("Number(document.getElementById('stream-canvas').dataset.frames) > 0")    # the socket draws
    page.fill("#record-name", "browser-clip")
    page.click("#record")
    page.wait_for_function("document.getElementById('record').classList.contains('recording')")
    page.wait_for_timeout(3300)
    page.click("#record")
    page.wait_for_function("!document.getElementById('record').classList.contains('recording')")
    page.wait_for_selector("#media-rows tr[data-filename='browser-clip.mp4']", timeout=10000)

    page.goto(server + "/gallery")
    video = page.locator("figure[data-filename='browser-clip.mp4'] video")
    video.wait_for()
    page.wait_for_function("""() => {
        const video = document.querySelector("figure[data-filename='browser-clip.mp4'] video");
        return video.readyState >= 2 && video.duration > 2;
    }""", timeout=15000)
    assert video.evaluate("v => v.error") is None
    video.evaluate("v => v.play()")
    page.wait_for_function("""() => document.querySelector("figure[data-filename='browser-clip.mp4'] video").currentTime > 0.5""",
                           timeout=10000)
