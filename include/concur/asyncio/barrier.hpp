// concur/asyncio/barrier.hpp: Barrier, Python 3.11's asyncio.Barrier: `parties` tasks meet at
// wait(); when the last arrives, all go on together.
//
// States (Python's _BarrierState):
//   filling    tasks arrive at wait() and wait; n_waiting() counts them.
//   draining   the last arrived: the waiters are leaving wait(). A task that comes back to wait()
//              meanwhile waits until every one has left, then the barrier fills again.
//   resetting  reset() while tasks waited: each raises BrokenBarrierError; then filling again.
//   broken     abort(): every waiting task, and every later wait(), raises BrokenBarrierError
//              until reset().
// wait() returns an index in [0, parties), a different one to each task of a round (the last to
// arrive gets parties - 1).
// Cancellation: a task cancelled in wait() leaves (n_waiting() drops) with CancelledError; the
// others keep waiting for a full round.
// Thread safety: none (the loop's thread). Blocking: wait() suspends the task; reset() and
// abort() take the barrier's internal lock briefly.
// Errors: std::invalid_argument for parties == 0 (Python's ValueError); BrokenBarrierError as
// above.
//
// Example:
//   asyncio::Barrier barrier(3);
//   asyncio::Task<void> worker() { std::size_t i = co_await barrier.wait(); /* all 3 are here */ }
#pragma once

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>

#include "concur/asyncio/sync.hpp"
#include "concur/asyncio/task.hpp"

namespace concur::asyncio {

// Python's asyncio.BrokenBarrierError: the barrier was aborted or reset under a waiting task.
class BrokenBarrierError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Barrier {
 public:
  enum class State { filling, draining, resetting, broken };

  explicit Barrier(std::size_t parties) : parties_(parties) {
    if (parties == 0) {
      throw std::invalid_argument("asyncio::Barrier: parties must be > 0");
    }
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // Waits until `parties` tasks wait; returns this task's index in the round.
  Task<std::size_t> wait();
  // Back to filling; tasks waiting now raise BrokenBarrierError.
  Task<void> reset();
  // Broken: waiting tasks and later wait() calls raise BrokenBarrierError (until reset()).
  Task<void> abort();

  std::size_t parties() const { return parties_; }
  // Tasks waiting for the round to fill (0 unless filling).
  std::size_t n_waiting() const { return state_ == State::filling ? count_ : 0; }
  bool broken() const { return state_ == State::broken; }
  State state() const { return state_; }

 private:
  Task<void> block();
  void leave();

  Condition cond_;
  std::size_t parties_;
  std::size_t count_ = 0;  // tasks inside wait() this round
  State state_ = State::filling;
};

// Python's Barrier.wait(), step by step; every step runs with cond_'s lock held.
inline Task<std::size_t> Barrier::wait() {
  LockGuard held = co_await cond_.hold();
  co_await block();
  std::size_t index = count_++;
  std::exception_ptr error;
  try {
    if (index + 1 == parties_) {
      state_ = State::draining;  // the round is full: release it
      cond_.notify_all();
    } else {
      co_await cond_.wait_for([this] { return state_ != State::filling; });
      if (state_ == State::broken || state_ == State::resetting) {
        throw BrokenBarrierError(
            "asyncio::Barrier::wait(): the barrier was aborted or reset while this task waited");
      }
    }
  } catch (...) {
    error = std::current_exception();
  }
  --count_;
  leave();
  if (error) std::rethrow_exception(error);
  co_return index;
}

// Waits while the previous round drains or resets; refuses a broken barrier.
inline Task<void> Barrier::block() {
  co_await cond_.wait_for(
      [this] { return state_ != State::draining && state_ != State::resetting; });
  if (state_ == State::broken) {
    throw BrokenBarrierError(
        "asyncio::Barrier::wait(): the barrier is broken (abort() was called); reset() it first");
  }
}

// The last task out of a draining or resetting round lets the next round fill.
inline void Barrier::leave() {
  if (count_ != 0) return;
  if (state_ == State::resetting || state_ == State::draining) state_ = State::filling;
  cond_.notify_all();
}

inline Task<void> Barrier::reset() {
  LockGuard held = co_await cond_.hold();
  state_ = count_ > 0 ? State::resetting : State::filling;
  cond_.notify_all();
}

inline Task<void> Barrier::abort() {
  LockGuard held = co_await cond_.hold();
  state_ = State::broken;
  cond_.notify_all();
}

}  // namespace concur::asyncio
