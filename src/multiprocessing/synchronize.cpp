// Lock, Semaphore, BoundedSemaphore and Event on robust, process-shared pthread objects in an
// anonymous shared segment.
#include "concur/multiprocessing/synchronize.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "concur/errors.hpp"
#include "multiprocessing/shared_sync.hpp"
#include "platform/process.hpp"

namespace concur::multiprocessing {

namespace detail {

struct LockState {
  SharedMutex mutex;
  bool previous_owner_died = false;
  // Who holds it, so that release() by anyone else is refused without asking pthread (and
  // without a sanitizer seeing a misuse).
  pid_t owner_pid = 0;
  pid_t owner_tid = 0;
};

struct RLockState {
  SharedMutex mutex;
  bool previous_owner_died = false;
  // Read by any thread to ask "is it mine?", written only by the holder.
  std::atomic<pid_t> owner_pid{0};
  std::atomic<pid_t> owner_tid{0};
  unsigned depth = 0;  // the holder's only
};

// Python's threading.Barrier state machine; `state` as there: 0 filling, 1 draining,
// -1 resetting, -2 broken.
struct BarrierState {
  SharedMutex mutex;
  SharedCondition changed;
  unsigned parties = 0;
  unsigned count = 0;
  int state = 0;
  bool has_timeout = false;
  std::int64_t timeout_ns = 0;
};

struct SemaphoreState {
  static constexpr int kHolderSlots = 64;
  SharedMutex mutex;
  SharedCondition changed;
  unsigned value = 0;
  unsigned initial = 0;
  bool bounded = false;
  // BoundedSemaphore only: units held per process, so a dead holder's units can come back.
  struct Holder {
    pid_t pid = 0;
    unsigned units = 0;
  } holders[kHolderSlots];
};

struct EventState {
  SharedMutex mutex;
  SharedCondition changed;
  bool flag = false;
};

// A Condition's own part: where its waiters sleep (on its lock's mutex).
struct ConditionState {
  SharedCondition notified;
};

}  // namespace detail

namespace {

template <class State>
detail::AnonymousSegment make_segment(const char* what) {
  detail::AnonymousSegment segment(sizeof(State), what);
  new (segment.data()) State();
  return segment;
}

bool alive(pid_t pid) {
  return platform::process_exists(pid);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Lock::Lock() : segment_(make_segment<detail::LockState>("concur Lock")) {}

detail::LockState* Lock::state() const {
  return static_cast<detail::LockState*>(segment_.data());
}

bool Lock::acquire_until(const concur::detail::Deadline& deadline) {
  const detail::LockResult r = state()->mutex.lock(deadline);
  if (r == detail::LockResult::kTimedOut) return false;
  state()->previous_owner_died = r == detail::LockResult::kOwnerDied;
  state()->owner_pid = getpid();
  state()->owner_tid = gettid();
  return true;
}

void Lock::release() {
  detail::LockState& s = *state();
  const bool mine = s.owner_pid == getpid() && s.owner_tid == gettid();
  if (mine) {
    s.owner_pid = 0;
    s.owner_tid = 0;
  }
  if (!mine || !s.mutex.unlock()) {
    throw AssertionError(
        "concur::multiprocessing::Lock::release(): this thread does not hold the lock; only the "
        "holder may release it (use a Semaphore to signal between processes)");
  }
}

bool Lock::previous_owner_died() const {
  return state()->previous_owner_died;
}

// ---------------------------------------------------------------------------------------------

RLock::RLock() : segment_(make_segment<detail::RLockState>("concur RLock")) {}

detail::RLockState* RLock::state() const {
  return static_cast<detail::RLockState*>(segment_.data());
}

namespace {
bool held_by_me(const detail::RLockState& s) {
  return s.owner_pid.load(std::memory_order_relaxed) == getpid() &&
         s.owner_tid.load(std::memory_order_relaxed) == gettid();
}
}  // namespace

bool RLock::acquire_until(const concur::detail::Deadline& deadline) {
  detail::RLockState& s = *state();
  if (held_by_me(s)) {
    ++s.depth;
    return true;
  }
  const detail::LockResult r = s.mutex.lock(deadline);
  if (r == detail::LockResult::kTimedOut) return false;
  s.previous_owner_died = r == detail::LockResult::kOwnerDied;
  s.depth = 1;
  s.owner_pid.store(getpid(), std::memory_order_relaxed);
  s.owner_tid.store(gettid(), std::memory_order_relaxed);
  return true;
}

void RLock::release() {
  detail::RLockState& s = *state();
  if (!held_by_me(s)) {
    throw RuntimeError(
        "concur::multiprocessing::RLock::release(): cannot release un-acquired lock (this thread "
        "does not hold it); release only after this thread's acquire()");
  }
  if (--s.depth > 0) return;
  s.owner_pid.store(0, std::memory_order_relaxed);
  s.owner_tid.store(0, std::memory_order_relaxed);
  s.mutex.unlock();
}

bool RLock::previous_owner_died() const {
  return state()->previous_owner_died;
}

// ---------------------------------------------------------------------------------------------

Semaphore::Semaphore(unsigned value) : Semaphore(value, false) {}

Semaphore::Semaphore(unsigned value, bool bounded)
    : segment_(make_segment<detail::SemaphoreState>("concur Semaphore")) {
  state()->value = value;
  state()->initial = value;
  state()->bounded = bounded;
}

detail::SemaphoreState* Semaphore::state() const {
  return static_cast<detail::SemaphoreState*>(segment_.data());
}

namespace {

// Units held by processes that no longer exist come back (BoundedSemaphore).
void reclaim_dead_holders(detail::SemaphoreState& s) {
  for (auto& h : s.holders) {
    if (h.units > 0 && !alive(h.pid)) {
      s.value += h.units;
      h = {};
    }
  }
}

void note_holder(detail::SemaphoreState& s, pid_t pid, int delta) {
  detail::SemaphoreState::Holder* free_slot = nullptr;
  for (auto& h : s.holders) {
    if (h.units > 0 && h.pid == pid) {
      h.units = static_cast<unsigned>(static_cast<int>(h.units) + delta);
      return;
    }
    if (h.units == 0 && !free_slot) free_slot = &h;
  }
  if (delta > 0 && free_slot) *free_slot = {pid, static_cast<unsigned>(delta)};
}

}  // namespace

bool Semaphore::acquire_until(const concur::detail::Deadline& deadline) {
  detail::SemaphoreState& s = *state();
  if (s.mutex.lock(std::nullopt) == detail::LockResult::kOwnerDied && s.bounded) {
    reclaim_dead_holders(s);
  }
  detail::UnlockOnExit unlock(s.mutex);
  while (s.value == 0) {
    // Wake now and then to take back the units of holders that died (BoundedSemaphore).
    auto slice = concur::detail::Clock::now() + std::chrono::milliseconds(50);
    if (deadline && *deadline < slice) slice = *deadline;
    s.changed.wait(s.mutex, slice);
    if (s.bounded) reclaim_dead_holders(s);
    if (s.value == 0 && deadline && concur::detail::Clock::now() >= *deadline) return false;
  }
  --s.value;
  if (s.bounded) note_holder(s, getpid(), +1);
  return true;
}

void Semaphore::release() {
  detail::SemaphoreState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  if (s.bounded && s.value >= s.initial) {
    throw ValueError(
        "concur::multiprocessing::BoundedSemaphore::release(): released more times than "
        "acquired; release only what acquire() took");
  }
  ++s.value;
  if (s.bounded) note_holder(s, getpid(), -1);
  s.changed.notify_one();
}

unsigned Semaphore::value() const {
  return state()->value;
}

// ---------------------------------------------------------------------------------------------

Event::Event() : segment_(make_segment<detail::EventState>("concur Event")) {}

detail::EventState* Event::state() const {
  return static_cast<detail::EventState*>(segment_.data());
}

void Event::set() {
  detail::EventState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  s.flag = true;
  s.changed.notify_all();
}

void Event::clear() {
  detail::EventState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  s.flag = false;
}

bool Event::is_set() const {
  detail::EventState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  return s.flag;
}

bool Event::wait_until(const concur::detail::Deadline& deadline) {
  detail::EventState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  while (!s.flag) {
    if (!s.changed.wait(s.mutex, deadline)) return s.flag;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Barrier: Python's threading.Barrier algorithm, on the shared mutex and condition.

Barrier::Barrier(unsigned parties, std::optional<std::chrono::nanoseconds> timeout)
    : segment_(parties == 0 ? throw std::invalid_argument(
                                  "concur::multiprocessing::Barrier: parties must be at least 1")
                            : make_segment<detail::BarrierState>("concur Barrier")) {
  state()->parties = parties;
  state()->has_timeout = timeout.has_value();
  state()->timeout_ns = timeout ? timeout->count() : 0;
}

detail::BarrierState* Barrier::state() const {
  return static_cast<detail::BarrierState*>(segment_.data());
}

std::optional<std::chrono::nanoseconds> Barrier::default_timeout() const {
  if (!state()->has_timeout) return std::nullopt;
  return std::chrono::nanoseconds(state()->timeout_ns);
}

namespace {

BrokenBarrierError broken_barrier() {
  return BrokenBarrierError(
      "concur::multiprocessing::Barrier::wait(): the barrier is broken (abort(), reset() or a "
      "timed-out wait()); call reset() before using it again");
}

void break_barrier(detail::BarrierState& s) {
  s.state = -2;
  s.changed.notify_all();
}

}  // namespace

unsigned Barrier::wait_for(std::optional<std::chrono::nanoseconds> timeout) {
  detail::BarrierState& s = *state();
  const concur::detail::Deadline deadline =
      timeout ? concur::detail::deadline_after(*timeout) : concur::detail::Deadline{};
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  while (s.state == -1 || s.state == 1) s.changed.wait(s.mutex, std::nullopt);  // draining
  if (s.state < 0) throw broken_barrier();
  const unsigned index = s.count++;
  struct Leave {  // Python's _exit(): the last one out lets the barrier fill again
    detail::BarrierState& s;
    ~Leave() {
      if (--s.count == 0 && (s.state == -1 || s.state == 1)) {
        s.state = 0;
        s.changed.notify_all();
      }
    }
  } leave{s};
  if (index + 1 == s.parties) {
    s.state = 1;
    s.changed.notify_all();
    return index;
  }
  while (s.state == 0) {
    if (!s.changed.wait(s.mutex, deadline) && s.state == 0) {
      break_barrier(s);
      throw broken_barrier();
    }
  }
  if (s.state < 0) throw broken_barrier();
  return index;
}

void Barrier::reset() {
  detail::BarrierState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  if (s.count > 0) {
    if (s.state == 0 || s.state == -2) s.state = -1;  // the waiters leave broken, then it fills
  } else {
    s.state = 0;
  }
  s.changed.notify_all();
}

void Barrier::abort() {
  detail::BarrierState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  break_barrier(s);
}

unsigned Barrier::parties() const {
  return state()->parties;
}

unsigned Barrier::n_waiting() const {
  detail::BarrierState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  return s.state == 0 ? s.count : 0;
}

bool Barrier::broken() const {
  detail::BarrierState& s = *state();
  s.mutex.lock(std::nullopt);
  detail::UnlockOnExit unlock(s.mutex);
  return s.state == -2;
}

// ---------------------------------------------------------------------------------------------

Condition::Condition() : Condition(RLock()) {}

Condition::Condition(RLock lock)
    : rlock_(std::move(lock)), segment_(make_segment<detail::ConditionState>("concur Condition")) {}

Condition::Condition(Lock lock)
    : lock_(std::move(lock)), segment_(make_segment<detail::ConditionState>("concur Condition")) {}

detail::ConditionState* Condition::state() const {
  return static_cast<detail::ConditionState*>(segment_.data());
}

bool Condition::acquire_until(const concur::detail::Deadline& deadline) {
  return rlock_ ? rlock_->acquire_until(deadline) : lock_->acquire_until(deadline);
}

void Condition::release() {
  if (rlock_) {
    rlock_->release();
  } else {
    lock_->release();
  }
}

void Condition::require_held(const char* call) const {
  const bool held =
      rlock_ ? held_by_me(*rlock_->state())
             : lock_->state()->owner_pid == getpid() && lock_->state()->owner_tid == gettid();
  if (!held) {
    throw RuntimeError(std::string("concur::multiprocessing::Condition::") + call + "(): cannot " +
                       call +
                       " on un-acquired lock; acquire() the condition (or hold a "
                       "std::lock_guard on it) first");
  }
}

bool Condition::wait_until(const concur::detail::Deadline& deadline) {
  require_held("wait");
  // Release every level the holder has (Python's _release_save), sleep on the lock's own mutex,
  // and come back as the same holder at the same depth (_acquire_restore).
  detail::SharedMutex& mutex = rlock_ ? rlock_->state()->mutex : lock_->state()->mutex;
  unsigned depth = 0;
  if (rlock_) {
    detail::RLockState& s = *rlock_->state();
    depth = s.depth;
    s.owner_pid.store(0, std::memory_order_relaxed);
    s.owner_tid.store(0, std::memory_order_relaxed);
  } else {
    lock_->state()->owner_pid = 0;
    lock_->state()->owner_tid = 0;
  }
  const bool notified = state()->notified.wait(mutex, deadline);
  if (rlock_) {
    detail::RLockState& s = *rlock_->state();
    s.depth = depth;
    s.owner_pid.store(getpid(), std::memory_order_relaxed);
    s.owner_tid.store(gettid(), std::memory_order_relaxed);
  } else {
    lock_->state()->owner_pid = getpid();
    lock_->state()->owner_tid = gettid();
  }
  return notified;
}

void Condition::notify(unsigned n) {
  require_held("notify");
  for (unsigned i = 0; i < n; ++i) state()->notified.notify_one();
}

void Condition::notify_all() {
  require_held("notify_all");
  state()->notified.notify_all();
}

}  // namespace concur::multiprocessing
