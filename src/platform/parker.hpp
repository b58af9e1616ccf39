// Internal: Parker, a one-token wake-up box per thread (as Rust's thread::park / unpark).
//
// park() returns when a token is available (consuming it), when the deadline passes, or
// spuriously; unpark() makes one token available (tokens do not accumulate beyond one) and wakes
// the parked thread, with a system call only when that thread is actually asleep.
// Thread safety: park() from the owning thread only; unpark() from any thread.
// Every caller of park() re-checks its own condition afterwards; a stale token costs one spurious
// return, never a missed wake-up.
#pragma once

#include <atomic>
#include <cstdint>

#include "platform/futex.hpp"

namespace concur::platform {

class Parker {
 public:
  // Returns false if the deadline passed without a token.
  bool park(const std::optional<Clock::time_point>& deadline = std::nullopt) noexcept {
    // kNotified -> kEmpty consumes a token; kEmpty -> kParked announces that we sleep.
    if (state_.exchange(kEmpty, std::memory_order_acquire) == kNotified) return true;
    std::uint32_t expected = kEmpty;
    if (!state_.compare_exchange_strong(expected, kParked, std::memory_order_acquire)) {
      state_.store(kEmpty, std::memory_order_relaxed);  // a token arrived in between
      return true;
    }
    for (;;) {
      const bool in_time = futex_wait(state_, kParked, deadline);
      expected = kNotified;
      if (state_.compare_exchange_strong(expected, kEmpty, std::memory_order_acquire)) return true;
      if (!in_time) {
        // Timed out; a token may still race in, and then we keep it.
        return state_.exchange(kEmpty, std::memory_order_acquire) == kNotified;
      }
    }
  }

  void unpark() noexcept {
    if (state_.exchange(kNotified, std::memory_order_release) == kParked) futex_wake_one(state_);
  }

 private:
  static constexpr std::uint32_t kEmpty = 0;
  static constexpr std::uint32_t kNotified = 1;
  static constexpr std::uint32_t kParked = 2;
  std::atomic<std::uint32_t> state_{kEmpty};
};

// The calling thread's parker.
Parker& this_thread_parker() noexcept;

}  // namespace concur::platform
