"""Pictures of the camera: a frame's JPEG written as a new media file and handed to the catalogue.

Snapshots (``picture``) and the scene watch's ``change`` and ``motion`` pictures are all saved here.
"""
from camera_server.media.files import timestamped_name, write_new_file, write_unique_file

# kind -> the prefix of its generated file names; start-up repair reads the kind back from it
NAME_PREFIX = {"picture": "snapshot", "change": "change", "motion": "motion"}


def save_picture(frame, media_dir, kind, catalogue, *, filename=None, camera=None, note=None):
    """Write ``frame``'s JPEG as ``filename`` (a checked media name, never over an existing file) or
    as a new timestamped name, and catalogue it with ``catalogue(filename, kind, **fields)``; answer
    the file's path.

    A catalogue call that raises leaves no file behind: the catalogue never misses a picture it was
    told about, and never lists one that is not there.
    """
    if filename:
        path = write_new_file(media_dir, filename, frame.jpeg)
    else:
        path = write_unique_file(media_dir, timestamped_name(NAME_PREFIX[kind], ".jpg", frame.timestamp), frame.jpeg)
    height, width = frame.image.shape[:2]
    try:
        catalogue(path.name, kind, created=frame.timestamp, width=width, height=height, camera=camera, note=note)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
