"""The README's first command: flaskstart.sh starts gunicorn on the demo camera and logs to a file."""
import signal
import sys
import urllib.request

from server_process import ROOT, start_server, status, stop_server


def test_flaskstart_serves_the_demo_camera(tmp_path, free_port, monkeypatch):
    monkeypatch.setenv("VENV", sys.prefix)       # the test's own virtual environment, already set up
    process = start_server(tmp_path, free_port, command=[str(ROOT / "flaskstart.sh")])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/video_feed", timeout=10) as stream:
            assert stream.read(9) == b"--frame\r\n"
            assert b"Content-Length" in stream.readline() + stream.readline()
        assert status(free_port)["camera"]["camera"] == "demo"
    finally:
        process.send_signal(signal.SIGINT)            # Ctrl-C
        terminal = stop_server(process)
    assert process.returncode == 0
    assert "camera: camera demo: opened demo pattern" in terminal     # camera messages in the terminal
    log = (tmp_path / "flask.log").read_text()
    assert "GET /status" in log                                       # the rest in the log file
    assert "GET /status" not in terminal
