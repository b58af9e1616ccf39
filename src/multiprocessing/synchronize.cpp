// Lock, Semaphore, BoundedSemaphore and Event on robust, process-shared pthread objects in an
// anonymous shared segment.
#include "concur/multiprocessing/synchronize.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <stdexcept>
#include <system_error>

#include "multiprocessing/shared_sync.hpp"

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

}  // namespace detail

namespace {

template <class State>
detail::AnonymousSegment make_segment(const char* what) {
  detail::AnonymousSegment segment(sizeof(State), what);
  new (segment.data()) State();
  return segment;
}

bool alive(pid_t pid) {
  return kill(pid, 0) == 0 || errno == EPERM;
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
    throw std::logic_error(
        "concur::multiprocessing::Lock::release(): this thread does not hold the lock; only the "
        "holder may release it (use a Semaphore to signal between processes)");
  }
}

bool Lock::previous_owner_died() const {
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
    throw std::logic_error(
        "concur::multiprocessing::BoundedSemaphore::release(): released more times than "
        "acquired (Python raises ValueError here); release only what acquire() took");
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

}  // namespace concur::multiprocessing
