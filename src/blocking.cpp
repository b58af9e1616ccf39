#include "blocking.hpp"

#include <thread>

namespace concur::platform {

Parker& this_thread_parker() noexcept {
  static thread_local Parker parker;
  return parker;
}

}  // namespace concur::platform

namespace concur::detail {

HelpingContext*& current_helping_context() noexcept {
  static thread_local HelpingContext* context = nullptr;
  return context;
}

namespace {

// Spins until ready, the deadline, or kWaiterSpin: pausing, then also yielding now and then, and
// reading the clock only every few dozen rounds. Returns false only if the deadline passed.
bool spin_until_ready(Condition& condition, const Deadline& deadline) {
  const auto spin_end = Clock::now() + kWaiterSpin;
  for (unsigned i = 1;; ++i) {
    if (i > 128 && i % 16 == 0) {
      std::this_thread::yield();  // let a thread that shares our core (and owes us) run
    } else {
      platform::cpu_relax();
    }
    if (condition.ready()) return true;
    if (i % 32 == 0) {
      const auto now = Clock::now();
      if (deadline && now >= *deadline) return false;
      if (now >= spin_end) return true;
    }
  }
}

}  // namespace

bool park_until(Condition& condition, const Deadline& deadline, Spin spin) {
  if (condition.ready()) return true;
  if (spin == Spin::kYes && !spin_until_ready(condition, deadline)) return false;
  platform::Parker& parker = platform::this_thread_parker();
  if (!condition.subscribe(parker)) return true;
  bool ready = condition.ready();
  while (!ready) {
    if (!parker.park(deadline) && deadline && Clock::now() >= *deadline) {
      ready = condition.ready();
      break;
    }
    ready = condition.ready();
  }
  condition.unsubscribe();
  return ready;
}

bool block_until(Condition& condition, const Deadline& deadline, Spin spin) {
  if (condition.ready()) return true;
  if (HelpingContext* helper = current_helping_context()) {
    return helper->help_until(condition, deadline);
  }
  return park_until(condition, deadline, spin);
}

}  // namespace concur::detail
