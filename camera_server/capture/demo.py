"""The built-in demo camera: a moving test pattern with a clock, so the server works with no hardware."""
import math
import time

import cv2
import numpy as np

from camera_server.capture.camera import Source


class DemoSource(Source):
    name = "demo pattern"

    def __init__(self, width=640, height=480, fps=30.0):
        self.width, self.height = width, height
        self.frame_interval = 1.0 / fps
        self._background = None
        self._count = 0

    def open(self):
        self._background = _colour_bars(self.width, self.height)
        self._count = 0

    def read(self):
        self._count += 1
        image = self._background.copy()
        phase = self._count / 30.0
        radius = max(self.height // 10, 4)
        x = int((self.width / 2 - radius) * math.sin(phase) + self.width / 2)
        y = int((self.height / 2 - radius) * math.sin(phase * 1.7) * 0.8 + self.height / 2)
        cv2.circle(image, (x, y), radius, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(image, (x, y), radius // 2, (0, 0, 200), -1, cv2.LINE_AA)
        scale = self.width / 640
        label = time.strftime("%H:%M:%S") + f"  frame {self._count}"
        cv2.rectangle(image, (0, self.height - int(40 * scale)), (self.width, self.height), (0, 0, 0), -1)
        cv2.putText(image, label, (int(10 * scale), self.height - int(12 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.8 * scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        return image

    def close(self):
        self._background = None


def _colour_bars(width, height):
    """Classic colour bars over a soft gradient, in BGR."""
    colours = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0),
               (192, 0, 192), (0, 0, 192), (192, 0, 0)]
    image = np.zeros((height, width, 3), np.uint8)
    bar = max(width // len(colours), 1)
    for index, colour in enumerate(colours):
        image[: height * 2 // 3, index * bar:(index + 1) * bar] = colour
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    image[height * 2 // 3:] = ramp[np.newaxis, :, np.newaxis]
    return image
