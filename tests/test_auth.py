"""The Host check (DNS rebinding), the cross-site check, the security headers and the optional login."""
import base64
import os
import socket
import subprocess
import sys
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from camera_server.settings import ConfigError, load_settings
from camera_server.web import auth
from camera_server.web.app import create_app, stop_services
from camera_server.web.logins import LockedOut, Logins
from conftest import read_one_part, wait_for

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def log_in(client, key="sesame", next_path="/"):
    return client.post("/login", data={"userkey": key, "next": next_path})


# The Host check

@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:5000", "192.168.1.20",
                                  "[::1]:5000", "[fe80::1]", "LOCALHOST."])
def test_addresses_and_localhost_are_answered(client, host):
    assert client.get("/status", headers={"Host": host}).status_code == 200


def test_this_machines_name_and_its_local_name_are_answered(client):
    name = socket.gethostname()
    for host in (name, f"{name}:5000", f"{name.split('.')[0]}.local"):
        assert client.get("/status", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("path", ["/", "/status", "/video_feed", "/static/style.css", "/media/x.jpg", "/nowhere"])
def test_another_name_gets_a_400_that_names_the_setting(client, path):
    response = client.get(path, headers={"Host": "rebind.attacker.example:5000"})
    assert response.status_code == 400
    assert "allowed_hosts" in response.get_json()["error"]


def test_a_rebound_name_cannot_change_anything(client, control):
    response = client.post("/grayscale", headers={**control, "Host": "rebind.attacker.example"})
    assert response.status_code == 400
    assert client.get("/status").get_json()["camera"]["grayscale"] is False


def test_a_redirect_never_carries_a_foreign_host(client):
    response = client.get("/media//x.jpg", headers={"Host": "attacker.example"})
    assert response.status_code == 400 and "attacker.example" not in response.headers.get("Location", "")


def test_allowed_hosts_adds_names_and_star_allows_any(settings):
    listed = create_app(settings.replace(allowed_hosts="camera.lan,cam.example.org"))
    anything = create_app(settings.replace(allowed_hosts="*"))
    try:
        for host in ("camera.lan", "cam.example.org:443"):
            assert listed.test_client().get("/status", headers={"Host": host}).status_code == 200
        assert listed.test_client().get("/status", headers={"Host": "other.lan"}).status_code == 400
        assert anything.test_client().get("/status", headers={"Host": "other.lan"}).status_code == 200
    finally:
        stop_services(listed)
        stop_services(anything)


def test_allowed_hosts_in_config_txt(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\nallowed_hosts = Camera.lan, cam.example.org\n")
    assert load_settings(path, environ={}).allowed_hosts == "camera.lan,cam.example.org"
    for wrong in ("http://camera.lan", "camera.lan:5000", "camera lan"):
        path.write_text(f"[SETTINGS]\nallowed_hosts = {wrong}\n")
        with pytest.raises(ConfigError, match="allowed_hosts"):
            load_settings(path, environ={})


def test_an_allowed_host_with_a_final_dot_matches_with_or_without_it(tmp_path, settings):
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\ncamera = demo\nallowed_hosts = Camera.LAN., cam.example.org\n")
    loaded = load_settings(path, environ={})
    assert loaded.allowed_hosts == "camera.lan,cam.example.org"
    for listed in (loaded.allowed_hosts, "Camera.LAN."):        # from config.txt, or given in code as it is
        application = create_app(settings.replace(allowed_hosts=listed))
        try:
            for host in ("camera.lan", "camera.lan.", "CAMERA.LAN.:5000"):
                assert application.test_client().get("/status", headers={"Host": host}).status_code == 200, host
        finally:
            stop_services(application)


# The cross-site check

def test_a_cross_site_post_is_refused_even_with_the_token(client, control):
    response = client.post("/grayscale", headers={**control, "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and "another web site" in response.get_json()["error"]
    assert client.get("/status").get_json()["camera"]["grayscale"] is False


@pytest.mark.parametrize("site", ["same-origin", "same-site", "none"])
def test_posts_from_the_same_site_or_typed_in_pass(client, control, site):
    assert client.post("/grayscale", headers={**control, "Sec-Fetch-Site": site}).status_code == 200


def test_a_cross_site_get_is_still_answered(client):
    assert client.get("/status", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


# Security headers

@pytest.mark.parametrize("path", ["/", "/status", "/static/style.css", "/nowhere"])
def test_every_response_carries_the_security_headers(client, path):
    headers = client.get(path).headers
    for name, value in auth.SECURITY_HEADERS.items():
        assert headers[name] == value, name


def test_the_stream_carries_them_and_still_streams(client):
    response = client.get("/video_feed", buffered=False)
    try:
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.mimetype == "multipart/x-mixed-replace"
    finally:
        response.close()
    headers, jpeg = read_one_part(client)
    assert jpeg.startswith(b"\xff\xd8") and headers["Content-Type"] == "image/jpeg"


# Without require_login

def test_without_require_login_there_is_no_login(client):
    assert client.get("/login").status_code == 404
    page = client.get("/").get_data(as_text=True)
    assert "logout-form" not in page and '<img id="stream"' in page


def test_require_login_without_a_userkey_stops_the_start(settings, tmp_path):
    with pytest.raises(ConfigError, match="require_login.*userkey"):
        create_app(settings.replace(userkey="", require_login=True))
    path = tmp_path / "config.txt"
    path.write_text("[SETTINGS]\ncamera = demo\n[KEYS]\nrequire_login = true\n")
    with pytest.raises(ConfigError, match="userkey"):
        create_app(load_settings(path, environ={}).replace(media_dir=settings.media_dir))


class TestRequireLogin:
    """With require_login: the conftest app, client and control on settings that ask for a login."""

    @pytest.fixture
    def settings(self, settings):
        return settings.replace(require_login=True)

    @pytest.mark.parametrize("path", ["/", "/gallery", "/database", "/watch", "/shows?limit=5"])
    def test_pages_send_a_visitor_to_the_login(self, client, path):
        response = client.get(path, headers=HTML)
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login" and parse_qs(location.query) == {"next": [path]}

    @pytest.mark.parametrize("path", ["/status", "/video_feed", "/get_database", "/events", "/media/x.jpg",
                                      "/monitor/baseline.jpg", "/heart_rate_stream", "/nowhere"])
    def test_everything_else_answers_401_with_where_to_log_in(self, client, path):
        response = client.get(path)
        assert response.status_code == 401
        assert response.get_json()["login"].startswith("/login?next=")

    def test_controls_need_a_login_even_with_the_page_token(self, client, control):
        assert client.post("/grayscale", headers=control).status_code == 401
        assert client.post("/database/new", headers=control, data={"confirm": "yes"}).status_code == 401

    def test_media_need_a_login(self, client):
        name = client.post("/snapshot", headers={"X-User-Key": "sesame"}).get_json()["file"]
        assert client.get(f"/media/{name}").status_code == 401
        log_in(client)
        assert client.get(f"/media/{name}").data.startswith(b"\xff\xd8")

    def test_the_login_page_and_static_files_are_open(self, client):
        page = client.get("/login?next=/gallery").get_data(as_text=True)
        assert 'name="userkey"' in page and 'value="/gallery"' in page
        assert client.get("/static/style.css").status_code == 200

    def test_a_wrong_key_shows_the_form_again_with_a_401(self, client):
        response = log_in(client, "open sesame")
        assert response.status_code == 401 and "Wrong key" in response.get_data(as_text=True)
        assert client.get("/status").status_code == 401

    @pytest.mark.parametrize("body", [{}, {"userkey": ""}, {"userkey": "   "}])
    def test_an_empty_login_asks_for_the_key_and_is_not_counted(self, client, app, body):
        app.extensions["logins"].clock = FakeClock()
        for _ in range(6):
            response = client.post("/login", data={"next": "/gallery", **body})
            page = response.get_data(as_text=True)
            assert response.status_code == 400 and "Enter the key." in page and 'value="/gallery"' in page
        assert log_in(client).status_code == 303

    def test_an_empty_userkey_header_is_not_a_wrong_key(self, client, app):
        app.extensions["logins"].clock = FakeClock()
        for _ in range(6):
            assert client.get("/status", headers={"X-User-Key": ""}).status_code == 401
            assert client.get("/status", headers={"X-User-Key": "  "}).status_code == 401
            assert client.get("/logs", headers={"X-User-Key": " "}).status_code == 401
        assert client.get("/status", headers={"X-User-Key": "sesame"}).status_code == 200

    def test_the_right_key_opens_pages_stream_and_controls(self, client, control):
        response = log_in(client, next_path="/gallery")
        assert response.status_code == 303 and response.headers["Location"] == "/gallery"
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        page = client.get("/", headers=HTML).get_data(as_text=True)
        assert '<img id="stream"' in page and "logout-form" in page
        assert client.get("/status").status_code == 200
        assert read_one_part(client)[1].startswith(b"\xff\xd8")
        assert client.post("/grayscale").status_code == 403        # still the control token
        assert client.post("/grayscale", headers=control).get_json() == {"grayscale": True}

    def test_the_login_page_sends_someone_logged_in_on(self, client):
        log_in(client)
        response = client.get("/login?next=/watch")
        assert response.status_code == 302 and response.headers["Location"] == "/watch"

    def test_logout_needs_the_control_token_and_ends_the_session(self, client, control):
        log_in(client)
        stolen = client.get_cookie("camera_session").value
        assert client.post("/logout").status_code == 403
        assert client.get("/status").status_code == 200
        assert client.post("/logout", headers=control).get_json() == {"logged_out": True}
        assert client.get("/status").status_code == 401
        client.set_cookie("camera_session", stolen)           # a copy kept from before is dead too
        assert client.get("/status").status_code == 401

    def test_the_logout_form_goes_back_to_the_login(self, client, control):
        log_in(client)
        response = client.post("/logout", data={"control_token": control["X-Control-Token"]}, headers=HTML)
        assert response.status_code == 303 and response.headers["Location"] == "/login"

    def test_a_restart_logs_everybody_out(self, client, settings):
        log_in(client)
        cookie = client.get_cookie("camera_session").value
        restarted = create_app(settings)
        try:
            client = restarted.test_client()
            client.set_cookie("camera_session", cookie)
            assert client.get("/status").status_code == 401
        finally:
            stop_services(restarted)

    @pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                        "/\t/evil.example", "javascript:alert(1)", "evil.example", ""])
    def test_next_never_leads_off_the_site(self, client, target):
        response = log_in(client, next_path=target)
        assert response.status_code == 303 and response.headers["Location"] == "/"
        page = client.get(f"/login?next={target}").headers.get("Location")
        assert page == "/"

    def test_the_userkey_header_works_without_a_session(self, client):
        key = {"X-User-Key": "sesame"}
        assert client.get("/status", headers=key).status_code == 200
        assert client.post("/grayscale", headers=key).get_json() == {"grayscale": True}
        assert client.get("/", headers={**key, **HTML}).status_code == 200
        assert client.get("/status", headers={"X-User-Key": "guess"}).status_code == 401

    def test_the_stream_with_the_userkey_header(self, client):
        client.environ_base["HTTP_X_USER_KEY"] = "sesame"
        assert read_one_part(client)[1].startswith(b"\xff\xd8")

    def test_stream_players_get_a_basic_auth_challenge_and_may_answer_it_with_the_userkey(self, client):
        refused = client.get("/video_feed")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="camera"'
        assert "WWW-Authenticate" not in client.get("/status").headers      # the page's polls get no dialog
        assert client.get("/status", auth=("viewer", "guess")).status_code == 401
        client.environ_base["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(b"vlc:sesame").decode()
        assert read_one_part(client)[1].startswith(b"\xff\xd8")

    @pytest.mark.parametrize("request_headers", [
        {"Accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"},        # Chrome's <img>
        {"Accept": "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"},  # Firefox's
        {"Accept": "image/webp,image/avif,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"},
    ])
    def test_the_pages_stream_image_gets_no_basic_challenge(self, client, request_headers):
        """After a restart or a logout the page's <img> reconnects: a challenge would open a browser dialog."""
        for url in ("/video_feed", "/video_feed?connect=1700000000000"):
            refused = client.get(url, headers=request_headers)
            assert refused.status_code == 401 and "WWW-Authenticate" not in refused.headers, url
        reconnect = client.get("/video_feed?connect=1700000000000", headers={"Accept": "*/*"})
        assert reconnect.status_code == 401 and "WWW-Authenticate" not in reconnect.headers
        player = client.get("/video_feed", headers={"Accept": "*/*"})       # VLC, Home Assistant, ffmpeg
        assert player.headers["WWW-Authenticate"] == 'Basic realm="camera"'

    def test_a_lone_surrogate_in_the_key_is_a_400_and_not_counted(self, client, app):
        app.extensions["logins"].clock = FakeClock()
        for _ in range(6):
            response = client.post("/login", json={"userkey": "\ud800"})
            assert response.status_code == 400 and "userkey is not valid text" in response.get_json()["error"]
            response = client.post("/grayscale", json={"userkey": "\ud800", "control_token": "\udfff"})
            assert response.status_code == 400 and "lone surrogate" in response.get_json()["error"]
        assert log_in(client).status_code == 303

    def test_wrong_keys_lock_the_client_out_for_a_while(self, client, app):
        clock = app.extensions["logins"].clock = FakeClock()
        for _ in range(5):
            assert log_in(client, "guess").status_code == 401
        locked = log_in(client)                       # even the right key waits
        assert locked.status_code == 429 and "try again in 30 s" in locked.get_data(as_text=True)
        assert locked.headers["Retry-After"] == "30"
        by_header = client.get("/status", headers={"X-User-Key": "sesame"})
        assert by_header.status_code == 429 and by_header.headers["Retry-After"] == "30"
        assert client.get("/status").status_code == 401
        clock.now += 31
        for _ in range(5):
            assert client.get("/status", headers={"X-User-Key": "guess"}).status_code == 401
        assert log_in(client).status_code == 429        # the second round waits twice as long
        clock.now += 61
        assert log_in(client).status_code == 303
        assert client.get("/status").status_code == 200

    def test_the_key_never_reaches_the_log(self, client, caplog):
        with caplog.at_level("DEBUG"):
            log_in(client, "wrong-key-1234")
            log_in(client)
        assert "wrong-key-1234" not in caplog.text and "sesame" not in caplog.text
        assert "wrong userkey" in caplog.text


def test_the_count_starts_again_after_a_quiet_while_and_stays_bounded():
    clock = FakeClock()
    logins = Logins(allowed_failures=3, lockout_s=10, max_lockout_s=100, max_entries=2, clock=clock)
    for _ in range(2):
        assert logins.check("10.0.0.1", "guess", "key") is False
    clock.now += 101                                    # quiet for max_lockout_s: two wrong keys forgotten
    assert logins.check("10.0.0.1", "guess", "key") is False
    assert logins.check("10.0.0.1", "guess", "key") is False
    assert logins.check("10.0.0.1", "key", "key") is True
    for address in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):   # memory: only the newest max_entries are kept
        logins.check(address, "guess", "key")
    assert len(logins._failures) == 2
    sessions = [logins.start_session() for _ in range(3)]
    assert not logins.has_session(sessions[0]) and logins.has_session(sessions[2])
    assert logins.check("10.0.0.5", "anything", "") is False     # no key configured: nothing matches


def test_after_the_longest_lockout_the_next_one_is_as_long():
    """The lockout itself is not a quiet while: waiting it out does not start the count again."""
    clock = FakeClock()
    logins = Logins(allowed_failures=1, lockout_s=10, max_lockout_s=40, clock=clock)
    lockouts = []
    for _ in range(5):
        assert logins.check("10.0.0.1", "guess", "key") is False
        with pytest.raises(LockedOut) as locked:
            logins.check("10.0.0.1", "guess", "key")
        lockouts.append(locked.value.retry_after)
        clock.now += locked.value.retry_after + 1
    assert lockouts == [10, 20, 40, 40, 40]
    clock.now += 41                                     # quiet for max_lockout_s after it ended: forgotten
    assert logins.check("10.0.0.1", "guess", "key") is False
    with pytest.raises(LockedOut, match="in 10 s"):
        logins.check("10.0.0.1", "guess", "key")


def test_ipv6_clients_are_counted_per_64_and_ipv4_ones_per_address():
    logins = Logins(allowed_failures=3, clock=FakeClock())
    for host in range(1, 4):                            # one client rotating addresses in its /64
        assert logins.check(f"2001:db8:1:2::{host}", "guess", "key") is False
    with pytest.raises(LockedOut):
        logins.check("2001:db8:1:2:aaaa::99", "key", "key")
    assert logins.check("2001:db8:1:3::1", "key", "key") is True        # the next /64 is someone else
    for _ in range(3):
        logins.check("::ffff:192.0.2.1", "guess", "key")  # an IPv4 client on a dual-stack socket
    with pytest.raises(LockedOut):
        logins.check("192.0.2.1", "key", "key")
    assert logins.check("::ffff:192.0.2.2", "key", "key") is True       # not every IPv4 client


def test_a_lone_surrogate_in_the_control_token_or_userkey_is_a_400(client):
    response = client.post("/grayscale", json={"control_token": "\ud800"})
    assert response.status_code == 400 and "control_token is not valid text" in response.get_json()["error"]
    response = client.get("/logs", json={"userkey": "\ud800"})
    assert response.status_code == 400 and "userkey is not valid text" in response.get_json()["error"]


def test_empty_userkeys_on_privileged_routes_are_not_given_and_not_counted(app, client):
    app.extensions["logins"].clock = FakeClock()
    for headers in ({"X-User-Key": ""}, {"X-User-Key": "  "}, {"Authorization": "Basic " + base64.b64encode(b"vlc:").decode()}) * 3:
        response = client.post("/shutdown", headers=headers, data={"userkey": ""})
        assert response.status_code == 401 and "needs the userkey" in response.get_json()["error"]
    assert client.post("/shutdown", headers={"X-User-Key": "sesame"}).status_code == 403     # power control is off


def test_wrong_userkeys_on_privileged_routes_count_too(app, client):
    app.extensions["logins"].clock = FakeClock()
    for _ in range(5):
        assert client.get("/logs", headers={"X-User-Key": "guess"}).status_code == 403
    assert client.get("/logs", headers={"X-User-Key": "sesame"}).status_code == 429


def test_require_login_in_config_txt(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text("[KEYS]\nuserkey = a-long-key\nrequire_login = true\n")
    settings = load_settings(path, environ={})
    assert settings.require_login is True and settings.userkey == "a-long-key"


@pytest.fixture
def login_server(tmp_path, free_port):
    """The real server (gunicorn) with require_login on the demo camera; its base URL.

    server_process.start_server waits for /status, which answers 401 here: this waits for /login.
    """
    from server_process import ROOT as SERVER_ROOT, stop_server, write_config
    config = write_config(tmp_path, userkey="a-long-browser-key", require_login="true")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:main_app()"],
                               cwd=SERVER_ROOT, env=dict(os.environ, CONFIG_FILE=str(config), PORT=str(free_port)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{free_port}"
    try:
        assert wait_for(lambda: _answers(url + "/login") or process.poll() is not None, timeout=120)
        assert process.poll() is None, "the server did not start"
        yield url
    finally:
        print(stop_server(process))


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def test_log_in_through_the_form_then_watch_and_log_out(login_server, browser_page):
    page = browser_page
    page.goto(login_server + "/watch")
    assert page.url.startswith(login_server + "/login?next=")
    page.fill("#userkey", "wrong")
    page.click("#login-form button")
    assert page.locator("#message").inner_text() == "Wrong key."
    page.fill("#userkey", "a-long-browser-key")
    page.click("#login-form button")
    page.wait_for_url(login_server + "/watch")
    page.goto(login_server + "/?view=mjpeg")
    page.wait_for_function("document.getElementById('stream').naturalWidth > 0")   # the <img> sends the cookie
    page.click("#grayscale")
    page.wait_for_function("document.getElementById('grayscale').getAttribute('aria-pressed') === 'true'")

    token = page.get_attribute('meta[name="control-token"]', "content")     # logged out elsewhere:
    page.context.request.post(login_server + "/logout", headers={"X-Control-Token": token})
    page.click("#resolution-toggle")                                        # the next control logs in again
    page.wait_for_url(login_server + "/login?next=%2F%3Fview%3Dmjpeg")
    page.fill("#userkey", "a-long-browser-key")
    page.click("#login-form button")
    page.wait_for_url(login_server + "/?view=mjpeg")
    page.click("#logout-form button")
    page.wait_for_url(login_server + "/login")
    assert page.context.request.get(login_server + "/status").status == 401
