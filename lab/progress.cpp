// The status line of lab/progress.hpp.
#include "progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace concur::lab::progress {
namespace {

using Clock = std::chrono::steady_clock;

// In a log, the fewest seconds between two progress lines: enough to show a long experiment is
// alive (the longest take minutes), few enough lines that a CI log stays readable.
constexpr double kLogInterval = 5.0;

struct State {
  std::mutex mutex;
  bool active = false;
  bool terminal = false;
  std::string experiment;
  double expected_seconds = 0;
  std::string phase;
  std::string repetition;
  Clock::time_point started;
  Clock::time_point last_line;
  bool line_drawn = false;  // a status line is on the terminal now
};

State& state() {
  static State s;
  return s;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Caller holds s.mutex.
void draw(State& s) {
  if (!s.active) return;
  std::string what = s.phase;
  if (!s.repetition.empty()) what += what.empty() ? s.repetition : ": " + s.repetition;
  if (what.empty()) return;
  const std::string text = fmt::format("  ... {:.0f} s of about {:.0f} s: {}",
                                       seconds_since(s.started), s.expected_seconds, what);
  if (s.terminal) {
    std::fputs(("\r\033[K" + text).c_str(), stdout);
    s.line_drawn = true;
  } else {
    if (seconds_since(s.last_line) < kLogInterval) return;
    std::fputs((text + "\n").c_str(), stdout);
  }
  s.last_line = Clock::now();
  std::fflush(stdout);
}

}  // namespace

void begin(const std::string& experiment, double expected_seconds) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.active = true;
  s.terminal = ::isatty(STDOUT_FILENO) == 1;
  s.experiment = experiment;
  s.expected_seconds = expected_seconds;
  s.phase.clear();
  s.repetition.clear();
  s.started = Clock::now();
  s.last_line = s.started;
  s.line_drawn = false;
}

void phase(const std::string& what) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.phase = what;
  s.repetition.clear();
  draw(s);
}

void repetition(int index, int count) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.repetition = fmt::format("repetition {} of {}", index, count);
  draw(s);
}

void end() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (s.terminal && s.line_drawn) {
    std::fputs("\r\033[K", stdout);
    std::fflush(stdout);
  }
  s.active = false;
  s.line_drawn = false;
}

}  // namespace concur::lab::progress
