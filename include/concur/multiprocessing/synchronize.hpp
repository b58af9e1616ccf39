// concur/multiprocessing/synchronize.hpp: Lock, RLock, Condition, Semaphore, BoundedSemaphore,
// Event and Barrier shared by processes (Python's multiprocessing.Lock, RLock, Condition,
// Semaphore, BoundedSemaphore, Event, Barrier).
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
// Errors: concur::AssertionError for release() of a Lock this thread does not hold, and
// concur::ValueError for a BoundedSemaphore released above its initial value (both are
// std::logic_error: a bug in the caller); concur::RuntimeError
// for release() of an RLock this thread does not hold (Python's RuntimeError/AssertionError);
// BrokenBarrierError as described at Barrier.
// Thread safety: any thread of any process may use them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>

#include "concur/futures.hpp"
#include "concur/multiprocessing/shared_memory.hpp"

namespace concur::multiprocessing {

namespace detail {
struct LockState;
struct RLockState;
struct BarrierState;
struct SemaphoreState;
struct EventState;
struct ConditionState;
}  // namespace detail

class Condition;

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
  friend class Condition;
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
  friend class Condition;
  bool acquire_until(const concur::detail::Deadline& deadline);
  detail::RLockState* state() const;
  detail::AnonymousSegment segment_;
};

// Python's multiprocessing.Condition: a lock (an RLock of its own by default, or the Lock or
// RLock given) and a queue of processes and threads waiting to be notified.
// wait() needs the lock held; it releases it (every level of an RLock), sleeps until notified or
// the timeout, and takes it back (at the same depth) before it returns; false on timeout.
// wait_for(predicate[, timeout]) waits until predicate() is true and returns its last value.
// notify(n) wakes up to n waiters, notify_all() all of them; both need the lock held.
// Robust as Lock: a holder that dies frees the lock for the others.
// Errors: concur::RuntimeError for wait() or notify() without holding the lock (Python's
// RuntimeError "cannot wait on un-acquired lock").
// Example:
//   mp::Condition ready;                               // passed to a child like a Lock
//   { std::lock_guard hold(ready); ready.wait_for([&] { return queue_has_work(); }); }
class Condition {
 public:
  Condition();
  explicit Condition(RLock lock);
  explicit Condition(Lock lock);

  void acquire() { acquire_until(std::nullopt); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(concur::detail::deadline_after(timeout));
  }
  void release();
  void lock() { acquire(); }
  void unlock() { release(); }

  void wait() { wait_until(std::nullopt); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(concur::detail::deadline_after(timeout));
  }
  template <class Predicate>
  auto wait_for(Predicate predicate) {
    auto value = predicate();
    while (!value) {
      wait();
      value = predicate();
    }
    return value;
  }
  template <class Predicate, class Rep, class Period>
  auto wait_for(Predicate predicate, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = concur::detail::deadline_after(timeout);
    auto value = predicate();
    while (!value) {
      if (!wait_until(deadline)) return predicate();
      value = predicate();
    }
    return value;
  }
  void notify(unsigned n = 1);
  void notify_all();

  template <class Archive>
  void serialize(Archive& archive) {
    archive(rlock_, lock_, segment_);
  }

 private:
  bool acquire_until(const concur::detail::Deadline& deadline);
  bool wait_until(const concur::detail::Deadline& deadline);
  void require_held(const char* call) const;
  detail::ConditionState* state() const;
  std::optional<RLock> rlock_;  // one of the two
  std::optional<Lock> lock_;
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

// release() beyond the initial value is an error (concur::ValueError), as Python's.
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
