// concur/asyncio/sync.hpp: Lock, Event, Condition, Semaphore and BoundedSemaphore for coroutines
// on one loop (Python's asyncio.Lock and friends, 3.12 semantics).
//
// Fairness: waiters are served first come, first served, in Python's order (CPython's
// test_acquire_fifo_order*). A release hands the lock (or permit) to the first waiter, so a task
// that arrives later, or that releases and at once acquires again, cannot overtake one already
// woken but not yet run: a Semaphore stays locked() while such a waiter is pending, and when it
// runs it wakes as many of those queued behind it as there are permits. A Lock, as Python's, is
// not locked() between a release and the woken waiter running, yet nobody overtakes that waiter.
// Cancellation: a waiting acquire()/wait() throws CancelledError and leaves nothing behind; a
// waiter cancelled after it was handed the lock passes it on (or releases it).
// Thread safety: none; these belong to the loop's thread (use concur's thread primitives across
// threads). Misuse: releasing an unlocked Lock -> RuntimeError; waiting on or notifying a
// Condition without holding its lock -> RuntimeError; releasing a BoundedSemaphore above its
// initial value -> std::invalid_argument.
//
// Example:
//   asyncio::Lock lock;
//   asyncio::Task<void> worker() { auto held = co_await lock.hold(); /* critical section */ }
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "concur/asyncio/detail/wait.hpp"
#include "concur/asyncio/task.hpp"
#include "concur/errors.hpp"

namespace concur::asyncio {

class Lock;

// Holds a Lock until destroyed or release()d (Python's `async with lock`).
class LockGuard {
 public:
  LockGuard() = default;
  explicit LockGuard(Lock& lock) : lock_(&lock) {}
  LockGuard(LockGuard&& other) noexcept : lock_(std::exchange(other.lock_, nullptr)) {}
  LockGuard& operator=(LockGuard&& other) noexcept {
    if (this != &other) {
      release();
      lock_ = std::exchange(other.lock_, nullptr);
    }
    return *this;
  }
  ~LockGuard() { release(); }
  inline void release();
  bool owns_lock() const { return lock_ != nullptr; }

 private:
  Lock* lock_ = nullptr;
};

class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  bool locked() const { return locked_; }

  // co_await lock.acquire(): waits until this task holds the lock.
  auto acquire() { return Acquire{*this}; }
  // co_await lock.hold(): the same, returning a guard that releases it.
  Task<LockGuard> hold() {
    co_await acquire();
    co_return LockGuard(*this);
  }
  // Releases the lock and wakes the first waiter, which takes it when it runs (meanwhile
  // locked() is false, as in Python, but nobody can overtake it). RuntimeError if it is not
  // locked.
  void release() {
    if (!locked_) {
      throw RuntimeError(
          "asyncio::Lock::release(): Lock is not acquired; release only a lock "
          "you acquired");
    }
    locked_ = false;
    wake_next();
  }

 private:
  struct Acquire : detail::ListWaiter {
    Lock& lock;
    explicit Acquire(Lock& l) : lock(l) {}
    bool await_suspend(std::coroutine_handle<> h) { return suspend_on(lock.waiters_, h); }
    bool await_ready() {
      // Python's fast path: free, and nobody waiting or woken ahead of us.
      if (lock.locked_ || !lock.waiters_.empty() || lock.woken_ != 0) return false;
      lock.locked_ = true;
      return true;
    }
    void await_resume() {
      if (woken()) --lock.woken_;
      if (cancel_due()) {
        // Whether or not we were woken: if the lock is free, the next waiter must get its turn.
        if (!lock.locked_) lock.wake_next();
        throw_cancel();
      }
      lock.locked_ = true;
    }
  };
  // Python's _wake_up_first(): wakes the first waiter unless one woken is still to run.
  void wake_next() {
    if (woken_ == 0 && detail::wake_first(waiters_)) ++woken_;
  }
  detail::WaitList waiters_{"Lock"};
  bool locked_ = false;
  int woken_ = 0;  // woken by release(), not yet run (0 or 1)
};

inline void LockGuard::release() {
  if (Lock* l = std::exchange(lock_, nullptr)) l->release();
}

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  bool is_set() const { return set_; }
  // Sets the flag and wakes every waiter.
  void set() {
    if (set_) return;
    set_ = true;
    detail::wake_all(waiters_);
  }
  void clear() { set_ = false; }
  // co_await event.wait(): returns at once if set, else when set() is called.
  auto wait() { return Wait{*this}; }

 private:
  struct Wait : detail::ListWaiter {
    Event& event;
    explicit Wait(Event& e) : event(e) {}
    bool await_suspend(std::coroutine_handle<> h) { return suspend_on(event.waiters_, h); }
    bool await_ready() const { return event.set_; }
    void await_resume() {
      if (cancel_due()) throw_cancel();
    }
  };
  detail::WaitList waiters_{"Event"};
  bool set_ = false;
};

class Condition {
 public:
  // Uses `lock` (shared with other conditions), or a Lock of its own.
  explicit Condition(Lock* lock = nullptr) : lock_(lock ? lock : &own_) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  Lock& lock() { return *lock_; }
  bool locked() const { return lock_->locked(); }
  auto acquire() { return lock_->acquire(); }
  Task<LockGuard> hold() { return lock_->hold(); }
  void release() { lock_->release(); }

  // Releases the lock, waits for notify(), and re-acquires the lock before returning, even when
  // cancelled (then CancelledError follows, with the lock held, as in Python). RuntimeError if
  // the lock is not held.
  Task<void> wait();
  // Waits until predicate() is true (checked with the lock held, first before waiting) and
  // returns the predicate's last value, as Python's wait_for() does (a pointer, an optional,
  // anything that tests true: the caller gets what the predicate found).
  template <class Predicate>
  auto wait_for(Predicate predicate)
      -> Task<std::remove_cvref_t<std::invoke_result_t<Predicate&>>> {
    auto result = predicate();
    while (!result) {
      co_await wait();
      result = predicate();
    }
    co_return result;
  }
  // Wakes up to n waiters (they run once they re-acquire the lock). RuntimeError without the
  // lock held.
  void notify(std::size_t n = 1) {
    check_locked("notify");
    wake(n);
  }
  void notify_all() { notify(waiters_.size); }

 private:
  void check_locked(const char* who) const {
    if (!lock_->locked()) {
      throw RuntimeError(std::string("asyncio::Condition::") + who +
                         "(): cannot be called on an un-acquired lock; acquire it first");
    }
  }
  void wake(std::size_t n) {
    for (std::size_t i = 0; i < n && detail::wake_first(waiters_); ++i) {
    }
  }
  using Wait = detail::ListWait;
  Lock own_;
  Lock* lock_;
  detail::WaitList waiters_{"Condition"};
};

inline Task<void> Condition::wait() {
  check_locked("wait");
  lock_->release();
  bool cancelled = false;
  bool notified = false;
  {
    Wait w(waiters_);
    co_await w;
    notified = w.woken();
    cancelled = w.cancel_due();
    if (cancelled) w.suspension.task->set_must_cancel(false);  // deliver it after re-acquiring
  }
  // Re-acquire, whatever happens: a cancel meanwhile is remembered and delivered after.
  for (;;) {
    try {
      co_await lock_->acquire();
      break;
    } catch (const CancelledError&) {
      cancelled = true;
    }
  }
  if (cancelled) {
    // A notification we will not act on goes to another waiter (a spurious wake-up is allowed).
    if (notified) wake(1);
    throw CancelledError("asyncio::Condition::wait(): the task was cancelled");
  }
}

class Semaphore {
 public:
  // std::invalid_argument for a negative value.
  explicit Semaphore(long value = 1) : value_(value) {
    if (value < 0) {
      throw std::invalid_argument("asyncio::Semaphore: the initial value must be >= 0");
    }
  }
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // True when acquire() would wait: no permit, or others wait (or were handed a permit and have
  // not run yet) ahead of the caller: Python's FIFO rule.
  bool locked() const { return value_ == 0 || !waiters_.empty() || handed_ != 0; }
  long value() const { return value_; }
  auto acquire() { return Acquire{*this}; }
  // Returns a permit, handing it to the first waiter if there is one.
  void release() {
    if (bound_ >= 0 && value_ >= bound_) {
      throw std::invalid_argument(
          "asyncio::BoundedSemaphore::release(): released too many times (more releases than "
          "acquires)");
    }
    release_unchecked();
  }

 protected:
  long bound_ = -1;  // BoundedSemaphore's initial value; -1: unbounded

 private:
  struct Acquire : detail::ListWaiter {
    Semaphore& sem;
    explicit Acquire(Semaphore& s) : sem(s) {}
    bool await_suspend(std::coroutine_handle<> h) { return suspend_on(sem.waiters_, h); }
    bool await_ready() {
      if (sem.locked()) return false;
      --sem.value_;
      return true;
    }
    void await_resume() {
      if (woken()) --sem.handed_;
      bool cancelled = cancel_due();
      if (cancelled && woken()) ++sem.value_;  // handed a permit we will not use
      // Waiters queued behind us while we were handed a permit (the FIFO rule made them wait)
      // may now go, as many as there are permits (Python's acquire(), its finally clause).
      sem.hand_out();
      if (cancelled) throw_cancel();
    }
  };
  void release_unchecked() {
    ++value_;
    if (value_ > 0 && detail::wake_first(waiters_)) take_for_waiter();
  }
  void hand_out() {
    while (value_ > 0 && detail::wake_first(waiters_)) take_for_waiter();
  }
  // The woken waiter's permit is taken now, as Python's _wake_up_next() does, so that value()
  // reads the same as Python's _value.
  void take_for_waiter() {
    --value_;
    ++handed_;
  }
  detail::WaitList waiters_{"Semaphore"};
  long value_;
  long handed_ = 0;  // woken with a permit, not yet resumed
};

// A Semaphore that refuses to be released more often than acquired.
class BoundedSemaphore final : public Semaphore {
 public:
  explicit BoundedSemaphore(long value = 1) : Semaphore(value) { bound_ = value; }
};

}  // namespace concur::asyncio
