"""gunicorn settings for flaskstart.sh. One worker process: it alone owns the camera.

WORKER_CLASS picks the worker: 'gevent' (the default: see the README's benchmarks) or 'gthread'.
Host and port come from config.txt (PORT in the environment overrides the port).
"""
import os
import sys

from settings import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as error:
    sys.exit(f"config error: {error}")

bind = f"{_settings.host}:{_settings.port}"
workers = 1
worker_class = {"gevent": "gevent_worker.CameraGeventWorker", "gthread": "gthread"}[
    os.environ.get("WORKER_CLASS", "gevent")]
threads = int(os.environ.get("THREADS", "512"))       # gthread: one thread per open stream
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))   # gevent
timeout = 60
graceful_timeout = 5
accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = os.environ.get("ERROR_LOG", "-")


def worker_exit(server, worker):
    """Release the camera and the serial board when the worker stops (Ctrl-C, systemctl stop)."""
    application = getattr(worker, "wsgi", None)
    if application is not None:
        from app import stop_services
        stop_services(application)
