// Heart-light firmware for the Adafruit ItsyBitsy 32u4 (see ../README.md).
//
// Reads colour lines "RRGGBBAA\n" (AA = brightness) or "RRGGBBWWAA\n" from both the USB
// serial and the TX/RX serial, sets the Neopixels, samples a pulse sensor every 2 ms from
// a timer interrupt, and prints the heart rate in beats per minute as a decimal line to
// both serials once a second (0 while no pulse is found).

#include <Adafruit_NeoPixel.h>

#include "color_message.h"
#include "line_buffer.h"
#include "pulse_detector.h"

#ifndef PIXEL_PIN
#define PIXEL_PIN 5            // Neopixel data
#endif
#ifndef PIXEL_COUNT
#define PIXEL_COUNT 16
#endif
#ifndef PIXEL_HAS_WHITE
#define PIXEL_HAS_WHITE 1      // 1 for RGBW (SK6812) strips, 0 for RGB (WS2812) strips
#endif
#ifndef PULSE_PIN
#define PULSE_PIN A0           // pulse sensor signal
#endif
#ifndef SERIAL1_BAUD
#define SERIAL1_BAUD 9600      // TX/RX pins; the USB serial ignores the baud rate
#endif
#define REPORT_INTERVAL_MS 1000UL

#if PIXEL_HAS_WHITE
#define PIXEL_TYPE (NEO_GRBW + NEO_KHZ800)
#else
#define PIXEL_TYPE (NEO_GRB + NEO_KHZ800)
#endif

Adafruit_NeoPixel strip(PIXEL_COUNT, PIXEL_PIN, PIXEL_TYPE);
PulseDetector pulse;  // written by the timer interrupt only
LineBuffer usbLine;
LineBuffer pinLine;
unsigned long lastReportMs = 0;
unsigned long rejectedLines = 0;

// Called every 2 ms by the timer interrupt.
void sampleTick() {
  pulse.sample(analogRead(PULSE_PIN));
}

#if defined(HOST_BUILD)
void startSampleTimer() {
  hostAttachTimer(sampleTick, PulseDetector::kSampleMs);
}
#elif defined(__AVR_ATmega32U4__) || defined(__AVR_ATmega328P__)
// Timer1 in CTC mode at 500 Hz: F_CPU / 64 / 500 counts per tick (16 MHz and 8 MHz boards).
void startSampleTimer() {
  noInterrupts();
  TCCR1A = 0;
  TCCR1B = _BV(WGM12) | _BV(CS11) | _BV(CS10);
  TCNT1 = 0;
  OCR1A = (F_CPU / 64 / (1000 / PulseDetector::kSampleMs)) - 1;
  TIMSK1 = _BV(OCIE1A);
  interrupts();
}

ISR(TIMER1_COMPA_vect) {
  sampleTick();
}
#else
#error "No 2 ms sample timer for this board: see 'M0 and M4 boards' in arduino/README.md"
#endif

void showColor(const ColorMessage& message) {
  PixelColor pixel = pixelFor(message, PIXEL_HAS_WHITE);
  strip.setBrightness(message.brightness);
  for (uint16_t i = 0; i < strip.numPixels(); ++i) {
    strip.setPixelColor(i, pixel.red, pixel.green, pixel.blue, pixel.white);
  }
  strip.show();
}

void handleLine(const char* text, uint8_t length) {
  ColorMessage message;
  if (parseColorMessage(text, length, &message)) {
    showColor(message);
  } else {
    ++rejectedLines;
  }
}

// Takes whatever bytes have arrived, never waiting for more.
void readColorLines(Stream& port, LineBuffer& line) {
  while (port.available() > 0) {
    int c = port.read();
    if (c < 0) return;
    LineBuffer::Result result = line.feed((char)c);
    if (result == LineBuffer::kLine) {
      handleLine(line.line(), line.length());
    } else if (result == LineBuffer::kTooLong) {
      ++rejectedLines;
    }
  }
}

// Prints "NN\r\n" only when it fits in the output buffer, so a port nobody reads never blocks.
void printBpm(Stream& port, uint16_t bpm) {
  char text[8];
  uint8_t length = 0;
  char digits[6];
  uint8_t count = 0;
  do {
    digits[count++] = (char)('0' + bpm % 10);
    bpm /= 10;
  } while (bpm > 0);
  while (count > 0) text[length++] = digits[--count];
  text[length++] = '\r';
  text[length++] = '\n';
  if (port.availableForWrite() >= length) port.write((const uint8_t*)text, length);
}

uint16_t currentBpm() {
  noInterrupts();
  uint16_t bpm = pulse.bpm();
  interrupts();
  return bpm;
}

void setup() {
  Serial.begin(9600);
  Serial1.begin(SERIAL1_BAUD);
  strip.begin();
  strip.show();  // all off until the host says otherwise
  startSampleTimer();
}

void loop() {
  readColorLines(Serial, usbLine);
  readColorLines(Serial1, pinLine);
  unsigned long now = millis();
  if (now - lastReportMs >= REPORT_INTERVAL_MS) {
    lastReportMs = now;
    uint16_t bpm = currentBpm();
    printBpm(Serial, bpm);
    printBpm(Serial1, bpm);
  }
}
