// Host tests of the heartlight sketch: colour parsing, line handling, BPM detection.
//   test_heartlight            run the tests (exit status 1 on any failure)
//   test_heartlight --parse    read lines on stdin, print how the firmware takes each one
#include <math.h>
#include <stdio.h>

#include <iostream>
#include <string>

#include "../heartlight/heartlight.ino"

static int failures = 0;
static int checks = 0;

#define CHECK(condition)                                                       \
  do {                                                                         \
    ++checks;                                                                  \
    if (!(condition)) {                                                        \
      ++failures;                                                              \
      fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__,     \
              __func__, #condition);                                           \
    }                                                                          \
  } while (0)

#define CHECK_NEAR(actual, expected, tolerance)                                \
  do {                                                                         \
    ++checks;                                                                  \
    long a_ = (long)(actual), e_ = (long)(expected);                          \
    if (a_ < e_ - (tolerance) || a_ > e_ + (tolerance)) {                     \
      ++failures;                                                              \
      fprintf(stderr, "%s:%d: %s: %s is %ld, expected %ld +- %d\n", __FILE__, \
              __LINE__, __func__, #actual, a_, e_, (int)(tolerance));          \
    }                                                                          \
  } while (0)

// --- synthetic pulse signals ---------------------------------------------------------

static double beatsPerMinute = 75;
static double notchHeight = 70;  // the dicrotic bump, in ADC counts (the main peak is 220)
static bool sineWave = false;    // a weak, round pulse instead of the sharp one
static int noiseAmplitude = 0;
static bool pulsing = true;
static unsigned long pulseStopsAtMs = (unsigned long)-1;
static int flatLevel = 480;      // the reading without a pulse (a lifted finger may flood it high)
static uint32_t noiseState = 12345;

static int noise() {
  if (!noiseAmplitude) return 0;
  noiseState = noiseState * 1664525u + 1013904223u;  // a fixed LCG: the same noise every run
  return (int)((noiseState >> 16) % (2 * noiseAmplitude + 1)) - noiseAmplitude;
}

static double bump(double phase, double centre, double width) {
  double x = (phase - centre) / width;
  return exp(-x * x);
}

// A pulse-sensor-like wave: a systolic peak, a smaller dicrotic bump, breathing wander;
// without a pulse (no finger on the sensor) a flat line at flatLevel. Plus noise when asked.
static int pulseSignal(unsigned long ms) {
  double value = flatLevel;
  if (pulsing && ms < pulseStopsAtMs) {
    value = 480 + 30 * sin(2 * M_PI * ms / 4000.0);
    double period = 60000.0 / beatsPerMinute;
    double phase = fmod((double)ms, period) / period;
    if (sineWave) {
      value += 45 * sin(2 * M_PI * phase);
    } else {
      value += 220 * bump(phase, 0.2, 0.06) + notchHeight * bump(phase, 0.45, 0.07);
    }
  }
  int reading = (int)lround(value) + noise();
  return reading < 0 ? 0 : (reading > 1023 ? 1023 : reading);
}

static void startSignal(double bpm, int noiseCounts, bool withPulse) {
  beatsPerMinute = bpm;
  noiseAmplitude = noiseCounts;
  pulsing = withPulse;
  pulseStopsAtMs = (unsigned long)-1;
  flatLevel = 480;
  notchHeight = 70;
  sineWave = false;
  pulse = PulseDetector();
  hostSetAnalog(pulseSignal);
}

// Runs the sketch: simulated time moves in 5 ms steps with loop() after each.
static void run(unsigned long ms) {
  for (unsigned long done = 0; done < ms; done += 5) {
    hostAdvance(5);
    loop();
  }
}

static std::string lastLine(const std::string& output) {
  size_t end = output.rfind("\r\n");
  if (end == std::string::npos) return "";
  size_t start = output.rfind("\r\n", end - 1);
  start = (start == std::string::npos || end == 0) ? 0 : start + 2;
  return output.substr(start, end - start);
}

// --- colour messages -----------------------------------------------------------------

static void test_parses_eight_digit_message() {
  ColorMessage m;
  CHECK(parseColorMessage("FF8000C0", 8, &m));
  CHECK(m.red == 255 && m.green == 128 && m.blue == 0 && m.white == 0);
  CHECK(m.brightness == 0xC0 && !m.explicitWhite);
  CHECK(parseColorMessage("ff8000c0", 8, &m) && m.red == 255 && m.brightness == 0xC0);
}

static void test_parses_ten_digit_message_with_white() {
  ColorMessage m;
  CHECK(parseColorMessage("0102030405", 10, &m));
  CHECK(m.red == 1 && m.green == 2 && m.blue == 3 && m.white == 4 && m.brightness == 5);
  CHECK(m.explicitWhite);
}

static void test_rejects_malformed_messages() {
  const char* bad[] = {"", "FF8000C", "FF8000C00", "FF8000C0000", "GG000000", "FF 000C0",
                       "+F000000", "#FF00008", "FF0000\t0", "0x000000"};
  for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
    ColorMessage m = {7, 7, 7, 7, 7, false};
    CHECK(!parseColorMessage(bad[i], (uint8_t)strlen(bad[i]), &m));
    CHECK(m.red == 7 && m.brightness == 7);
  }
}

static void test_grey_lights_the_white_channel_on_rgbw() {
  ColorMessage grey = {200, 200, 200, 0, 255, false};
  PixelColor p = pixelFor(grey, true);
  CHECK(p.red == 0 && p.green == 0 && p.blue == 0 && p.white == 200);
  ColorMessage orange = {255, 100, 0, 0, 255, false};
  p = pixelFor(orange, true);
  CHECK(p.red == 255 && p.green == 100 && p.blue == 0 && p.white == 0);
  ColorMessage explicitGrey = {200, 200, 200, 0, 255, true};
  p = pixelFor(explicitGrey, true);
  CHECK(p.red == 200 && p.green == 200 && p.blue == 200 && p.white == 0);
  ColorMessage tinted = {10, 20, 30, 40, 255, true};
  p = pixelFor(tinted, true);
  CHECK(p.red == 10 && p.green == 20 && p.blue == 30 && p.white == 40);
}

static void test_white_mixes_into_rgb_on_rgb_strip() {
  ColorMessage m = {250, 20, 0, 100, 255, true};
  PixelColor p = pixelFor(m, false);
  CHECK(p.red == 255 && p.green == 120 && p.blue == 100 && p.white == 0);
  ColorMessage grey = {90, 90, 90, 0, 255, false};
  p = pixelFor(grey, false);
  CHECK(p.red == 90 && p.green == 90 && p.blue == 90 && p.white == 0);
}

// --- line handling -------------------------------------------------------------------

static void test_line_buffer_ignores_carriage_return() {
  LineBuffer line;
  const char* text = "AB\rCD\r\n";
  LineBuffer::Result result = LineBuffer::kPending;
  for (const char* c = text; *c; ++c) result = line.feed(*c);
  CHECK(result == LineBuffer::kLine);
  CHECK(strcmp(line.line(), "ABCD") == 0 && line.length() == 4);
}

static void test_line_buffer_rejects_overlong_line_then_recovers() {
  LineBuffer line;
  LineBuffer::Result result = LineBuffer::kPending;
  for (int i = 0; i < 100; ++i) CHECK(line.feed('F') == LineBuffer::kPending);
  result = line.feed('\n');
  CHECK(result == LineBuffer::kTooLong);
  const char* next = "00FF0010\n";
  for (const char* c = next; *c; ++c) result = line.feed(*c);
  CHECK(result == LineBuffer::kLine && strcmp(line.line(), "00FF0010") == 0);
}

static void test_sketch_sets_every_pixel_from_usb_serial() {
  unsigned long shows = strip.stubShows();
  Serial.hostReceive("00FF0080\r\n");
  loop();
  CHECK(strip.stubShows() == shows + 1);
  CHECK(strip.getBrightness() == 0x80);
  for (uint16_t i = 0; i < strip.numPixels(); ++i) {
    const StubPixel& p = strip.stubPixel(i);
    CHECK(p.red == 0 && p.green == 255 && p.blue == 0 && p.white == 0);
  }
}

static void test_sketch_reads_both_serials_without_mixing_them() {
  Serial.hostReceive("FF00");  // half a line on USB...
  Serial1.hostReceive("0000FF40\n");  // ...while a whole one arrives on TX/RX
  loop();
  CHECK(strip.stubPixel(0).blue == 255 && strip.stubPixel(0).red == 0 && strip.getBrightness() == 0x40);
  Serial.hostReceive("0010\n");
  loop();
  CHECK(strip.stubPixel(0).red == 255 && strip.stubPixel(0).blue == 0 && strip.getBrightness() == 0x10);
}

static void test_sketch_ignores_malformed_and_overlong_lines() {
  Serial.hostReceive("123456FF\n");
  loop();
  unsigned long shows = strip.stubShows();
  unsigned long rejected = rejectedLines;
  Serial.hostReceive("ZZ000000\nhello\n" + std::string(80, 'A') + "\n\n");
  loop();
  CHECK(strip.stubShows() == shows);
  CHECK(rejectedLines == rejected + 4);
  CHECK(strip.stubPixel(3).red == 0x12 && strip.stubPixel(3).blue == 0x56);
  Serial.hostReceive("FFFFFF20\n");
  loop();
  CHECK(strip.stubPixel(3).white == 255 && strip.stubPixel(3).red == 0);
}

// --- heart rate ----------------------------------------------------------------------

static void test_bpm_of_steady_pulse(double bpm) {
  startSignal(bpm, 0, true);
  run(20000);
  CHECK_NEAR(pulse.bpm(), bpm, 1);
}

static void test_bpm_75() { test_bpm_of_steady_pulse(75); }
static void test_bpm_120() { test_bpm_of_steady_pulse(120); }

static void test_bpm_with_noise() {
  startSignal(75, 20, true);
  run(20000);
  CHECK_NEAR(pulse.bpm(), 75, 2);
  startSignal(120, 20, true);
  run(20000);
  CHECK_NEAR(pulse.bpm(), 120, 2);
}

static void test_a_strong_dicrotic_notch_is_not_a_beat() {
  startSignal(75, 5, true);
  notchHeight = 170;
  run(30000);
  CHECK_NEAR(pulse.bpm(), 75, 1);
  startSignal(50, 5, true);
  notchHeight = 170;
  run(30000);
  CHECK_NEAR(pulse.bpm(), 50, 1);
}

static void test_a_weak_round_noisy_pulse_counts_once_per_beat() {
  startSignal(40, 12, true);
  sineWave = true;
  run(60000);
  CHECK_NEAR(pulse.bpm(), 40, 1);
  CHECK_NEAR(pulse.beats(), 40, 2);
}

static void test_counts_one_beat_per_period() {
  startSignal(75, 10, true);
  run(60000);
  CHECK_NEAR(pulse.beats(), 75, 2);
}

static void test_no_beats_in_silence_or_noise() {
  startSignal(75, 2, false);
  run(15000);
  CHECK(pulse.bpm() == 0 && pulse.beats() == 0);
  startSignal(75, 20, false);
  run(15000);
  CHECK(pulse.bpm() == 0 && pulse.beats() == 0);
}

// 15 s of a 75 bpm pulse, which the detector locks on to; then the pulse stops.
static void stopAfterSteadyPulse(int noiseCounts) {
  startSignal(75, noiseCounts, true);
  run(15000);
  CHECK_NEAR(pulse.bpm(), 75, 1);
  pulseStopsAtMs = millis();
}

static void test_bpm_drops_to_zero_when_pulse_stops() {
  stopAfterSteadyPulse(5);
  run(4000);
  CHECK(pulse.bpm() == 0);
}

// Seconds (of `seconds`) in which the detector showed a heart rate.
static int secondsWithBpm(int seconds) {
  int shown = 0;
  for (int i = 0; i < seconds; ++i) {
    run(1000);
    if (pulse.bpm() != 0) ++shown;
  }
  return shown;
}

// A lifted finger or a saturated sensor: the signal steps up and stays flat above the middle.
static void test_bpm_drops_to_zero_when_signal_stays_high(int level) {
  stopAfterSteadyPulse(0);
  flatLevel = level;
  run(6000);  // the step may count as one beat; 2.5 s after the last beat the BPM is 0
  CHECK(pulse.bpm() == 0);
  CHECK(secondsWithBpm(30) == 0);
}

static void test_bpm_drops_to_zero_at_600() { test_bpm_drops_to_zero_when_signal_stays_high(600); }
static void test_bpm_drops_to_zero_at_1023() { test_bpm_drops_to_zero_when_signal_stays_high(1023); }

// After a pulse the envelopes must close in on the flat signal, so noise smaller than
// kMinSwing is not taken for beats (it is not without a pulse before it either). While they
// still span the old pulse (a few seconds) noise can count; then the 2.5 s timeout ends it.
static void test_noise_after_a_pulse_is_not_a_beat() {
  stopAfterSteadyPulse(0);
  noiseAmplitude = 25;
  run(10000);
  CHECK(pulse.bpm() == 0);
  uint32_t beatsBefore = pulse.beats();
  CHECK(secondsWithBpm(60) == 0);
  CHECK(pulse.beats() == beatsBefore);
}

// Sharp spikes from a flat baseline at exact times, straight into a detector: one beat each.
static void spikeAfter(PulseDetector& detector, unsigned intervalMs) {
  for (unsigned ms = 0; ms < intervalMs; ms += PulseDetector::kSampleMs) {
    detector.sample(ms < 100 ? 700 : 400);
  }
}

static void test_bpm_is_the_average_of_the_last_ten_intervals() {
  PulseDetector detector;
  for (int i = 0; i < 50; ++i) detector.sample(400);  // settle at the baseline
  for (int i = 0; i < 13; ++i) spikeAfter(detector, 1000);  // twelve 1000 ms intervals
  detector.sample(700);  // the 13th beat
  CHECK(detector.beats() == 13);
  CHECK(detector.bpm() == 60);
  // Now 700 ms intervals push the 1000 ms ones out, one at a time: 60000 * 10 / (sum of the last ten).
  const uint16_t expected[] = {62, 64, 66, 68, 71, 73, 76, 79, 82, 86, 86};
  for (unsigned k = 0; k < sizeof(expected) / sizeof(expected[0]); ++k) {
    spikeAfter(detector, 700 - PulseDetector::kSampleMs);
    detector.sample(700);
    CHECK(detector.beats() == 14 + k);
    if (detector.bpm() != expected[k]) {
      fprintf(stderr, "after %u intervals of 700 ms: bpm %u, expected %u\n", k + 1,
              (unsigned)detector.bpm(), (unsigned)expected[k]);
    }
    CHECK(detector.bpm() == expected[k]);
  }
}

static void test_prints_bpm_to_both_serials_each_second() {
  startSignal(120, 0, true);
  Serial.hostTakeOutput();
  Serial1.hostTakeOutput();
  run(20000);
  std::string usb = Serial.hostTakeOutput();
  std::string pins = Serial1.hostTakeOutput();
  CHECK(lastLine(usb) == "120");
  CHECK(lastLine(pins) == "120");
  size_t lines = 0;
  for (size_t at = usb.find("\r\n"); at != std::string::npos; at = usb.find("\r\n", at + 1)) ++lines;
  CHECK_NEAR(lines, 20, 1);
}

static void test_skips_a_port_with_a_full_output_buffer() {
  startSignal(75, 0, false);
  Serial.hostTakeOutput();
  Serial1.hostTakeOutput();
  Serial.hostSetWriteSpace(0);
  run(3000);
  CHECK(Serial.hostTakeOutput().empty());
  CHECK(lastLine(Serial1.hostTakeOutput()) == "0");
  Serial.hostSetWriteSpace(64);
}

// --- --parse: the firmware's reading of each line, for the Python emulator to match ----

static int parseStdin() {
  LineBuffer line;
  std::string input;
  while (std::getline(std::cin, input)) {
    input += '\n';
    for (size_t i = 0; i < input.size(); ++i) {
      LineBuffer::Result result = line.feed(input[i]);
      if (result == LineBuffer::kPending) continue;
      ColorMessage m;
      if (result == LineBuffer::kLine && parseColorMessage(line.line(), line.length(), &m)) {
        PixelColor rgbw = pixelFor(m, true);
        PixelColor rgb = pixelFor(m, false);
        printf("ok %d %d %d %d %d %d rgbw %d %d %d %d rgb %d %d %d %d\n", m.red, m.green, m.blue,
               m.white, m.brightness, m.explicitWhite ? 1 : 0, rgbw.red, rgbw.green, rgbw.blue,
               rgbw.white, rgb.red, rgb.green, rgb.blue, rgb.white);
      } else {
        printf("reject\n");
      }
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--parse") return parseStdin();
  setup();
  CHECK(strip.stubBegun() && strip.numPixels() == PIXEL_COUNT);
  CHECK(Serial1.hostBaud() == SERIAL1_BAUD);
  test_parses_eight_digit_message();
  test_parses_ten_digit_message_with_white();
  test_rejects_malformed_messages();
  test_grey_lights_the_white_channel_on_rgbw();
  test_white_mixes_into_rgb_on_rgb_strip();
  test_line_buffer_ignores_carriage_return();
  test_line_buffer_rejects_overlong_line_then_recovers();
  test_sketch_sets_every_pixel_from_usb_serial();
  test_sketch_reads_both_serials_without_mixing_them();
  test_sketch_ignores_malformed_and_overlong_lines();
  test_bpm_75();
  test_bpm_120();
  test_bpm_with_noise();
  test_counts_one_beat_per_period();
  test_a_strong_dicrotic_notch_is_not_a_beat();
  test_a_weak_round_noisy_pulse_counts_once_per_beat();
  test_no_beats_in_silence_or_noise();
  test_bpm_drops_to_zero_when_pulse_stops();
  test_bpm_drops_to_zero_at_600();
  test_bpm_drops_to_zero_at_1023();
  test_noise_after_a_pulse_is_not_a_beat();
  test_bpm_is_the_average_of_the_last_ten_intervals();
  test_prints_bpm_to_both_serials_each_second();
  test_skips_a_port_with_a_full_output_buffer();
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
