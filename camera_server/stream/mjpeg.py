"""The MJPEG wire format: ``multipart/x-mixed-replace``, one JPEG per part.

Each part carries ``Content-Type``, ``Content-Length`` and ``X-Timestamp`` (the capture time) and ends
with the boundary of the next part, so a part is built once per frame and every viewer sends the same
bytes; the response starts with the first boundary.
"""
BOUNDARY = b"frame"
MIMETYPE = "multipart/x-mixed-replace; boundary=" + BOUNDARY.decode()
FIRST_BOUNDARY = b"--" + BOUNDARY + b"\r\n"


def build_part(jpeg, timestamp):
    """One part: its headers, the JPEG, and the next boundary."""
    header = (
        b"Content-Type: image/jpeg\r\n"
        b"Content-Length: %d\r\n"
        b"X-Timestamp: %.6f\r\n\r\n" % (len(jpeg), timestamp)
    )
    return header + jpeg + b"\r\n--" + BOUNDARY + b"\r\n"
