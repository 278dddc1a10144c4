"""Start the real server (gunicorn, or flaskstart.sh) in a subprocess for end-to-end tests."""
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_config(folder, **values):
    settings = {"camera": "demo", "width": 320, "height": 240, "fps": 15,
                "media_dir": str(folder / "media"), "log_file": str(folder / "flask.log")}
    settings.update(values)
    path = folder / "config.txt"
    path.write_text("[SETTINGS]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
    return path


def start_server(folder, port, command=None, **config):
    environment = dict(os.environ, CONFIG_FILE=str(write_config(folder, **config)), PORT=str(port))
    command = command or [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:main_app()"]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            status(port)
            return process
        except OSError:
            time.sleep(0.2)
    stop_server(process)
    raise RuntimeError(f"server did not start:\n{process.stdout.read()}")


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as response:
        return json.load(response)


def stop_server(process):
    process.terminate()
    try:
        return process.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]
