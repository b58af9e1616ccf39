// Internal: how a thread blocks until something is ready, the same way for result(), wait(),
// as_completed() and anything later that waits on futures.
//
// A Condition is what the thread waits for. block_until() spins briefly (most waits in a busy pool
// end within microseconds), then subscribes the thread's Parker to the condition and parks. On a
// worker thread of a pool, a HelpingContext takes over instead and runs other tasks of the pool
// while the condition is not ready, which is why a task that waits on tasks it submitted cannot
// deadlock its pool.
#pragma once

#include <chrono>
#include <optional>

#include "platform/parker.hpp"

namespace concur::detail {

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;

class Condition {
 public:
  // Cheap, callable any number of times, from the waiting thread only.
  virtual bool ready() const noexcept = 0;
  // From now until unsubscribe(), becoming ready unparks `parker`. Returns false (and subscribes
  // nothing) if already ready.
  virtual bool subscribe(platform::Parker& parker) = 0;
  // After this returns, nothing touches the parker on the condition's behalf any more.
  virtual void unsubscribe() noexcept = 0;

 protected:
  ~Condition() = default;
};

// Implemented by executors whose threads run other work while they wait (ThreadPoolExecutor).
class HelpingContext {
 public:
  // Runs other tasks until the condition is ready or the deadline passes; false on timeout.
  virtual bool help_until(Condition& condition, const Deadline& deadline) = 0;

 protected:
  ~HelpingContext() = default;
};

// The helping context of the calling thread, or nullptr. Set by a pool for its workers.
HelpingContext*& current_helping_context() noexcept;

// Whether a blocked thread spins before it parks. Spinning wins when the wait will be short (one
// task's round trip); when much work is known to remain it only takes a core from the workers.
enum class Spin { kYes, kNo };

// Blocks the calling thread until `condition` is ready or the deadline passes; false on timeout.
bool block_until(Condition& condition, const Deadline& deadline, Spin spin = Spin::kYes);

// The same without helping, for a thread that must not run other tasks now.
bool park_until(Condition& condition, const Deadline& deadline, Spin spin = Spin::kYes);

// How long a waiter spins before it parks: long enough to catch a reply from a running worker
// (a round trip is a few microseconds), short enough not to steal a core from it for long.
inline constexpr std::chrono::nanoseconds kWaiterSpin{20'000};

}  // namespace concur::detail
