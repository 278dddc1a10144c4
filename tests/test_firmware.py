"""The firmware in arduino/: host tests built with g++, the emulator checked against it, the 32u4 build."""
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from camera_server.board import emulator
from conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent
ARDUINO = ROOT / "arduino"
AVR_CORE = Path("/usr/share/arduino/hardware/arduino/avr")
BUILDER_PLATFORM = Path("/usr/share/arduino-builder")


def require_tool(available, what):
    """A missing tool fails under CI and skips, saying why, elsewhere."""
    if not available:
        unavailable(f"{what} is not installed (./run_tests.sh installs it; CI requires it)")


@pytest.fixture(scope="module")
def host_tests(tmp_path_factory):
    """The sketch and its host tests, compiled with g++ against arduino/host/ stubs."""
    compiler = shutil.which("g++")
    require_tool(compiler, "g++ (apt install g++)")
    binary = tmp_path_factory.mktemp("firmware") / "test_heartlight"
    command = [compiler, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-O1",
               f"-I{ARDUINO / 'host'}", f"-I{ARDUINO / 'libraries' / 'Adafruit_NeoPixel'}",
               "-include", "Arduino.h", str(ARDUINO / "host" / "test_heartlight.cpp"),
               str(ARDUINO / "host" / "arduino_host.cpp"), "-lm", "-o", str(binary)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return binary


def test_host_tests_pass(host_tests):
    result = subprocess.run([str(host_tests)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout


def emulator_reading(stream):
    """How the board emulator takes a byte stream, in the firmware's --parse format."""
    out = []
    for line, too_long in emulator.LineAssembler().feed(stream):
        message = None if too_long else emulator.parse_message(line)
        if message is None:
            out.append("reject")
            continue
        rgbw = emulator.pixel_for(message, strip_has_white=True)
        rgb = emulator.pixel_for(message, strip_has_white=False)
        parts = (message.red, message.green, message.blue, message.white, message.brightness,
                 int(message.explicit_white), "rgbw", *rgbw, "rgb", *rgb)
        out.append("ok " + " ".join(map(str, parts)))
    return out


def sample_lines():
    fixed = ["FF000080", "ff8000c0", "FFFFFF20", "808080FF", "0102030405", "0A0B0C0D0E", "C8C8C800FF",
             "FFFFFFFFFF", "00000000", "", "FF00008", "FF0000800", "FF000080000", "GG000080", "FF 00080",
             "#FF00080", "\rFF00\r0080\r", "F" * 32, "F" * 33, "F" * 100, "12345678\r\r"]
    generator = random.Random(4)  # the same lines every run
    alphabet = "0123456789abcdefABCDEF" * 4 + "gG #x\r-"
    randomized = ["".join(generator.choice(alphabet) for _ in range(generator.choice([7, 8, 8, 9, 10, 10, 11, 40])))
                  for _ in range(400)]
    return fixed + randomized


def test_the_emulator_takes_every_line_as_the_firmware_does(host_tests):
    stream = "".join(line + "\n" for line in sample_lines()).encode("ascii")
    result = subprocess.run([str(host_tests), "--parse"], input=stream, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    firmware = result.stdout.decode().splitlines()
    assert len(firmware) == len(sample_lines())
    assert "reject" in firmware and sum(line.startswith("ok") for line in firmware) > 50
    assert emulator_reading(stream) == firmware


@pytest.mark.parametrize("pixel_has_white", [1, 0])
def test_the_sketch_compiles_for_the_32u4(tmp_path, pixel_has_white):
    """arduino-builder with Debian's AVR core; the Leonardo stands in for the ItsyBitsy 32u4."""
    builder = shutil.which("arduino-builder")
    require_tool(builder and AVR_CORE.is_dir() and shutil.which("avr-g++"),
                 "arduino-builder and arduino-core-avr (apt install arduino-builder arduino-core-avr)")
    # -DDECIMAL_DIG=9: Debian's avr-gcc 5.4 float.h hides DECIMAL_DIG from C++, which the core needs.
    flags = f"-DDECIMAL_DIG=9 -DPIXEL_HAS_WHITE={pixel_has_white}"
    command = [builder, "-compile", "-hardware", str(AVR_CORE.parent.parent), "-hardware", str(BUILDER_PLATFORM),
               "-tools", "/usr/bin", "-libraries", str(ARDUINO / "libraries"),
               "-fqbn", "arduino:avr:leonardo", f"-prefs=compiler.cpp.extra_flags={flags}",
               "-warnings", "all", "-build-path", str(tmp_path),
               str(ARDUINO / "heartlight" / "heartlight.ino")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (tmp_path / "heartlight.ino.hex").stat().st_size > 0
    ours = [line for line in output.splitlines() if "warning" in line and str(ARDUINO) in line]
    assert ours == []
