"""board/neopixel.py, the deprecated GPIO backend, with fakes of rpi_ws281x and of its old `neopixel` wrapper."""
import sys
import types

import pytest
from flask import Flask

from camera_server.board.light_model import LedUnavailable
from camera_server.board.neopixel import NeopixelLed
from camera_server.web.light_routes import create_light_blueprint

TOKEN = {"X-Control-Token": "t"}
RGB, GRB = 0x00100800, 0x00081000  # two of the driver's strip type constants


class FakeStrip:
    """rpi_ws281x.PixelStrip: strip_type None means the library's default."""
    instances = []

    def __init__(self, count, pin, freq_hz=800000, dma=10, invert=False, brightness=255, channel=0,
                 strip_type=None, gamma=None):
        self.pixels = [None] * count
        self.pin, self.strip_type, self.brightness, self.shows, self.begun = pin, strip_type, None, 0, False
        type(self).instances.append(self)

    def begin(self):
        self.begun = True

    def setPixelColor(self, index, color):  # noqa: N802 (the library's name)
        self.pixels[index] = color

    def setBrightness(self, value):  # noqa: N802
        self.brightness = value

    def show(self):
        self.shows += 1


def pack(red, green, blue, white=0):
    return (white << 24) | (red << 16) | (green << 8) | blue


class FirstOldStrip(FakeStrip):
    """The old `neopixel` wrapper's first Adafruit_NeoPixel: no strip_type at all."""

    def __init__(self, num, pin, freq_hz=800000, dma=5, invert=False, brightness=255, channel=0):
        super().__init__(num, pin)


class LaterOldStrip(FakeStrip):
    """Its later Adafruit_NeoPixel: strip_type goes straight to the C driver, which wants an int."""

    def __init__(self, num, pin, freq_hz=800000, dma=5, invert=False, brightness=255, channel=0,
                 strip_type=RGB):
        if not isinstance(strip_type, int):
            raise TypeError("in method 'ws2811_channel_t_strip_type_set', argument 2 of type 'int'")
        super().__init__(num, pin, strip_type=strip_type)


def first_old_pack(red, green, blue):
    """The first wrapper's Color: no white."""
    return (red << 16) | (green << 8) | blue


@pytest.fixture
def fake_ws281x(monkeypatch):
    module = types.ModuleType("rpi_ws281x")
    module.PixelStrip, module.Color = FakeStrip, pack
    FakeStrip.instances = []
    monkeypatch.setitem(sys.modules, "rpi_ws281x", module)
    return module


@pytest.fixture(params=[(FirstOldStrip, first_old_pack), (LaterOldStrip, pack)], ids=["first", "later"])
def fake_old_neopixel(request, monkeypatch):
    """Only the old wrapper is installed: `import rpi_ws281x` fails, `import neopixel` works."""
    module = types.ModuleType("neopixel")
    module.Adafruit_NeoPixel, module.Color = request.param
    FakeStrip.instances = []
    monkeypatch.setitem(sys.modules, "rpi_ws281x", None)
    monkeypatch.setitem(sys.modules, "neopixel", module)
    return module


def light_client(led):
    app = Flask(__name__)
    app.config.update(CONTROL_TOKEN="t", USERKEY="")
    app.register_blueprint(create_light_blueprint(lambda: led))
    return app.test_client()


def test_neopixel_backend_drives_the_strip(fake_ws281x):
    led = NeopixelLed(4).start()
    strip = FakeStrip.instances[-1]
    assert led.connected and strip.begun and strip.pixels == [0] * 4 and strip.pin == 18
    assert strip.strip_type is None  # the library's own default
    led.set_color("orange")
    assert strip.pixels == [0] * 4  # off: remembered only
    led.power_led(True)
    led.set_brightness(33)
    assert strip.pixels == [pack(255, 100, 0)] * 4 and strip.brightness == 33
    led.power_led(False)
    assert strip.pixels == [0] * 4
    led.power_led(True)
    assert strip.pixels == [pack(255, 100, 0)] * 4  # the colour was remembered
    with pytest.raises(ValueError):
        led.set_brightness(300)
    led.stop()
    assert strip.pixels == [0] * 4 and not led.connected
    assert led.heart_rate is None and led.heart_rate_history() == []


def test_neopixel_rgbw_strip_lights_white_for_grey(fake_ws281x):
    led = NeopixelLed(2, strip_has_white=True).start()
    led.power_led(True)
    led.set_color("white")
    assert FakeStrip.instances[-1].pixels == [pack(0, 0, 0, 255)] * 2
    led.stop()


def test_neopixel_not_root_is_one_clear_error(fake_ws281x, caplog):
    class NotRoot(FakeStrip):
        def begin(self):
            raise RuntimeError("ws2811_init failed with code -5 (mmap() failed)")

    fake_ws281x.PixelStrip = NotRoot
    with caplog.at_level("ERROR", logger="camera_server.board.neopixel"):
        led = NeopixelLed(3).start()
    assert len(caplog.records) == 1 and "mmap" in caplog.records[0].getMessage()
    with pytest.raises(LedUnavailable, match="mmap"):
        led.set_color("red")
    assert led.status()["connected"] is False


def test_neopixel_numlights_must_be_positive():
    with pytest.raises(ValueError, match="numlights"):
        NeopixelLed(0)


def test_the_old_neopixel_module_drives_the_strip(fake_old_neopixel):
    led = NeopixelLed(3).start()
    strip = FakeStrip.instances[-1]
    assert led.connected and strip.begun and led.status()["last_error"] is None
    led.set_color("0A0B0C20")  # the white part is mixed into R, G, B on an RGB strip
    led.power_led(True)
    assert strip.pixels == [(0x2A << 16) | (0x2B << 8) | 0x2C] * 3
    led.stop()
    assert strip.pixels == [0] * 3


def test_the_later_old_module_takes_a_strip_type(monkeypatch):
    module = types.ModuleType("neopixel")
    module.Adafruit_NeoPixel, module.Color = LaterOldStrip, pack
    monkeypatch.setitem(sys.modules, "rpi_ws281x", None)
    monkeypatch.setitem(sys.modules, "neopixel", module)
    led = NeopixelLed(2, strip_type=GRB).start()
    assert led.connected and FakeStrip.instances[-1].strip_type == GRB
    led.stop()


def test_settings_the_first_old_module_cannot_take_are_one_clear_error(monkeypatch, caplog):
    module = types.ModuleType("neopixel")
    module.Adafruit_NeoPixel, module.Color = FirstOldStrip, first_old_pack
    monkeypatch.setitem(sys.modules, "rpi_ws281x", None)
    monkeypatch.setitem(sys.modules, "neopixel", module)
    with caplog.at_level("ERROR", logger="camera_server.board.neopixel"):
        no_strip_type = NeopixelLed(2, strip_type=GRB).start()
        no_white = NeopixelLed(2, strip_has_white=True).start()
    assert len(caplog.records) == 2
    for led in (no_strip_type, no_white):
        assert not led.connected and "does not take these settings" in led.status()["last_error"]
        with pytest.raises(LedUnavailable, match="rpi_ws281x"):
            led.power_led(True)


def test_a_driver_error_in_a_control_is_a_503_with_the_message(fake_ws281x):
    led = NeopixelLed(2).start()
    strip = FakeStrip.instances[-1]

    def render_fails():
        raise RuntimeError("ws2811_render failed with code -11 (DMA error)")

    strip.show = render_fails
    response = light_client(led).post("/light", data={"state": "on"}, headers=TOKEN)
    assert response.status_code == 503
    assert "ws2811_render failed" in response.get_data(as_text=True)
    assert "ws2811_render failed" in led.status()["last_error"]
    del strip.show  # the driver works again
    assert light_client(led).post("/light", data={"state": "on"}, headers=TOKEN).status_code == 200
    led.stop()
