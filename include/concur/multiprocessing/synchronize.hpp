// concur/multiprocessing/synchronize.hpp: Lock, Semaphore, BoundedSemaphore and Event shared by
// processes (Python's multiprocessing.Lock, Semaphore, BoundedSemaphore, Event).
//
// Each lives in an anonymous shared segment, so it has no name to leak, and reaches a child by
// fork or as a Process/task argument (its descriptor travels). Copies in one process share it.
//
// Robust where Python's hang: a process that dies holding a Lock releases it (the next acquire()
// succeeds and previous_owner_died() says so, since what the lock protected may be half
// updated); a process that dies holding Semaphore units gives them back (waiters reclaim the units
// of dead holders). Python's versions stay held forever in both cases.
// Unlike Python's Lock, only the holder may release a Lock (that is what makes it robust).
//
// Blocking: acquire()/wait() block, with an optional timeout (they then return false).
// Errors: std::logic_error for release() of a Lock this thread does not hold and for a
// BoundedSemaphore released above its initial value (Python's ValueError).
// Thread safety: any thread of any process may use them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "concur/futures.hpp"
#include "concur/multiprocessing/shared_memory.hpp"

namespace concur::multiprocessing {

namespace detail {
struct LockState;
struct SemaphoreState;
struct EventState;
}  // namespace detail

class Lock {
 public:
  Lock();
  void acquire() { acquire_until(std::nullopt); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(concur::detail::deadline_after(timeout));
  }
  void release();
  // The last acquire() took over from a holder that died.
  bool previous_owner_died() const;
  // For std::lock_guard / std::unique_lock.
  void lock() { acquire(); }
  void unlock() { release(); }

  template <class Archive>
  void serialize(Archive& archive) {
    archive(segment_);
  }

 private:
  bool acquire_until(const concur::detail::Deadline& deadline);
  detail::LockState* state() const;
  detail::AnonymousSegment segment_;
};

class Semaphore {
 public:
  explicit Semaphore(unsigned value = 1);
  void acquire() { acquire_until(std::nullopt); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(concur::detail::deadline_after(timeout));
  }
  void release();
  unsigned value() const;  // approximate, for tests and monitoring

  template <class Archive>
  void serialize(Archive& archive) {
    archive(segment_);
  }

 protected:
  Semaphore(unsigned value, bool bounded);

 private:
  bool acquire_until(const concur::detail::Deadline& deadline);
  detail::SemaphoreState* state() const;
  detail::AnonymousSegment segment_;
};

// release() beyond the initial value is an error (std::logic_error), as Python's ValueError.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(unsigned value = 1) : Semaphore(value, true) {}
};

class Event {
 public:
  Event();
  void set();
  void clear();
  bool is_set() const;
  void wait() { wait_until(std::nullopt); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(concur::detail::deadline_after(timeout));
  }

  template <class Archive>
  void serialize(Archive& archive) {
    archive(segment_);
  }

 private:
  bool wait_until(const concur::detail::Deadline& deadline);
  detail::EventState* state() const;
  detail::AnonymousSegment segment_;
};

}  // namespace concur::multiprocessing
