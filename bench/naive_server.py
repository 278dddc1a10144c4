"""The naive baseline for bench_stream.py: the MJPEG server of the common Flask tutorials.

Every viewer's request generator opens its own DemoSource, renders and JPEG-encodes every frame
itself with cv2.imencode and paces itself to the frame rate with time.sleep. So N viewers cost N
cameras' worth of rendering and encoding. Same part format as the real server (boundary "frame",
Content-Length, X-Timestamp) so the same client measures both.

Run (bench_stream.py does this):
    gunicorn -k gthread --threads 128 -b 127.0.0.1:5078 --chdir bench naive_server:app
Environment: NAIVE_WIDTH, NAIVE_HEIGHT, NAIVE_FPS, NAIVE_QUALITY (default 640, 480, 30, 80 - the
real server's jpeg_quality default, so both encode at the same quality).
"""
import os
import sys
import threading
import time

import cv2
from flask import Flask, Response, jsonify

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from camera_server.capture.demo import DemoSource  # noqa: E402  (the repo root is added above)

WIDTH = int(os.environ.get("NAIVE_WIDTH", "640"))
HEIGHT = int(os.environ.get("NAIVE_HEIGHT", "480"))
FPS = float(os.environ.get("NAIVE_FPS", "30"))
QUALITY = int(os.environ.get("NAIVE_QUALITY", "80"))

app = Flask(__name__)
_viewers = 0
_viewers_lock = threading.Lock()


def gen_frames():
    global _viewers
    camera = DemoSource(WIDTH, HEIGHT, FPS)
    camera.open()
    with _viewers_lock:
        _viewers += 1
    try:
        yield b"--frame\r\n"
        next_due = time.monotonic()
        while True:
            image = camera.read()
            ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
            if not ok:
                continue
            jpeg = buffer.tobytes()
            yield (b"Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %.6f\r\n\r\n"
                   % (len(jpeg), time.time()) + jpeg + b"\r\n--frame\r\n")
            next_due += camera.frame_interval
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_due = time.monotonic()
    finally:
        camera.close()
        with _viewers_lock:
            _viewers -= 1


@app.route("/video_feed")
def video_feed():
    return Response(gen_frames(), mimetype="multipart/x-mixed-replace; boundary=frame")


@app.route("/status")
def status():
    return jsonify(camera={"state": "streaming" if _viewers else "stopped", "viewers": _viewers})
