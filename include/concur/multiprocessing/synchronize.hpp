// concur/multiprocessing/synchronize.hpp: Lock, RLock, Semaphore, BoundedSemaphore, Event and
// Barrier shared by processes (Python's multiprocessing.Lock, RLock, Semaphore, BoundedSemaphore,
// Event, Barrier).
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
// BoundedSemaphore released above its initial value (Python's ValueError); concur::RuntimeError
// for release() of an RLock this thread does not hold (Python's RuntimeError/AssertionError);
// BrokenBarrierError as described at Barrier.
// Thread safety: any thread of any process may use them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "concur/futures.hpp"
#include "concur/multiprocessing/shared_memory.hpp"

namespace concur::multiprocessing {

namespace detail {
struct LockState;
struct RLockState;
struct BarrierState;
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

// A Lock its holder may take again: each acquire() by the holding thread adds one level, and the
// lock is free once release() has been called as many times. Robust as Lock: a holder that dies
// frees it, whatever its depth.
class RLock {
 public:
  RLock();
  void acquire() { acquire_until(std::nullopt); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(concur::detail::deadline_after(timeout));
  }
  void release();
  bool previous_owner_died() const;
  void lock() { acquire(); }
  void unlock() { release(); }

  template <class Archive>
  void serialize(Archive& archive) {
    archive(segment_);
  }

 private:
  bool acquire_until(const concur::detail::Deadline& deadline);
  detail::RLockState* state() const;
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

// Python's threading.BrokenBarrierError, which multiprocessing's Barrier raises too.
class BrokenBarrierError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Python's multiprocessing.Barrier(parties, timeout): wait() blocks until `parties` threads or
// processes have called it, then releases them all and returns each a distinct index in
// [0, parties); the barrier then fills again.
// States: filling -> draining (all arrived) -> filling ...; broken (abort(), or a wait() timed
// out): every waiting and later wait() throws BrokenBarrierError until reset(), which also breaks
// the waits in progress.
// Unlike Python, there is no `action` (a callable cannot cross to a spawned process): the party
// whose wait() returned 0 can do that work. A party that dies while waiting leaves the others
// waiting: give wait() (or the barrier) a timeout if a party may die.
// Errors: std::invalid_argument for parties == 0 (Python's ValueError).
class Barrier {
 public:
  // One party (what a Barrier received by a child starts as, before it is replaced).
  Barrier() : Barrier(1) {}
  explicit Barrier(unsigned parties,
                   std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  unsigned wait() { return wait_for(default_timeout()); }
  template <class Rep, class Period>
  unsigned wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  void reset();
  void abort();
  unsigned parties() const;
  unsigned n_waiting() const;
  bool broken() const;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(segment_);
  }

 private:
  std::optional<std::chrono::nanoseconds> default_timeout() const;
  unsigned wait_for(std::optional<std::chrono::nanoseconds> timeout);
  detail::BarrierState* state() const;
  detail::AnonymousSegment segment_;
};

}  // namespace concur::multiprocessing
