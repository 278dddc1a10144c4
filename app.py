"""The camera server. ``python app.py`` runs Flask's development server; ``flaskstart.sh`` runs gunicorn
with ``app:main_app()``; ``flask --app app media ...`` manages the media catalogue.

The code is in the camera_server package (see the README's Architecture section).
"""
from camera_server.web.app import create_app, main_app, stop_services

__all__ = ["create_app", "main_app", "stop_services"]

if __name__ == "__main__":
    application = main_app()
    chosen = application.config["SETTINGS"]
    try:
        application.run(host=chosen.host, port=chosen.port, threaded=True)
    finally:
        stop_services(application)
