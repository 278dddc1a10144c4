// Colour messages from the host: "RRGGBBAA" (AA = brightness) or "RRGGBBWWAA".
#ifndef HEARTLIGHT_COLOR_MESSAGE_H
#define HEARTLIGHT_COLOR_MESSAGE_H

#include <stdint.h>

struct ColorMessage {
  uint8_t red;
  uint8_t green;
  uint8_t blue;
  uint8_t white;
  uint8_t brightness;
  bool explicitWhite;  // the 10-digit form carried a white channel
};

struct PixelColor {
  uint8_t red;
  uint8_t green;
  uint8_t blue;
  uint8_t white;
};

// The value of one hex digit, or -1.
inline int hexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses exactly 8 or 10 hex digits; anything else is rejected and leaves *out alone.
inline bool parseColorMessage(const char* text, uint8_t length, ColorMessage* out) {
  if (length != 8 && length != 10) return false;
  uint8_t bytes[5];
  for (uint8_t i = 0; i < length; i += 2) {
    int high = hexDigitValue(text[i]);
    int low = hexDigitValue(text[i + 1]);
    if (high < 0 || low < 0) return false;
    bytes[i / 2] = (uint8_t)(high * 16 + low);
  }
  out->red = bytes[0];
  out->green = bytes[1];
  out->blue = bytes[2];
  out->explicitWhite = (length == 10);
  out->white = out->explicitWhite ? bytes[3] : 0;
  out->brightness = out->explicitWhite ? bytes[4] : bytes[3];
  return true;
}

inline uint8_t addSaturated(uint8_t a, uint8_t b) {
  return (uint8_t)((a + b > 255) ? 255 : a + b);
}

// What the strip shows. On an RGBW strip an 8-digit grey (R == G == B) lights the white
// channel, as the original firmware did; on an RGB strip white is mixed into R, G and B.
inline PixelColor pixelFor(const ColorMessage& message, bool stripHasWhite) {
  PixelColor pixel = {message.red, message.green, message.blue, message.white};
  if (!stripHasWhite) {
    pixel.red = addSaturated(message.red, message.white);
    pixel.green = addSaturated(message.green, message.white);
    pixel.blue = addSaturated(message.blue, message.white);
    pixel.white = 0;
  } else if (!message.explicitWhite && message.red == message.green && message.green == message.blue) {
    pixel.red = pixel.green = pixel.blue = 0;
    pixel.white = message.red;
  }
  return pixel;
}

#endif
