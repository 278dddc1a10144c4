"""light_model.py: Color, its hex and name forms, and what a strip shows (the board's line: test_trinket)."""
import pytest

from camera_server.board.light_model import Color, build_color


# --- Color ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("FF8000", Color(255, 128, 0)),
    ("#ff8000", Color(255, 128, 0)),
    ("  #FF8000 ", Color(255, 128, 0)),
    ("0A0B0C0D", Color(10, 11, 12, 13)),
    ("#0a0b0c0d", Color(10, 11, 12, 13)),
])
def test_color_from_hex(text, expected):
    assert Color.from_hex(text) == expected
    assert build_color(text) == expected


@pytest.mark.parametrize("text", ["", "#", "FF80", "FF80001", "FF8000112", "GG0000", "FF 800",
                                  "##FF8000", "0xFF8000", "FF8000FF00"])
def test_color_from_bad_hex_says_what_is_expected(text):
    with pytest.raises(ValueError, match="RRGGBB"):
        Color.from_hex(text)


@pytest.mark.parametrize("name, expected", [
    ("red", Color(255, 0, 0)), ("White", Color(255, 255, 255)), ("warm white", Color(255, 160, 60)),
    ("warm_white", Color(255, 160, 60)), ("Warm-White", Color(255, 160, 60)), ("off", Color(0, 0, 0)),
])
def test_color_from_name(name, expected):
    assert build_color(name) == expected


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="RRGGBB.*names: .*warm white"):
        build_color("chartreuse-ish")


def test_build_color_from_parts_and_colors():
    assert build_color(1, 2, 3) == Color(1, 2, 3)
    assert build_color(1, 2, 3, 0) == Color(1, 2, 3, 0)  # an explicit "no white"
    assert build_color(1, 2, 3, 4) == Color(1, 2, 3, 4)
    color = Color(9, 9, 9)
    assert build_color(color) is color


@pytest.mark.parametrize("parts", [(256, 0, 0), (0, -1, 0), (0, 0, 1.5), (True, 0, 0), (1, 2), (1,)])
def test_build_color_rejects_bad_parts(parts):
    with pytest.raises(ValueError):
        build_color(*parts)


def test_to_hex_round_trips():
    for color in (Color(255, 128, 0), Color(1, 2, 3, 4)):
        assert Color.from_hex(color.to_hex()) == color


def test_to_pixel_follows_the_firmware_rgbw_rule():
    assert Color(200, 200, 200).to_pixel(strip_has_white=True) == (0, 0, 0, 200)
    assert Color(200, 100, 0).to_pixel(strip_has_white=True) == (200, 100, 0, 0)
    assert Color(200, 100, 0, 100).to_pixel(strip_has_white=False) == (255, 200, 100, 0)


def test_an_explicit_zero_white_keeps_a_grey_on_the_rgb_leds():
    """Only a grey without a white part lights the white LEDs; `RRGGBB00` says "no white"."""
    grey = Color.from_hex("C8C8C8")
    explicit = Color.from_hex("C8C8C800")
    assert grey.white is None and explicit.white == 0 and grey != explicit
    assert grey.to_pixel(strip_has_white=True) == (0, 0, 0, 200)
    assert explicit.to_pixel(strip_has_white=True) == (200, 200, 200, 0)
    assert explicit.to_hex() == "C8C8C800" and Color.from_hex(explicit.to_hex()) == explicit
    assert explicit.to_pixel(strip_has_white=False) == grey.to_pixel(strip_has_white=False) == (200, 200, 200, 0)
