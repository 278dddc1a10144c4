// Heart beats from a pulse sensor sampled every 2 ms (from the timer interrupt).
//
// The signal's upper and lower envelopes decay towards it (time constant ~2 s, down to
// within one ADC count); a beat is a rising edge
// through the middle of the envelope (with hysteresis) when the swing is big enough and
// enough time has passed since the last beat (which skips the dicrotic notch).
// BPM is 60000 over the running average of the last ten beat intervals, 0 when no beat
// came for 2.5 s.
#ifndef HEARTLIGHT_PULSE_DETECTOR_H
#define HEARTLIGHT_PULSE_DETECTOR_H

#include <stdint.h>

class PulseDetector {
 public:
  static const uint8_t kSampleMs = 2;
  static const uint8_t kIntervals = 10;
  static const uint16_t kMinIntervalMs = 250;   // 240 bpm
  static const uint16_t kMaxIntervalMs = 2500;  // 24 bpm; longer means no pulse
  static const int16_t kMinSwing = 60;          // ADC counts (of 1023) from trough to peak
  static const uint8_t kDecayShift = 10;        // envelope time constant ~2 s at 500 Hz

  PulseDetector() { reset(512); }

  // One ADC reading (0-1023), taken kSampleMs after the previous one.
  void sample(int value) {
    now_ += kSampleMs;
    int32_t scaled = (int32_t)value << kScale;
    track(scaled);
    int32_t middle = (upper_ + lower_) / 2;
    int32_t hysteresis = (upper_ - lower_) / 8;
    uint32_t sinceBeat = now_ - lastBeat_;
    if (inPulse_ && scaled < middle - hysteresis) inPulse_ = false;
    if (!inPulse_ && scaled > middle + hysteresis) {
      inPulse_ = true;  // a rising edge; too small or too soon, it is not a beat
      if (swingIsPulse() && sinceBeat >= refractoryMs()) beat(sinceBeat);
    }
    if (sinceBeat > kMaxIntervalMs) {  // no beat for too long, even if the signal stays high
      inPulse_ = false;
      forget();
    }
  }

  uint16_t bpm() const { return bpm_; }
  uint32_t beats() const { return beats_; }

 private:
  // Fixed point: the envelope moves by (distance << kScale) >> kDecayShift per sample, so with
  // kScale = kDecayShift it keeps closing in until it is within one ADC count of the signal.
  // (With a smaller kScale it would stop 2^(kDecayShift - kScale) counts away.)
  static const uint8_t kScale = kDecayShift;

  void reset(int level) {
    upper_ = lower_ = (int32_t)level << kScale;
    inPulse_ = false;
    beats_ = 0;
    forget();
  }

  // Drop the intervals; the next beat starts a new series.
  void forget() {
    count_ = 0;
    next_ = 0;
    sum_ = 0;
    bpm_ = 0;
    haveBeat_ = false;
    lastBeat_ = now_;
  }

  void track(int32_t scaled) {
    if (scaled > upper_) upper_ = scaled; else upper_ -= (upper_ - scaled) >> kDecayShift;
    if (scaled < lower_) lower_ = scaled; else lower_ += (scaled - lower_) >> kDecayShift;
  }

  bool swingIsPulse() const { return upper_ - lower_ >= ((int32_t)kMinSwing << kScale); }

  // A beat cannot follow sooner than 250 ms, nor sooner than 3/5 of the usual interval.
  uint32_t refractoryMs() const {
    uint32_t usual = count_ ? sum_ / count_ : 0;
    uint32_t notch = usual * 3 / 5;
    return notch > kMinIntervalMs ? notch : kMinIntervalMs;
  }

  void beat(uint32_t sinceBeat) {
    ++beats_;
    if (haveBeat_ && sinceBeat <= kMaxIntervalMs) addInterval((uint16_t)sinceBeat);
    haveBeat_ = true;
    lastBeat_ = now_;
  }

  void addInterval(uint16_t interval) {
    if (count_ == kIntervals) sum_ -= intervals_[next_]; else ++count_;
    intervals_[next_] = interval;
    sum_ += interval;
    next_ = (uint8_t)((next_ + 1) % kIntervals);
    bpm_ = (uint16_t)((60000UL * count_ + sum_ / 2) / sum_);
  }

  uint32_t now_ = 0;
  uint32_t lastBeat_ = 0;
  int32_t upper_ = 0;
  int32_t lower_ = 0;
  uint16_t intervals_[kIntervals] = {0};
  uint32_t sum_ = 0;
  uint8_t count_ = 0;
  uint8_t next_ = 0;
  uint16_t bpm_ = 0;
  uint32_t beats_ = 0;
  bool inPulse_ = false;
  bool haveBeat_ = false;
};

#endif
