"""gunicorn settings for flaskstart.sh. One worker process: it alone owns the camera.

WORKER_CLASS picks the worker: 'gevent' (the default: see the README's benchmarks) or 'gthread'.
Host and port come from config.txt (PORT in the environment overrides the port).
"""
import os
import sys

from camera_server.logging_setup import gunicorn_logconfig
from camera_server.settings import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as error:
    # Exit 3, as app.main_app does: the systemd unit does not restart a server that cannot start.
    print(f"config error: {error}", file=sys.stderr, flush=True)
    sys.exit(3)

bind = f"{_settings.host}:{_settings.port}"
workers = 1
worker_class = {"gevent": "camera_server.web.gunicorn_workers.CameraGeventWorker",
                "gthread": "camera_server.web.gunicorn_workers.CameraThreadWorker"}[
    os.environ.get("WORKER_CLASS", "gevent")]
# A stream holds its connection (and under gthread its thread) for as long as it is watched, so
# there is room for max_viewers streams and the page, /status and the controls beside them.
threads = int(os.environ.get("THREADS", _settings.max_viewers + 64))            # gthread
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", max(1000, _settings.max_viewers + 100)))
control_socket_disable = True     # gunicorn 25+: no runtime control socket in ~/.gunicorn
timeout = 60
# On SIGTERM the services stop at once (camera_server/web/gunicorn_workers.py): the streams end, and a
# recording is finished with its index in front, which for a long one on an SD card takes a while. Past
# this, the worker is killed and the recording stays fragmented (it plays, and the next start repairs it).
graceful_timeout = 30
# Access and error lines go through the worker's rotating log file (log_file, log_max_mb); gunicorn's own
# messages also to the terminal (see camera_server/logging_setup.py). The log line has the time already.
logconfig_dict = gunicorn_logconfig()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def worker_exit(server, worker):
    """Release the camera and the serial board when the worker stops (Ctrl-C, systemctl stop)."""
    application = getattr(worker, "wsgi", None)
    if application is not None:
        from camera_server.web.app import stop_services
        stop_services(application)
