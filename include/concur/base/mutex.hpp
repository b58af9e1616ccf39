// concur/base/mutex.hpp: std::mutex and std::condition_variable with lock annotations.
//
// Mutex: a std::mutex that Clang's -Wthread-safety understands (see thread_annotations.hpp).
// MutexLock: the scoped holder (std::lock_guard with annotations).
// CondVar: waits on a Mutex held through a MutexLock.
// Thread safety: as std::mutex. Blocking: lock() and CondVar::wait*() block.
// Example:
//   concur::base::Mutex mu;
//   int count CONCUR_GUARDED_BY(mu) = 0;
//   { concur::base::MutexLock lock(mu); ++count; }
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "concur/base/thread_annotations.hpp"

namespace concur::base {

class CONCUR_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() CONCUR_ACQUIRE() { mu_.lock(); }
  void unlock() CONCUR_RELEASE() { mu_.unlock(); }
  bool try_lock() CONCUR_TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // For CondVar only.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class CONCUR_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) CONCUR_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() CONCUR_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  Mutex& mutex() const { return mu_; }

 private:
  Mutex& mu_;
};

class CondVar {
 public:
  // Waits until notified (spurious wake-ups possible, as std::condition_variable). The caller holds
  // `lock`; it is held again on return.
  void wait(MutexLock& lock) {
    std::unique_lock<std::mutex> native(lock.mutex().native(), std::adopt_lock);
    cv_.wait(native);
    native.release();
  }
  // Returns false on timeout.
  template <class Rep, class Period>
  bool wait_for(MutexLock& lock, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> native(lock.mutex().native(), std::adopt_lock);
    const bool notified = cv_.wait_for(native, timeout) == std::cv_status::no_timeout;
    native.release();
    return notified;
  }
  // Returns false on timeout.
  template <class Clock, class Duration>
  bool wait_until(MutexLock& lock, std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock<std::mutex> native(lock.mutex().native(), std::adopt_lock);
    const bool notified = cv_.wait_until(native, deadline) == std::cv_status::no_timeout;
    native.release();
    return notified;
  }
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace concur::base
