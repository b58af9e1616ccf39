// Internal: a robust, process-shared mutex and condition variable (pthread objects that live in
// shared memory), the parts Lock, Semaphore, Event and Queue are made of.
//
// Robust: if a process dies holding the mutex, the next locker gets it with kOwnerDied (the
// state is marked consistent again); callers arrange their shared state so that a holder dying at
// any instruction leaves it usable (each update has one store that commits it).
// Timeouts use CLOCK_MONOTONIC (std::chrono::steady_clock on Linux).
#pragma once

#include <pthread.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <system_error>

#include "concur/errors.hpp"

namespace concur::multiprocessing::detail {

using SyncClock = std::chrono::steady_clock;
using SyncDeadline = std::optional<SyncClock::time_point>;

inline timespec to_timespec(SyncClock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
  return ts;
}

// The same instant on CLOCK_REALTIME (for the calls that take only that clock).
inline timespec to_timespec_realtime(SyncClock::time_point t) {
  const auto left = t - SyncClock::now();
  const auto at = std::chrono::system_clock::now() +
                  std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch());
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
  return ts;
}

enum class LockResult { kLocked, kOwnerDied, kTimedOut };

class SharedMutex {
 public:
  SharedMutex() {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&mutex_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  LockResult lock(const SyncDeadline& deadline) {
    // A try first: the common uncontended case, and the one where the owner died before we came
    // (trylock reports EOWNERDEAD in a way ThreadSanitizer models; its timedlock does not).
    int rc = pthread_mutex_trylock(&mutex_);
    if (rc != EBUSY) return settle(rc);
    do {
      if (deadline) {
        // pthread_mutex_timedlock takes CLOCK_REALTIME; convert the steady deadline (instead of
        // pthread_mutex_clocklock, which ThreadSanitizer does not see, so it would misreport
        // every unlock after it).
        const timespec ts = to_timespec_realtime(*deadline);
        rc = pthread_mutex_timedlock(&mutex_, &ts);
      } else {
        rc = pthread_mutex_lock(&mutex_);
      }
    } while (rc == EINTR);
    return settle(rc);
  }

  // False if the caller did not hold it.
  bool unlock() { return pthread_mutex_unlock(&mutex_) == 0; }

  pthread_mutex_t* native() { return &mutex_; }

  // After a lock or a condition wait returned rc: recover from a dead owner.
  LockResult settle(int rc) {
    if (rc == 0) return LockResult::kLocked;
    if (rc == EOWNERDEAD) {
      pthread_mutex_consistent(&mutex_);
      return LockResult::kOwnerDied;
    }
    if (rc == ETIMEDOUT) return LockResult::kTimedOut;
    throw OSError(rc,
                  "concur::multiprocessing: a process-shared mutex failed (its shared "
                  "memory was unmapped or corrupted?)");
  }

 private:
  pthread_mutex_t mutex_;
};

class SharedCondition {
 public:
  SharedCondition() {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cond_, &attr);
    pthread_condattr_destroy(&attr);
  }
  SharedCondition(const SharedCondition&) = delete;
  SharedCondition& operator=(const SharedCondition&) = delete;

  // With `mutex` held. False at the deadline (the mutex is held again either way).
  bool wait(SharedMutex& mutex, const SyncDeadline& deadline) {
    int rc = 0;
    if (deadline) {
      const timespec ts = to_timespec(*deadline);
      rc = pthread_cond_clockwait(&cond_, mutex.native(), CLOCK_MONOTONIC, &ts);
    } else {
      rc = pthread_cond_wait(&cond_, mutex.native());
    }
    return mutex.settle(rc) != LockResult::kTimedOut;
  }
  void notify_one() { pthread_cond_signal(&cond_); }
  void notify_all() { pthread_cond_broadcast(&cond_); }

 private:
  pthread_cond_t cond_;
};

class UnlockOnExit {
 public:
  explicit UnlockOnExit(SharedMutex& mutex) : mutex_(mutex) {}
  ~UnlockOnExit() { mutex_.unlock(); }
  UnlockOnExit(const UnlockOnExit&) = delete;
  UnlockOnExit& operator=(const UnlockOnExit&) = delete;

 private:
  SharedMutex& mutex_;
};

}  // namespace concur::multiprocessing::detail
