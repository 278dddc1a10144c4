"""The media catalogue's command line: ``python database_manager.py --help`` (also ``flask --app app media``).

The commands are in camera_server/media/cli.py.
"""
from camera_server.media.cli import main, media_cli

__all__ = ["main", "media_cli"]

if __name__ == "__main__":
    main()
