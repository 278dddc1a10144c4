"""Small JPEG pictures of the media for the gallery, made once and kept.

A picture is decoded and shrunk with OpenCV, a video from its first frame (decoded with PyAV). The
thumbnail of ``a.mp4`` is kept as ``.thumbnails/a.mp4.jpg`` in the media folder: hidden, so the
catalogue's scan, retention and /media never see it. Its modification time is set to the media
file's, so it is used while the media file is unchanged and made again when the file changes. The
media file is never opened through a symbolic link, nor is the thumbnail folder used through one.
Keeping a thumbnail is optional: when the disk is full or read-only, the one made is answered anyway.
"""
import contextlib
import logging
import os
import secrets

import av
import cv2
import numpy as np
import simplejpeg

from camera_server.media.fields import guess_kind
from camera_server.media.files import TEMPORARY_PREFIX, being_written, media_path, open_regular_file

log = logging.getLogger(__name__)

THUMBNAIL_FOLDER = ".thumbnails"
WIDTH = 320                         # pixels; a smaller picture is not made larger
JPEG_QUALITY = 80
MAX_PICTURE_BYTES = 64 * 1024 ** 2  # a larger "picture" is not decoded (it would take that much memory and more)
# How OpenCV decodes a picture 1, 2, 4 or 8 times smaller (a JPEG by scaling its DCT: much less work).
REDUCED_DECODING = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                    8: cv2.IMREAD_REDUCED_COLOR_8}


def thumbnail_path(media_dir, filename):
    """Where the thumbnail of the media file ``filename`` is kept: ``media_dir/.thumbnails/<filename>.jpg``."""
    name = media_path(media_dir, filename).name        # a plain name in the folder, or a MediaNameError
    return media_path(media_dir, THUMBNAIL_FOLDER) / f"{name}.jpg"


def make_thumbnail(media_dir, filename, width=WIDTH):
    """The JPEG thumbnail of the media file ``filename``, at most ``width`` pixels wide: the one kept
    while the file is unchanged, else made now (and kept, when the disk lets it). Only the gallery's
    width (WIDTH) is kept. None when there is no plain file of that name (absent, a symbolic link, a
    folder) or it cannot be decoded."""
    source = media_path(media_dir, filename)
    handle = open_regular_file(source)                  # never through a symbolic link
    if handle is None:
        return None
    with handle:
        modified_ns = os.fstat(handle.fileno()).st_mtime_ns
        kept = _kept(source.parent, _kept_name(source), modified_ns) if width == WIDTH else None
        if kept is not None:
            return kept
        image = _first_frame(handle) if guess_kind(source.name) == "video" else _picture(handle, width)
    if image is None:
        log.info("no thumbnail of %s: it cannot be decoded", source.name)
        return None
    jpeg = _shrunk_jpeg(image, width)
    if width == WIDTH and not being_written(source):    # a recording goes on changing: not kept
        try:
            _keep(source.parent, _kept_name(source), jpeg, modified_ns)
        except OSError as error:                # a full or read-only disk: answered, not kept
            log.warning("the thumbnail of %s is not kept: %s", source.name, error)
    return jpeg


def remove_thumbnail(media_dir, filename):
    """Delete the thumbnail of ``filename``, if there is one (called when the media file is deleted)."""
    try:
        source = media_path(media_dir, filename)
    except ValueError:                          # a name no thumbnail can have
        return
    try:
        with _thumbnail_folder(source.parent) as folder:
            os.unlink(_kept_name(source), dir_fd=folder)
    except FileNotFoundError:
        return
    except OSError as error:
        log.warning("could not delete the thumbnail of %s: %s", source.name, error)


def _kept_name(source):
    return f"{source.name}.jpg"


@contextlib.contextmanager
def _thumbnail_folder(media_dir, create=False):
    """A descriptor of media/.thumbnails, never through a symbolic link (an OSError then, ELOOP)."""
    path = os.path.join(media_dir, THUMBNAIL_FOLDER)
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
    folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield folder
    finally:
        os.close(folder)


def _kept(media_dir, name, modified_ns):
    """The kept thumbnail when it was made from the media file as it is now (same modification time)."""
    try:
        with _thumbnail_folder(media_dir) as folder:
            descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:                             # none kept yet, or nothing usable
        return None
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if status.st_mtime_ns != modified_ns or status.st_size > MAX_PICTURE_BYTES:
            return None
        jpeg = handle.read()
    # A thumbnail cut short (a power cut before the disk had it) is made again.
    return jpeg if jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9") else None


def _keep(media_dir, name, jpeg, modified_ns):
    """Write the thumbnail whole or not at all (a temporary, then os.replace), with the media file's
    modification time."""
    with _thumbnail_folder(media_dir, create=True) as folder:
        temporary = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}.jpg"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666, dir_fd=folder)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(jpeg)
                handle.flush()
                os.utime(handle.fileno(), ns=(modified_ns, modified_ns))
            os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise


def _picture(handle, width):
    """The picture in the open file as a BGR image (a large JPEG decoded smaller), or None."""
    if os.fstat(handle.fileno()).st_size > MAX_PICTURE_BYTES:
        return None
    data = handle.read()
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED_DECODING[_reduction(data, width)])


def _reduction(data, width):
    """How many times smaller a JPEG may be decoded and still be as large as its thumbnail: a
    20000-pixel panorama takes gigabytes and seconds at full size. 1 for other pictures."""
    try:
        height, wide, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:          # not a JPEG (or not one simplejpeg reads): OpenCV decodes it whole
        return 1
    if not wide or not height:
        return 1
    scale = _scale(wide, height, width)
    return max(factor for factor in REDUCED_DECODING if factor * scale <= 1)


def _first_frame(handle):
    """The first frame of the video in the open file as a BGR image, or None."""
    try:
        with av.open(handle, mode="r") as container:
            if not container.streams.video:
                return None
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="bgr24")
    except (av.FFmpegError, ValueError, EOFError):
        return None
    return None


def _shrunk_jpeg(image, width):
    """``image`` at most ``width`` pixels wide (and at most twice that high), as JPEG bytes."""
    height, wide = image.shape[:2]
    scale = _scale(wide, height, width)
    if scale < 1.0:
        size = (max(1, round(wide * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    encoded, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not encoded:
        raise ValueError("OpenCV could not encode the thumbnail")
    return jpeg.tobytes()


def _scale(wide, height, width):
    """How much a picture ``wide`` x ``height`` is shrunk for a thumbnail ``width`` wide (and at most
    twice that high); never enlarged."""
    return min(1.0, width / wide, 2 * width / height)
