// Host stand-in for the Arduino core: simulated time, a simulated 2 ms timer interrupt,
// an analog input the test supplies, and two serial ports backed by strings.
// Only what heartlight uses. Functions starting with "host" exist only here.
#ifndef HOST_ARDUINO_H
#define HOST_ARDUINO_H

#include <stdint.h>
#include <string.h>

#include <string>

#define HOST_BUILD 1
#define A0 14

typedef uint8_t byte;

class Stream {
 public:
  Stream() : writeSpace_(64) {}
  void begin(unsigned long baud) { baud_ = baud; }
  int available() { return (int)(input_.size() - readAt_); }
  int read() { return readAt_ < input_.size() ? (unsigned char)input_[readAt_++] : -1; }
  int availableForWrite() { return writeSpace_; }
  size_t write(const uint8_t* data, size_t length) {
    output_.append((const char*)data, length);
    return length;
  }

  void hostReceive(const std::string& bytes) { input_ += bytes; }
  // Everything printed since the last call.
  std::string hostTakeOutput() {
    std::string out;
    out.swap(output_);
    return out;
  }
  void hostSetWriteSpace(int space) { writeSpace_ = space; }
  unsigned long hostBaud() const { return baud_; }

 private:
  std::string input_;
  size_t readAt_ = 0;
  std::string output_;
  int writeSpace_;
  unsigned long baud_ = 0;
};

extern Stream Serial;
extern Stream Serial1;

unsigned long millis();
unsigned long micros();
int analogRead(uint8_t pin);
inline void noInterrupts() {}
inline void interrupts() {}

// The sketch registers its timer interrupt here; hostAdvance() fires it on schedule.
void hostAttachTimer(void (*isr)(), unsigned long periodMs);
// Moves simulated time forward by ms, firing the timer interrupt and calling loop-free hooks.
void hostAdvance(unsigned long ms);
// The test's analog signal: value at a given time in ms.
void hostSetAnalog(int (*signal)(unsigned long ms));

#endif
