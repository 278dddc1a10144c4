// Simulated time, timer interrupt and analog input behind host/Arduino.h.
#include "Arduino.h"

Stream Serial;
Stream Serial1;

namespace {
unsigned long nowMs = 0;
void (*timerIsr)() = 0;
unsigned long timerPeriodMs = 0;
int (*analogSignal)(unsigned long) = 0;
}  // namespace

unsigned long millis() { return nowMs; }
unsigned long micros() { return nowMs * 1000UL; }

int analogRead(uint8_t) { return analogSignal ? analogSignal(nowMs) : 512; }

void hostAttachTimer(void (*isr)(), unsigned long periodMs) {
  timerIsr = isr;
  timerPeriodMs = periodMs;
}

void hostAdvance(unsigned long ms) {
  for (unsigned long i = 0; i < ms; ++i) {
    ++nowMs;
    if (timerIsr && timerPeriodMs && nowMs % timerPeriodMs == 0) timerIsr();
  }
}

void hostSetAnalog(int (*signal)(unsigned long ms)) { analogSignal = signal; }
