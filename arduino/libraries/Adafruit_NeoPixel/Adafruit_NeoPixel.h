// COMPILE-ONLY STAND-IN for Adafruit's NeoPixel library (the subset heartlight uses).
// It lets tests build the sketch for the 32u4 and on the host; it drives no LEDs.
// To flash a board, install the real "Adafruit NeoPixel" library (see ../../README.md).
// Methods starting with "stub" exist only here, for the host tests.
#ifndef ADAFRUIT_NEOPIXEL_H
#define ADAFRUIT_NEOPIXEL_H

#include <stdint.h>
#include <stdlib.h>

typedef uint16_t neoPixelType;

// Same values as the real library: bits 6-7 white offset, 4-5 red, 2-3 green, 0-1 blue.
#define NEO_GRB ((1 << 6) | (1 << 4) | (0 << 2) | (2))
#define NEO_GRBW ((3 << 6) | (1 << 4) | (0 << 2) | (2))
#define NEO_KHZ800 0x0000

struct StubPixel {
  uint8_t red;
  uint8_t green;
  uint8_t blue;
  uint8_t white;
};

class Adafruit_NeoPixel {
 public:
  Adafruit_NeoPixel(uint16_t n, int16_t pin = 6, neoPixelType type = NEO_GRB + NEO_KHZ800)
      : count_(n), pin_(pin), type_(type), brightness_(255), shows_(0), begun_(false),
        pixels_((StubPixel*)calloc(n, sizeof(StubPixel))) {}
  ~Adafruit_NeoPixel() { free(pixels_); }

  void begin() { begun_ = true; }
  void show() { ++shows_; }
  void setBrightness(uint8_t brightness) { brightness_ = brightness; }
  uint8_t getBrightness() const { return brightness_; }
  uint16_t numPixels() const { return count_; }
  void clear() {
    for (uint16_t i = 0; i < count_; ++i) pixels_[i] = StubPixel();
  }
  void setPixelColor(uint16_t n, uint8_t r, uint8_t g, uint8_t b) { setPixelColor(n, r, g, b, 0); }
  void setPixelColor(uint16_t n, uint8_t r, uint8_t g, uint8_t b, uint8_t w) {
    if (n >= count_) return;
    pixels_[n].red = r;
    pixels_[n].green = g;
    pixels_[n].blue = b;
    pixels_[n].white = w;
  }

  const StubPixel& stubPixel(uint16_t n) const { return pixels_[n]; }
  unsigned long stubShows() const { return shows_; }
  bool stubBegun() const { return begun_; }
  neoPixelType stubType() const { return type_; }
  int16_t stubPin() const { return pin_; }

 private:
  Adafruit_NeoPixel(const Adafruit_NeoPixel&);
  Adafruit_NeoPixel& operator=(const Adafruit_NeoPixel&);

  uint16_t count_;
  int16_t pin_;
  neoPixelType type_;
  uint8_t brightness_;
  unsigned long shows_;
  bool begun_;
  StubPixel* pixels_;
};

#endif
