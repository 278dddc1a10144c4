"""Synthetic scenes with known answers for the motion, change and event tests and the benchmark,
and synthetic ONNX models for the DNN detector (written byte by byte: no onnx package needed).

Each scene is a textured, empty room seen by a slightly noisy camera at FPS frames per second;
``Scene.frames()`` yields ``(timestamp, image)`` pairs (BGR uint8) and is deterministic. What
happens in it, and when, is in the scene's fields, so tests can state the expected answer.
"""
import dataclasses
from pathlib import Path

import cv2
import numpy as np

FPS = 10.0
WIDTH, HEIGHT = 320, 240
CAMERA_NOISE = 3.0          # sigma of the noise every scene has, in grey levels


def room(width=WIDTH, height=HEIGHT, seed=1):
    """An empty room: a shaded wall, a floor, and soft texture, all in mid greys (50 to 190)."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, np.newaxis]
    wall = 120 + 30 * rows + np.zeros((height, width), np.float32)
    wall[int(height * 0.7):] = 90                                     # the floor
    texture = cv2.GaussianBlur(rng.normal(0, 40, (height, width)).astype(np.float32), (0, 0), 3)
    gray = np.clip(wall + texture, 50, 190)
    image = cv2.cvtColor(gray.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    image[..., 0] = np.clip(image[..., 0].astype(np.int16) + 10, 0, 255)   # a bluish tint
    cv2.rectangle(image, (width // 8, height // 6), (width // 3, height // 2), (70, 110, 150), -1)  # a picture
    return image


def draw_person(image, center_x, feet_y, height, shade=(30, 35, 40)):
    """A person-shaped silhouette (head, body, legs) standing at center_x, in place."""
    head = max(height // 8, 2)
    width = max(height // 4, 3)
    cx, top = int(center_x), int(feet_y - height)
    cv2.circle(image, (cx, top + head), head, shade, -1)
    cv2.rectangle(image, (cx - width // 2, top + 2 * head), (cx + width // 2, top + int(height * 0.6)), shade, -1)
    cv2.rectangle(image, (cx - width // 2, top + int(height * 0.6)), (cx - 2, feet_y), shade, -1)
    cv2.rectangle(image, (cx + 2, top + int(height * 0.6)), (cx + width // 2, feet_y), shade, -1)
    return image


def with_noise(image, sigma, rng):
    noisy = image.astype(np.float32) + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@dataclasses.dataclass
class Scene:
    name: str
    seconds: float
    width: int = WIDTH
    height: int = HEIGHT
    fps: float = FPS
    noise: float = CAMERA_NOISE
    seed: int = 7

    def frames(self):
        rng = np.random.default_rng(self.seed)
        background = room(self.width, self.height)
        for index in range(int(round(self.seconds * self.fps))):
            timestamp = index / self.fps
            image = self.render(background.copy(), timestamp)
            yield timestamp, with_noise(image, self.noise, rng) if self.noise else image

    def render(self, image, timestamp):
        return image


@dataclasses.dataclass
class EmptyRoom(Scene):
    name: str = "empty room"
    seconds: float = 10.0


@dataclasses.dataclass
class SensorNoise(Scene):
    """Nothing happens, but the sensor is very noisy (a dark room with high gain)."""
    name: str = "sensor noise"
    seconds: float = 10.0
    noise: float = 15.0


@dataclasses.dataclass
class ObjectEntering(Scene):
    """A person walks in from the left at enter_at, across the room, and out at the right by leave_at."""
    name: str = "object entering"
    seconds: float = 14.0
    enter_at: float = 2.0
    leave_at: float = 6.0

    def render(self, image, timestamp):
        if self.enter_at <= timestamp <= self.leave_at:
            person_height = int(self.height * 0.6)
            margin = person_height // 8
            progress = (timestamp - self.enter_at) / (self.leave_at - self.enter_at)
            x = -margin + progress * (self.width + 2 * margin)
            draw_person(image, x, int(self.height * 0.9), person_height)
        return image


@dataclasses.dataclass
class LightSwitch(Scene):
    """The light goes on at switch_at: every pixel brighter (x1.4 + 30), reached over ramp_frames."""
    name: str = "light switch"
    seconds: float = 10.0
    switch_at: float = 3.0
    ramp_frames: int = 1
    gain: float = 1.4
    offset: float = 30.0

    def render(self, image, timestamp):
        step = int(round((timestamp - self.switch_at) * self.fps)) + 1
        if step <= 0:
            return image
        level = min(step / self.ramp_frames, 1.0)
        gain, offset = 1 + (self.gain - 1) * level, self.offset * level
        return np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


@dataclasses.dataclass
class FlickeringCorner(Scene):
    """A screen in the top right corner flickers (bright and dark every 0.3 s) from flicker_from on."""
    name: str = "flickering corner"
    seconds: float = 10.0
    flicker_from: float = 1.0

    @property
    def flicker_rect(self):
        """(x1, y1, x2, y2) in pixels, inclusive: the corner that flickers."""
        return (self.width - self.width // 6, 0, self.width - 1, self.height // 6)

    def render(self, image, timestamp):
        if timestamp >= self.flicker_from:
            x1, y1, x2, y2 = self.flicker_rect
            bright = int((timestamp - self.flicker_from) * self.fps) // 3 % 2 == 0
            cv2.rectangle(image, (x1, y1), (x2, y2), (235, 235, 235) if bright else (20, 20, 20), -1)
        return image


# --- synthetic ONNX models ------------------------------------------------------------------
# ONNX files are protobuf messages; these few helpers write the fields the models below use
# (ModelProto, GraphProto, NodeProto with INT/INTS attributes, TensorProto, ValueInfoProto).

def _varint(number):
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number, payload):
    """A varint field (int) or a length-delimited one (bytes or str)."""
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor(name, array):
    data_type = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[array.dtype]
    return (b"".join(_field(1, dim) for dim in array.shape) + _field(2, data_type) + _field(8, name)
            + _field(9, array.tobytes()))


def _value_info(name, shape):
    dims = b"".join(_field(1, _field(1, dim)) for dim in shape)
    return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, dims)))


def _attribute(name, value):
    if isinstance(value, int):
        return _field(1, name) + _field(3, value) + _field(20, 2)                      # INT
    return _field(1, name) + b"".join(_field(8, item) for item in value) + _field(20, 7)  # INTS


def onnx_node(op_type, inputs, output, **attributes):
    return (b"".join(_field(1, name) for name in inputs) + _field(2, output) + _field(3, output)
            + _field(4, op_type) + b"".join(_field(5, _attribute(key, value)) for key, value in attributes.items()))


def onnx_model(nodes, initializers, input_shape, output_shape):
    """A model with input 'image' and output 'detections'; initializers are {name: numpy array}."""
    graph = (b"".join(_field(1, node) for node in nodes) + _field(2, "synthetic")
             + b"".join(_field(5, _tensor(name, array)) for name, array in initializers.items())
             + _field(11, _value_info("image", input_shape)) + _field(12, _value_info("detections", output_shape)))
    return _field(1, 7) + _field(2, "camera-server-tests") + _field(7, graph) + _field(8, _field(1, "") + _field(2, 13))


def write_onnx(path, weights, bias, output_shape, input_size=8):
    """output = reshape(mean colour (R, G, B in 0..1) @ weights + bias): a detector with known answers."""
    count = int(np.prod(output_shape))
    nodes = [onnx_node("GlobalAveragePool", ["image"], "pooled"), onnx_node("Flatten", ["pooled"], "flat"),
             onnx_node("Gemm", ["flat", "W", "B"], "dense"), onnx_node("Reshape", ["dense", "shape"], "detections")]
    initializers = {"W": np.asarray(weights, np.float32).reshape(3, count),
                    "B": np.asarray(bias, np.float32).reshape(count),
                    "shape": np.asarray(output_shape, np.int64)}
    Path(path).write_bytes(onnx_model(nodes, initializers, (1, 3, input_size, input_size), output_shape))
    return str(path)


def write_conv_onnx(path, input_size=300, channels=(32, 64, 128, 256, 512), detections=100, seed=0):
    """A stack of stride-2 3x3 convolutions with ReLU and an SSD-shaped output (1, 1, detections, 7).

    Random weights, so it detects nothing real; it costs about as much as a small detector, for the
    benchmark. Returns (path, multiply-accumulates per run).
    """
    rng = np.random.default_rng(seed)
    nodes, initializers, previous, size, macs = [], {}, "image", input_size, 0
    for index, (inputs, outputs) in enumerate(zip((3,) + tuple(channels), channels)):
        weight = f"conv{index}"
        initializers[weight] = (rng.standard_normal((outputs, inputs, 3, 3)) / np.sqrt(9 * inputs)).astype(np.float32)
        nodes.append(onnx_node("Conv", [previous, weight], f"c{index}", kernel_shape=[3, 3], strides=[2, 2],
                               pads=[1, 1, 1, 1]))
        nodes.append(onnx_node("Relu", [f"c{index}"], f"r{index}"))
        size = (size + 1) // 2
        macs += outputs * inputs * 9 * size * size
        previous = f"r{index}"
    count = detections * 7
    initializers["W"] = np.zeros((channels[-1], count), np.float32)
    initializers["B"] = np.zeros(count, np.float32)
    initializers["shape"] = np.asarray((1, 1, detections, 7), np.int64)
    nodes += [onnx_node("GlobalAveragePool", [previous], "pooled"), onnx_node("Flatten", ["pooled"], "flat"),
              onnx_node("Gemm", ["flat", "W", "B"], "dense"), onnx_node("Reshape", ["dense", "shape"], "detections")]
    Path(path).write_bytes(onnx_model(nodes, initializers, (1, 3, input_size, input_size), (1, 1, detections, 7)))
    return str(path), macs
