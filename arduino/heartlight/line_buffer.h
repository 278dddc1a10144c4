// Collects serial bytes into lines without blocking: '\r' is ignored, '\n' ends a line,
// and a line longer than the buffer is rejected whole when its '\n' arrives.
#ifndef HEARTLIGHT_LINE_BUFFER_H
#define HEARTLIGHT_LINE_BUFFER_H

#include <stdint.h>

class LineBuffer {
 public:
  static const uint8_t kCapacity = 32;
  enum Result { kPending, kLine, kTooLong };

  LineBuffer() : length_(0), overflowed_(false), ended_(false) { text_[0] = '\0'; }

  // Takes one byte; kLine or kTooLong when it ended a line. line() stays valid until the next feed().
  Result feed(char c) {
    if (ended_) reset();
    if (c == '\r') return kPending;
    if (c == '\n') {
      ended_ = true;
      return overflowed_ ? kTooLong : kLine;
    }
    if (length_ < kCapacity) {
      text_[length_++] = c;
      text_[length_] = '\0';
    } else {
      overflowed_ = true;
    }
    return kPending;
  }

  const char* line() const { return text_; }
  uint8_t length() const { return length_; }

 private:
  void reset() {
    length_ = 0;
    overflowed_ = false;
    ended_ = false;
    text_[0] = '\0';
  }

  char text_[kCapacity + 1];
  uint8_t length_;
  bool overflowed_;
  bool ended_;
};

#endif
