"""Media: media files and names, the catalogue, the recorder, video files, retention, the command line."""
