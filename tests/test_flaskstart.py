"""The README's first command: flaskstart.sh starts gunicorn on the demo camera and logs to a file."""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest

from conftest import top_level_boxes, unavailable, wait_for
from server_process import ROOT, start_server, status, stop_server, write_config


def test_flaskstart_serves_the_demo_camera(tmp_path, free_port, monkeypatch):
    monkeypatch.setenv("VENV", sys.prefix)       # the test's own virtual environment, already set up
    # The port only in config.txt, not in PORT: the address the script prints must name it.
    config = write_config(tmp_path, port=free_port).rename(tmp_path / "config_with_port.txt")
    command = ["env", "-u", "PORT", f"CONFIG_FILE={config}", str(ROOT / "flaskstart.sh")]
    process = start_server(tmp_path, free_port, command=command)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/video_feed", timeout=10) as stream:
            assert stream.read(9) == b"--frame\r\n"
            assert b"Content-Length" in stream.readline() + stream.readline()
        assert status(free_port)["camera"]["camera"] == "demo"
    finally:
        process.send_signal(signal.SIGINT)            # Ctrl-C
        terminal = stop_server(process)
    assert process.returncode == 0
    assert f":{free_port} (log: {tmp_path / 'flask.log'})" in terminal
    assert "camera: camera demo: opened demo pattern" in terminal     # camera messages in the terminal
    log = (tmp_path / "flask.log").read_text()
    assert "GET /status" in log                                       # the rest in the log file
    assert "GET /status" not in terminal


@pytest.mark.parametrize("setting, message", [
    ({"motion_mask": "1,2"}, "cannot start: motion mask 1"),           # passes load_settings, fails create_app
    ({"fps": "fast"}, "config error: fps = 'fast' is not a number"),   # fails in gunicorn.conf.py already
])
def test_a_server_that_cannot_start_stops_with_one_message_and_exit_code_3(tmp_path, free_port, monkeypatch,
                                                                            setting, message):
    """gunicorn reboots a worker that exits with 1 forever, and the systemd unit restarts a server that
    exits with anything but 3: a start-up error must halt both, saying why once."""
    monkeypatch.setenv("VENV", sys.prefix)
    config = write_config(tmp_path, **setting)
    environment = dict(os.environ, CONFIG_FILE=str(config), PORT=str(free_port))
    try:
        finished = subprocess.run([str(ROOT / "flaskstart.sh")], cwd=ROOT, env=environment, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except subprocess.TimeoutExpired as running:
        pytest.fail(f"the server kept rebooting its worker:\n{running.output[-2000:]}")
    assert finished.returncode == 3, finished.stdout
    assert finished.stdout.count(message) == 1, finished.stdout


def test_gunicorn_access_lines_go_to_the_rotating_log_file_and_its_own_to_the_terminal(tmp_path, free_port):
    process = start_server(tmp_path, free_port, log_max_mb=0.01, userkey="sesame")    # about 10 KB a file
    try:
        for _ in range(300):
            status(free_port)
        request = urllib.request.Request(f"http://127.0.0.1:{free_port}/logs?lines=150",
                                         headers={"X-User-Key": "sesame"})
        with urllib.request.urlopen(request, timeout=10) as response:
            tail = response.read().decode().splitlines()
    finally:
        terminal = stop_server(process)
    logs = sorted(tmp_path.glob("flask.log*"))
    assert [path.name for path in logs] == ["flask.log", "flask.log.1", "flask.log.2", "flask.log.3"]
    assert all(path.stat().st_size <= 0.01 * 1024 * 1024 for path in logs)
    assert '"GET /status HTTP/1.1" 200' in logs[1].read_text()          # access lines rotate with the rest
    assert len(logs[0].read_text().splitlines()) < 150
    assert len(tail) == 150 and all("GET /status" in line for line in tail)     # from flask.log.1 and flask.log
    assert "Listening at: http://" in terminal and "GET /status" not in terminal
    assert not any("Listening at" in path.read_text() for path in logs)     # the master writes no file


@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_sigterm_while_watched_and_recording_ends_the_stream_and_finishes_the_recording(
        tmp_path, free_port, monkeypatch, worker):
    """systemctl stop sends SIGTERM to gunicorn's master. A stream never ends by itself, so the worker
    used to wait for it until the master killed it, and the recording stayed unfinished."""
    monkeypatch.setenv("WORKER_CLASS", worker)
    process = start_server(tmp_path, free_port, userkey="sesame")
    try:
        stream = urllib.request.urlopen(f"http://127.0.0.1:{free_port}/video_feed", timeout=10)
        assert stream.read(9) == b"--frame\r\n"
        started = urllib.request.Request(f"http://127.0.0.1:{free_port}/video_capture", data=b"action=start",
                                         headers={"X-User-Key": "sesame"})
        recording = json.load(urllib.request.urlopen(started, timeout=10))["file"]
        assert wait_for(lambda: status(free_port)["recording"]["frames"] > 10)
        process.send_signal(signal.SIGTERM)
        terminal = process.communicate(timeout=60)[0]
        stream.read()                                   # the stream ends: no hang
    finally:
        stop_server(process)
    assert process.returncode == 0, terminal
    assert "graceful timeout" not in terminal
    log = (tmp_path / "flask.log").read_text()
    assert f"recording {recording} ended (shutdown)" in log and "worker stopped, device released" in terminal
    kinds = top_level_boxes(tmp_path / "media" / recording)
    assert "moof" not in kinds and kinds.index("moov") < kinds.index("mdat")    # finished: index in front


# -- the systemd unit ---------------------------------------------------------------------------------
def run_flaskstart(*arguments, **environment):
    return subprocess.run([str(ROOT / "flaskstart.sh"), *arguments], env=dict(os.environ, **environment),
                          text=True, capture_output=True, timeout=60)


def systemd_analyze():
    found = shutil.which("systemd-analyze")
    if found is None:
        unavailable("systemd-analyze is missing (apt install systemd; ./run_tests.sh does it)")
    return found


def test_the_printed_service_unit_passes_systemd_analyze_verify(tmp_path):
    printed = run_flaskstart("--print-service")
    assert printed.returncode == 0, printed.stderr
    unit = tmp_path / "camera-server.service"
    unit.write_text(printed.stdout)
    user = pwd.getpwuid(os.getuid()).pw_name
    for line in (f"User={user}", f"WorkingDirectory={ROOT}", f'ExecStart="{ROOT}/flaskstart.sh"',
                 "Restart=on-failure", "After=network-online.target", "Wants=network-online.target",
                 "KillSignal=SIGTERM", "WantedBy=multi-user.target"):
        assert line in printed.stdout.splitlines(), line
    verified = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify warns about what it ignores (a misspelt setting, a command that is not there) and still exits 0
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")


@pytest.mark.parametrize("sudo_user", ["", "root"])
def test_the_service_is_not_installed_to_run_as_root(tmp_path, sudo_user):
    if os.getuid() != 0:
        unavailable("installing the service is tested as root (CI runs as root)")
    refused = run_flaskstart("--install-service", SUDO_USER=sudo_user, SYSTEMD_UNIT_DIR=str(tmp_path))
    assert refused.returncode != 0 and "not from a root shell" in refused.stderr
    assert list(tmp_path.iterdir()) == []


def test_install_service_writes_the_unit_for_the_sudo_user_and_enables_it(tmp_path):
    if os.getuid() != 0:
        unavailable("installing the service is tested as root (CI runs as root)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl-calls"
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "systemctl").chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    installed = run_flaskstart("--install-service", SUDO_USER="nobody", SYSTEMD_UNIT_DIR=str(units),
                               PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert installed.returncode == 0, installed.stderr
    unit = (units / "camera-server.service").read_text()
    assert unit == run_flaskstart("--print-service", SUDO_USER="nobody").stdout     # one text for both
    assert "User=nobody" in unit.splitlines()
    assert calls.read_text().splitlines() == ["daemon-reload", "enable --now camera-server.service"]
    assert "runs as nobody" in installed.stdout


def test_flaskstart_refuses_an_unknown_option():
    finished = run_flaskstart("--instal-service")
    assert finished.returncode == 2 and "--install-service" in finished.stderr
