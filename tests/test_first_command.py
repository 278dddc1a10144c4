"""The README's first command on a fresh copy: ./flaskstart.sh builds .venv from requirements.txt alone.

The tests' own venv has more packages (pytest and what it pulls in), which once hid a missing
requirement (gunicorn's gevent worker imports packaging). So the project's files are copied without
.venv, config.txt or media, and the real flaskstart.sh builds its venv there as on a user's first run;
then ``python app.py`` runs with that venv. The venv is built once for this module.
"""
import dataclasses
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from server_process import ROOT

FIRST_RUN_TIMEOUT = 300       # seconds: pip installs the requirements from PyPI (its cache after run_tests.sh)
SOI, EOI = b"\xff\xd8", b"\xff\xd9"


@dataclasses.dataclass
class Run:
    exit_code: int
    output: str = dataclasses.field(repr=False)
    page: str = dataclasses.field(repr=False)
    status: dict
    part_headers: dict
    jpeg: bytes = dataclasses.field(repr=False)


def copy_of_the_project(destination):
    """The files git tracks, and untracked ones it does not ignore (work not committed yet)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():          # a tracked file deleted in the work tree is not copied
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def clean_environment(port):
    """The user's shell: no VENV, no virtual environment on PATH, no config or camera variables."""
    # FLASK_*: the flask command line, run by other tests in this process, sets FLASK_RUN_FROM_CLI,
    # which makes app.run() do nothing.
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("VENV", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONFIG_FILE", "CAMERA",
                                  "CAMERA_SOURCE", "WORKER_CLASS", "THREADS", "WORKER_CONNECTIONS")
                   and not key.startswith("FLASK_")}
    environment["PATH"] = os.pathsep.join(folder for folder in os.environ["PATH"].split(os.pathsep)
                                          if not folder.startswith(sys.prefix))
    environment["PORT"] = str(port)
    return environment


def serve_and_read(command, folder, port, timeout=60):
    """Start the server, read /, /status and one JPEG of /video_feed, stop it with Ctrl-C."""
    process = subprocess.Popen(command, cwd=folder, env=clean_environment(port), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        status = _wait_for_status(process, port, timeout)
        page = _get(port, "/").decode()
        part_headers, jpeg = _read_one_jpeg(port)
    except BaseException:
        process.kill()
        print(process.communicate()[0][-4000:])
        raise
    process.send_signal(signal.SIGINT)
    try:
        output = process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        pytest.fail(f"{command[-1]} did not stop on Ctrl-C:\n{output[-4000:]}")
    return Run(process.returncode, output, page, status, part_headers, jpeg)


def _get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read()


def _wait_for_status(process, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server stopped with {process.returncode}:\n{process.stdout.read()[-4000:]}")
        try:
            return json.loads(_get(port, "/status"))
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no answer on port {port} within {timeout} s")


def _read_one_jpeg(port):
    """The first part of the MJPEG stream: its headers and the JPEG its Content-Length names."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/video_feed", timeout=10) as stream:
        assert stream.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        assert stream.readline() == b"--frame\r\n"
        headers = {}
        while (line := stream.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name] = value.strip()
        jpeg = stream.read(int(headers["Content-Length"]))
        assert stream.read(9) == b"\r\n--frame"         # the boundary follows the JPEG at once
    return headers, jpeg


def _requirement_names(path):
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(re.match(r"[A-Za-z0-9._-]+", line).group(0))
    return names


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory):
    return copy_of_the_project(tmp_path_factory.mktemp("fresh") / "flask-video-streaming")


@pytest.fixture(scope="module")
def first_run(fresh_project):
    """The first ./flaskstart.sh: builds .venv, then serves the demo camera (there is no config.txt)."""
    assert not (fresh_project / ".venv").exists() and not (fresh_project / "config.txt").exists()
    return serve_and_read(["./flaskstart.sh"], fresh_project, free_port(), timeout=FIRST_RUN_TIMEOUT)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_served(run):
    assert "/video_feed" in run.page
    assert run.status["camera"]["camera"] == "demo"
    assert run.part_headers["Content-Type"] == "image/jpeg"
    assert int(run.part_headers["Content-Length"]) == len(run.jpeg) > 1000
    assert run.jpeg[:2] == SOI and run.jpeg[-2:] == EOI
    assert run.exit_code == 0, run.output[-4000:]


def test_flaskstart_on_a_fresh_copy_builds_its_venv_and_serves_the_demo_camera(first_run, fresh_project):
    check_served(first_run)
    assert "installing Python packages into .venv" in first_run.output
    assert (fresh_project / ".venv" / "bin" / "gunicorn").exists()


def test_the_fresh_venv_has_the_requirements_and_nothing_from_requirements_dev(first_run, fresh_project):
    """Only requirements.txt went in: a package that only the tests' venv has cannot hide a gap again."""
    python = fresh_project / ".venv" / "bin" / "python"
    dev_packages = _requirement_names(ROOT / "requirements-dev.txt")
    assert "pytest" in dev_packages and importlib.metadata.distribution("pytest")     # the tests' venv has it
    assert installed(python, dev_packages) == []
    needed = ["flask", "gunicorn", "gevent", "packaging", "prometheus_client"]
    assert installed(python, needed) == needed


def installed(python, names):
    """Which of the named distributions the venv of ``python`` has."""
    script = ("import importlib.metadata as metadata, sys\n"
              "for name in sys.argv[1:]:\n"
              "    try:\n        metadata.distribution(name)\n        print(name)\n"
              "    except metadata.PackageNotFoundError:\n        pass\n")
    return subprocess.run([str(python), "-c", script, *names], check=True, capture_output=True,
                          text=True).stdout.split()


def test_python_app_py_serves_with_the_venv_the_first_run_built(first_run, fresh_project):
    run = serve_and_read([str(fresh_project / ".venv" / "bin" / "python"), "app.py"], fresh_project, free_port())
    check_served(run)
