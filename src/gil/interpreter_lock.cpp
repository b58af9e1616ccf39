// InterpreterLock: CPython's GIL algorithm (Python/ceval_gil.c) and the fifo and io_priority
// policies, with built-in instrumentation. The structure follows CPython's: a boolean `locked_`
// guarded by a mutex, a condition variable waiters wait on for one switch interval at a time, a
// drop request (the eval breaker) that a waiter sets when an interval passes without a switch,
// and forced switching (a thread that dropped because it was asked waits until another thread
// has taken the lock).
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "concur/base/mutex.hpp"
#include "concur/errors.hpp"
#include "concur/gil.hpp"
#include "describe_exception.hpp"
#include "gil/histogram.hpp"
#include "inspect/layout.hpp"
#include "platform/process.hpp"
#include "platform/remote_process.hpp"
#include "platform/threads.hpp"

namespace concur {

const char* to_string(GilEvent event) {
  switch (event) {
    case GilEvent::wants_lock:
      return "wants_lock";
    case GilEvent::acquired:
      return "acquired";
    case GilEvent::released:
      return "released";
    case GilEvent::exited:
      return "exited";
  }
  return "?";
}

namespace detail {

namespace {

class SteadyGilClock final : public GilClock {
 public:
  std::int64_t now_ns() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

std::atomic<std::uint64_t> g_next_core_id{1};

// The CPUs this process may run on (its affinity mask): with one, a spinning thread only delays
// the thread it waits for, so the lock never spins.
int cpus_allowed() {
  return static_cast<int>(platform::usable_cpu_count());
}

// How long a spinning hand-off waits before it parks on the condition variable: a little longer
// than a futex wake-up takes on a busy VM (the cost it avoids), a small fraction of the switch
// interval, and short enough that a wrong guess (the other thread was not running) costs little.
constexpr std::int64_t kSpinNs = 20'000;

}  // namespace

// One per thread that has used the lock. Guarded by the core's mutex (GilCore::mu_; Clang's
// analysis cannot name another object's mutex here, so the functions that touch a GilThread
// require GilCore::mu_ instead).
struct GilThread {
  std::uint64_t number = 0;
  std::thread::id id;
  GilThreadStats stats;
  bool released_voluntarily = false;  // io_priority: the last drop was a release()
  bool granted = false;               // fifo: the lock was handed to this thread
  std::int64_t wait_start = 0;
  std::int64_t hold_start = 0;
  base::CondVar cv;  // fifo: where this thread waits for its handoff
  // For concur-ps, which reads them from another process; nothing here reads them.
  int tid = 0;                                // the kernel's id of the thread
  bool waiting = false;                       // between wants_lock and acquired (or giving up)
  asyncio::detail::InspectLink inspect_link;  // in GilCore::inspect_threads_
};

class GilCore : public std::enable_shared_from_this<GilCore> {
 public:
  GilCore(InterpreterLock& owner, const InterpreterLockOptions& options);
  ~GilCore();

  void detach_owner();
  bool take(std::optional<std::int64_t> give_up_at);
  void release();
  void yield();
  bool held_by_current_thread() const {
    return holder_id_.load(std::memory_order_acquire) == std::this_thread::get_id();
  }
  void thread_exited(std::thread::id id);
  void time_advanced();
  void reinit_in_child() CONCUR_RELEASE(mu_);
  void lock_for_fork() CONCUR_ACQUIRE(mu_) { mu_.lock(); }
  void unlock_after_fork() CONCUR_RELEASE(mu_) { mu_.unlock(); }

  void set_interval(std::chrono::nanoseconds interval) {
    interval_ns_.store(std::max<std::int64_t>(1, interval.count()), std::memory_order_relaxed);
  }
  std::chrono::nanoseconds interval() const {
    return std::chrono::nanoseconds(interval_ns_.load(std::memory_order_relaxed));
  }
  GilPolicy policy() const { return policy_; }
  bool free_threaded() const { return free_threaded_; }
  void name_current_thread(std::string name);
  GilStats stats() const;
  int add_hook(std::function<void(const GilEventInfo&)> hook);
  void remove_hook(int id);
  std::vector<GilSpan> timeline() const;
  std::uint64_t id() const { return id_; }
  std::int64_t clock_now() { return clock_->now_ns(); }

 private:
  using Lock = base::MutexLock;
  class IntervalTimer;

  GilThread& current(const Lock& lk) CONCUR_REQUIRES(mu_);
  std::int64_t now() { return clock_->now_ns(); }
  // Waits on `cv` until notified or `deadline` on the lock's clock.
  void wait(Lock& lk, base::CondVar& cv, std::int64_t deadline) CONCUR_REQUIRES(mu_);
  bool take_locked(Lock& lk, GilThread& t, std::optional<std::int64_t> give_up_at)
      CONCUR_REQUIRES(mu_);
  bool take_fifo(Lock& lk, GilThread& t, std::optional<std::int64_t> give_up_at)
      CONCUR_REQUIRES(mu_);
  void drop_locked(Lock& lk, GilThread& t, bool forced) CONCUR_REQUIRES(mu_);
  void grant(GilThread& t, bool waited) CONCUR_REQUIRES(mu_);
  void request_drop(GilThread& t) CONCUR_REQUIRES(mu_);
  void reset_drop_request() { breaker_->store(false, std::memory_order_relaxed); }
  void emit(GilEvent event, const GilThread& t, bool forced) CONCUR_REQUIRES(mu_);
  void record_span(const GilThread& t, GilSpan::Kind kind, std::int64_t start, std::int64_t end)
      CONCUR_REQUIRES(mu_);
  void notify_all_waiters() CONCUR_REQUIRES(mu_);
  // A thread starts or stops waiting for the lock (the count, and the thread's own mark).
  void begin_wait(GilThread& t) CONCUR_REQUIRES(mu_) {
    ++waiters_;
    t.waiting = true;
    t.wait_start = now();
  }
  void end_wait(GilThread& t) CONCUR_REQUIRES(mu_) {
    --waiters_;
    t.waiting = false;
  }
  template <class Done>
  void spin_until(Lock& lk, Done done) CONCUR_REQUIRES(mu_);  // unlocks and relocks mu_

  friend struct GilInspection;
  const std::uint64_t id_ = g_next_core_id.fetch_add(1);
  const GilPolicy policy_;
  const bool free_threaded_;
  const bool instrument_;
  const std::size_t trace_capacity_;
  std::unique_ptr<GilClock> own_clock_;
  GilClock* clock_;
  std::atomic<std::int64_t> interval_ns_;

  mutable base::Mutex mu_;
  base::CondVar cond_;         // the lock was released (cpython, io_priority)
  base::CondVar switch_cond_;  // another thread took the lock (forced switching)
  std::atomic<bool> detached_breaker_{false};
  // The owner's drop request, or detached_breaker_; set under mu_, read by checkpoint() without.
  std::atomic<bool>* breaker_;
  bool locked_ CONCUR_GUARDED_BY(mu_) = false;
  GilThread* holder_ CONCUR_GUARDED_BY(mu_) = nullptr;
  std::atomic<std::thread::id> holder_id_{};  // for held_by_current_thread() without mu_
  // io_priority's spinning hand-off (see spin_until): mirrors of locked_ and switch_number_ that
  // a spinning thread reads without mu_, and whether spinning can pay off here at all.
  std::atomic<bool> free_{true};
  std::atomic<std::uint64_t> switches_{0};
  const bool spin_;
  GilThread* last_holder_ CONCUR_GUARDED_BY(mu_) = nullptr;
  std::uint64_t switch_number_ CONCUR_GUARDED_BY(mu_) = 0;
  std::size_t waiters_ CONCUR_GUARDED_BY(mu_) = 0;
  std::deque<GilThread*> queue_ CONCUR_GUARDED_BY(mu_);  // fifo: waiters in arrival order
  std::vector<std::unique_ptr<GilThread>> threads_ CONCUR_GUARDED_BY(mu_);
  std::unordered_map<std::thread::id, GilThread*> by_id_ CONCUR_GUARDED_BY(mu_);
  GilStats totals_ CONCUR_GUARDED_BY(mu_);
  DurationHistogram waits_ CONCUR_GUARDED_BY(mu_);
  std::deque<GilSpan> trace_ CONCUR_GUARDED_BY(mu_);
  std::vector<std::pair<int, std::function<void(const GilEventInfo&)>>> hooks_
      CONCUR_GUARDED_BY(mu_);
  int next_hook_id_ CONCUR_GUARDED_BY(mu_) = 1;

  // This lock in the process's list that concur-ps reads (src/inspect/layout.hpp), and the head
  // of its list of threads (linked through GilThread::inspect_link, never unlinked: the threads
  // live as long as the lock).
  asyncio::detail::InspectLink inspect_link_;
  asyncio::detail::InspectLink* inspect_threads_ = nullptr;
  const bool steady_clock_;  // wait_start is comparable with CLOCK_MONOTONIC
};

// The offsets concur-ps follows from a lock to its threads.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
struct GilInspection {
  static std::uint32_t at(std::size_t offset) { return static_cast<std::uint32_t>(offset); }
  static void describe(asyncio::detail::InspectAnchor& a) {
    static_assert(sizeof(GilPolicy) == sizeof(std::int32_t));
    a.lock_policy = at(offsetof(GilCore, policy_));
    a.lock_holder = at(offsetof(GilCore, holder_));
    a.lock_threads = at(offsetof(GilCore, inspect_threads_));
    a.lock_steady_clock = at(offsetof(GilCore, steady_clock_));
    a.gil_thread_tid = at(offsetof(GilThread, tid));
    a.gil_thread_name = at(offsetof(GilThread, stats) + offsetof(GilThreadStats, name));
    a.gil_thread_waiting = at(offsetof(GilThread, waiting));
    a.gil_thread_wait_start = at(offsetof(GilThread, wait_start));
    a.gil_thread_exited = at(offsetof(GilThread, stats) + offsetof(GilThreadStats, exited));
  }
};
#pragma GCC diagnostic pop

// ---------------------------------------------------------------------------------------------
// Threads that used a lock tell it when they exit; every live lock is re-initialised in a child
// process after fork().

namespace {

struct ExitNotifier {
  std::vector<std::weak_ptr<GilCore>> cores;
  ~ExitNotifier() {
    const auto id = std::this_thread::get_id();
    for (auto& weak : cores) {
      if (auto core = weak.lock()) core->thread_exited(id);
    }
  }
};

ExitNotifier& exit_notifier() {
  static thread_local ExitNotifier notifier;
  return notifier;
}

// The last (core, record) pair this thread used, so that acquire() does not hash every time.
struct CachedThread {
  std::uint64_t core_id = 0;
  GilThread* thread = nullptr;
};
thread_local CachedThread tl_cached;

base::Mutex& registry_mutex() {
  static base::Mutex mu;
  return mu;
}
std::set<GilCore*>& registry() {
  static std::set<GilCore*> cores;
  return cores;
}

// The fork handlers take every lock in one handler and give them back in another, which Clang's
// analysis, being per function, cannot follow.
void before_fork() CONCUR_NO_THREAD_SAFETY_ANALYSIS;
void after_fork_in_parent() CONCUR_NO_THREAD_SAFETY_ANALYSIS;
void after_fork_in_child() CONCUR_NO_THREAD_SAFETY_ANALYSIS;

void before_fork() {
  registry_mutex().lock();
  for (GilCore* core : registry()) core->lock_for_fork();
}
void after_fork_in_parent() {
  for (GilCore* core : registry()) core->unlock_after_fork();
  registry_mutex().unlock();
}
void after_fork_in_child() {
  for (GilCore* core : registry()) core->reinit_in_child();
  registry_mutex().unlock();
}

void register_core(GilCore* core) {
  static std::once_flag atfork_once;
  std::call_once(atfork_once, [] {
    platform::on_every_fork(before_fork, after_fork_in_parent, after_fork_in_child);
  });
  base::MutexLock lock(registry_mutex());
  registry().insert(core);
}

void unregister_core(GilCore* core) {
  base::MutexLock lock(registry_mutex());
  registry().erase(core);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

GilCore::GilCore(InterpreterLock& owner, const InterpreterLockOptions& options)
    : policy_(options.policy),
      free_threaded_(options.free_threaded),
      instrument_(options.instrument),
      trace_capacity_(options.trace_capacity),
      own_clock_(options.clock ? nullptr : std::make_unique<SteadyGilClock>()),
      clock_(options.clock ? options.clock : own_clock_.get()),
      interval_ns_(std::max<std::int64_t>(1, options.switch_interval.count())),
      breaker_(&owner.drop_request_),
      spin_(options.policy == GilPolicy::io_priority && !clock_->manual() && cpus_allowed() >= 2),
      steady_clock_(own_clock_ != nullptr) {
  if (options.switch_interval.count() <= 0) {
    throw std::invalid_argument(
        "concur::InterpreterLock: switch_interval must be positive (CPython's default is 5 ms)");
  }
  if (clock_->manual()) static_cast<ManualGilClock*>(clock_)->subscribe(this);
  register_core(this);
  inspect_link_.self = this;
  asyncio::detail::register_object(asyncio::detail::InspectList::interpreter_locks, &inspect_link_,
                                   &GilInspection::describe);
}

GilCore::~GilCore() {
  asyncio::detail::unregister_object(asyncio::detail::InspectList::interpreter_locks,
                                     &inspect_link_);
  unregister_core(this);
  if (clock_->manual()) static_cast<ManualGilClock*>(clock_)->unsubscribe(this);
}

void GilCore::detach_owner() {
  Lock lk(mu_);
  if (waiters_ > 0 || (locked_ && holder_ && holder_->id != std::this_thread::get_id())) {
    std::fputs(
        "concur: an InterpreterLock was destroyed while another thread held or waited for it; "
        "join those threads first\n",
        stderr);
    std::terminate();
  }
  breaker_ = &detached_breaker_;
}

GilThread& GilCore::current(const Lock&) {
  if (tl_cached.core_id == id_) return *tl_cached.thread;
  const auto id = std::this_thread::get_id();
  auto it = by_id_.find(id);
  GilThread* t = nullptr;
  if (it != by_id_.end() && !it->second->stats.exited) {
    t = it->second;
  } else {
    auto fresh = std::make_unique<GilThread>();
    fresh->number = threads_.size() + 1;
    fresh->id = id;
    fresh->stats.thread = fresh->number;
    fresh->stats.name = "thread " + std::to_string(fresh->number);
    fresh->tid = platform::current_thread_id();
    fresh->inspect_link.self = fresh.get();
    asyncio::detail::link_part(&inspect_threads_, &fresh->inspect_link);
    t = fresh.get();
    threads_.push_back(std::move(fresh));
    by_id_[id] = t;
    exit_notifier().cores.push_back(weak_from_this());
  }
  tl_cached = {id_, t};
  return *t;
}

void GilCore::wait(Lock& lk, base::CondVar& cv, std::int64_t deadline) {
  if (clock_->manual()) {
    cv.wait(lk);  // ManualGilClock::advance() notifies
    return;
  }
  const std::int64_t left = deadline - now();
  if (left > 0) cv.wait_for(lk, std::chrono::nanoseconds(left));
}

void GilCore::notify_all_waiters() {
  cond_.notify_all();
  for (GilThread* t : queue_) t->cv.notify_all();
}

// io_priority's hand-offs come in pairs microseconds apart (an I/O thread back from a short call
// asks, the CPU-bound holder drops at its next checkpoint, the I/O thread gives the lock back
// when it blocks again). Parking on the condition variable for each costs both threads a futex
// wake and a reschedule, which halved the CPU-bound thread. So, with two or more CPUs, a thread
// that expects the lock to move within microseconds first spins for it with mu_ released, for
// at most kSpinNs, and parks only if it has not moved by then. The caller re-checks its
// condition under mu_ afterwards, so spinning changes only how long a wait takes, never who gets
// the lock. (The cpython policy never spins: CPython's waiters park, and the lab uses that
// policy as CPython's model, convoy effect included.)
// (Releasing mu_ through lk, as a condition-variable wait does, is beyond Clang's analysis.)
template <class Done>
void GilCore::spin_until(Lock& lk, Done done) CONCUR_NO_THREAD_SAFETY_ANALYSIS {
  if (!spin_ || done()) return;
  const auto pause = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  };
  lk.mutex().unlock();
  const std::int64_t end = now() + kSpinNs;
  for (int i = 1; !done(); ++i) {
    pause();
    if (i % 64 == 0 && now() >= end) break;
  }
  // The other thread usually still holds mu_ for a moment after it moved the lock (its
  // bookkeeping): blocking in lock() now would cost a futex wait here and a wake there, the very
  // cost the spin avoids, so mu_ is retaken by spinning too, for at most as long again.
  const std::int64_t relock_end = now() + kSpinNs;
  for (int i = 1; !lk.mutex().try_lock(); ++i) {
    pause();
    if (i % 64 == 0 && now() >= relock_end) {
      lk.mutex().lock();
      break;
    }
  }
}

void GilCore::time_advanced() {
  Lock lk(mu_);
  notify_all_waiters();
}

void GilCore::emit(GilEvent event, const GilThread& t, bool forced) {
  if (hooks_.empty()) return;
  const GilEventInfo info{event, t.number, waiters_, forced, now()};
  for (auto& [hook_id, hook] : hooks_) {
    try {
      hook(info);
    } catch (...) {
      const std::string line = "concur: an InterpreterLock event hook threw (" +
                               describe_exception(std::current_exception()) + "); ignored\n";
      std::fputs(line.c_str(), stderr);
    }
  }
}

void GilCore::record_span(const GilThread& t, GilSpan::Kind kind, std::int64_t start,
                          std::int64_t end) {
  if (trace_capacity_ == 0) return;
  if (trace_.size() == trace_capacity_) trace_.pop_front();
  trace_.push_back({t.number, kind, start, end});
}

void GilCore::request_drop(GilThread& t) {
  breaker_->store(true, std::memory_order_relaxed);
  ++totals_.drop_requests;
  ++t.stats.drop_requests;
}

void GilCore::grant(GilThread& t, bool waited) {
  locked_ = true;
  free_.store(false, std::memory_order_relaxed);
  holder_ = &t;
  holder_id_.store(t.id, std::memory_order_release);
  if (last_holder_ != &t) {
    last_holder_ = &t;
    ++switch_number_;
    switches_.store(switch_number_, std::memory_order_release);
    ++totals_.switches;
  }
  // As CPython: whoever takes the lock clears the pending request; a waiter that still waits
  // asks again after its next interval.
  reset_drop_request();
  ++totals_.acquisitions;
  ++t.stats.acquisitions;
  t.released_voluntarily = false;
  if (instrument_) {
    const std::int64_t at = now();
    if (waited) {
      waits_.record(at - t.wait_start);
      t.stats.time_waited += std::chrono::nanoseconds(at - t.wait_start);
      record_span(t, GilSpan::waiting, t.wait_start, at);
    }
    t.hold_start = at;
  }
  emit(GilEvent::acquired, t, false);
}

// ---------------------------------------------------------------------------------------------
// Taking the lock

// A waiter's switch interval: it runs from the start of the wait or the last switch, and when it
// passes with no switch the waiter asks the holder to drop the lock (and starts another). A
// wake-up that is neither (a notify that went to another waiter, a spurious one, a manual clock
// step) does not restart it.
class GilCore::IntervalTimer {
 public:
  IntervalTimer(GilCore& core, GilThread& t) CONCUR_REQUIRES(core.mu_)
      : core_(core), t_(t), saved_switch_(core.switch_number_), end_(core.now() + interval()) {}

  std::int64_t deadline(const std::optional<std::int64_t>& give_up_at) const {
    return give_up_at ? std::min(end_, *give_up_at) : end_;
  }

  // `core` is the timer's own core, passed again so that Clang's analysis can see that its
  // mutex is the caller's.
  void check(GilCore& core) CONCUR_REQUIRES(core.mu_) {
    const std::int64_t at = core.now();
    if (core.switch_number_ != saved_switch_) {
      saved_switch_ = core.switch_number_;
      end_ = at + interval();
    } else if (at >= end_) {
      core.request_drop(t_);
      end_ = at + interval();
    }
  }

 private:
  std::int64_t interval() const { return core_.interval_ns_.load(std::memory_order_relaxed); }
  GilCore& core_;
  GilThread& t_;
  std::uint64_t saved_switch_;
  std::int64_t end_;
};

bool GilCore::take(std::optional<std::int64_t> give_up_at) {
  Lock lk(mu_);
  GilThread& t = current(lk);
  if (holder_ == &t) {
    throw RuntimeError(
        "concur::InterpreterLock::acquire(): this thread already holds the lock, which is not "
        "recursive; release() it first, or test held_by_current_thread()");
  }
  return take_locked(lk, t, give_up_at);
}

bool GilCore::take_locked(Lock& lk, GilThread& t, std::optional<std::int64_t> give_up_at) {
  if (policy_ == GilPolicy::fifo) return take_fifo(lk, t, give_up_at);
  if (!locked_) {
    grant(t, false);
    switch_cond_.notify_all();
    return true;
  }
  begin_wait(t);
  emit(GilEvent::wants_lock, t, false);
  // io_priority: back from a voluntary release (I/O), ask at once instead of after an interval.
  if (policy_ == GilPolicy::io_priority && t.released_voluntarily) request_drop(t);
  spin_until(lk, [this] { return free_.load(std::memory_order_acquire); });
  IntervalTimer timer(*this, t);
  while (locked_) {
    wait(lk, cond_, timer.deadline(give_up_at));
    if (!locked_) break;
    if (give_up_at && now() >= *give_up_at) {
      end_wait(t);
      switch_cond_.notify_all();  // a forced dropper may be waiting for us to take it
      return false;
    }
    timer.check(*this);
  }
  end_wait(t);
  grant(t, true);
  switch_cond_.notify_all();
  return true;
}

bool GilCore::take_fifo(Lock& lk, GilThread& t, std::optional<std::int64_t> give_up_at) {
  if (!locked_ && queue_.empty()) {
    grant(t, false);
    return true;
  }
  t.granted = false;
  queue_.push_back(&t);
  begin_wait(t);
  emit(GilEvent::wants_lock, t, false);
  IntervalTimer timer(*this, t);
  while (!t.granted) {
    wait(lk, t.cv, timer.deadline(give_up_at));
    if (t.granted) break;
    if (give_up_at && now() >= *give_up_at) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), &t));
      end_wait(t);
      return false;
    }
    timer.check(*this);
  }
  return true;  // the dropper granted it to us (and did the bookkeeping)
}

// ---------------------------------------------------------------------------------------------
// Dropping the lock

void GilCore::release() {
  Lock lk(mu_);
  GilThread& t = current(lk);
  if (holder_ != &t) {
    throw RuntimeError(
        "concur::InterpreterLock::release(): this thread does not hold the lock; release only "
        "what this thread acquired (GilGuard and GilRelease pair the calls for you)");
  }
  drop_locked(lk, t, false);
}

void GilCore::drop_locked(Lock& lk, GilThread& t, bool forced) {
  if (forced) {
    ++t.stats.forced_drops;
    ++totals_.forced_switches;
  } else {
    ++t.stats.voluntary_drops;
  }
  t.released_voluntarily = !forced;
  if (instrument_) {
    const std::int64_t at = now();
    t.stats.time_held += std::chrono::nanoseconds(at - t.hold_start);
    record_span(t, GilSpan::holding, t.hold_start, at);
  }
  const bool drop_was_requested = breaker_->load(std::memory_order_relaxed);
  holder_ = nullptr;
  holder_id_.store(std::thread::id(), std::memory_order_release);
  if (policy_ == GilPolicy::fifo) {
    emit(GilEvent::released, t, forced);
    if (queue_.empty()) {
      locked_ = false;
      free_.store(true, std::memory_order_release);
      return;
    }
    // Hand the lock straight to the oldest waiter: nobody can barge in, the dropper included.
    GilThread* next = queue_.front();
    queue_.pop_front();
    end_wait(*next);
    next->granted = true;
    grant(*next, true);
    next->cv.notify_one();
    return;
  }
  locked_ = false;
  free_.store(true, std::memory_order_release);
  emit(GilEvent::released, t, forced);
  cond_.notify_one();
  // Forced switching (CPython's FORCE_SWITCHING): when another thread asked, do not come back
  // before it has had the lock, or on a multi-core machine the dropper would usually re-take it
  // first. A waiter that gives up (timed acquire) also ends the wait.
  if (drop_was_requested && last_holder_ == &t) {
    reset_drop_request();
    const std::uint64_t before = switch_number_;
    spin_until(lk, [&] { return switches_.load(std::memory_order_acquire) != before; });
    while (last_holder_ == &t && waiters_ != 0) switch_cond_.wait(lk);
  }
}

void GilCore::yield() {
  Lock lk(mu_);
  GilThread& t = current(lk);
  if (holder_ != &t) {
    throw RuntimeError(
        "concur::InterpreterLock::checkpoint(): called by a thread that does not hold the lock; "
        "call it only between acquire() and release()");
  }
  if (!breaker_->load(std::memory_order_relaxed)) return;  // already answered
  drop_locked(lk, t, true);
  take_locked(lk, t, std::nullopt);
}

void GilCore::thread_exited(std::thread::id id) {
  Lock lk(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  GilThread& t = *it->second;
  if (holder_ == &t) {
    std::fputs(
        "concur: a thread exited while holding an InterpreterLock; released it so that the "
        "other threads do not hang (pair every acquire() with a release(), or use GilGuard)\n",
        stderr);
    drop_locked(lk, t, false);
  }
  t.stats.exited = true;
  by_id_.erase(it);
  emit(GilEvent::exited, t, false);
}

void GilCore::reinit_in_child() {
  // Only the forking thread survives; our mutex is held by it (before_fork took it).
  new (&cond_) base::CondVar();
  new (&switch_cond_) base::CondVar();
  const auto me = std::this_thread::get_id();
  for (auto& t : threads_) {
    if (t->id != me) t->stats.exited = true;
    t->waiting = false;
    new (&t->cv) base::CondVar();
  }
  std::erase_if(by_id_, [&](const auto& entry) { return entry.first != me; });
  queue_.clear();
  waiters_ = 0;
  breaker_->store(false, std::memory_order_relaxed);
  if (holder_ && holder_->id != me) {
    holder_ = nullptr;
    locked_ = false;
    free_.store(true, std::memory_order_relaxed);
    holder_id_.store(std::thread::id(), std::memory_order_release);
  }
  mu_.unlock();
}

// ---------------------------------------------------------------------------------------------
// Observing

void GilCore::name_current_thread(std::string name) {
  Lock lk(mu_);
  current(lk).stats.name = std::move(name);
}

GilStats GilCore::stats() const {
  Lock lk(mu_);
  GilStats out = totals_;
  out.waiters = waiters_;
  out.wait_p50 = std::chrono::nanoseconds(waits_.percentile(50));
  out.wait_p99 = std::chrono::nanoseconds(waits_.percentile(99));
  out.wait_max = std::chrono::nanoseconds(waits_.max());
  for (const auto& t : threads_) out.threads.push_back(t->stats);
  return out;
}

int GilCore::add_hook(std::function<void(const GilEventInfo&)> hook) {
  Lock lk(mu_);
  hooks_.emplace_back(next_hook_id_, std::move(hook));
  return next_hook_id_++;
}

void GilCore::remove_hook(int id) {
  Lock lk(mu_);
  std::erase_if(hooks_, [&](const auto& h) { return h.first == id; });
}

std::vector<GilSpan> GilCore::timeline() const {
  Lock lk(mu_);
  std::vector<GilSpan> spans(trace_.begin(), trace_.end());
  std::sort(spans.begin(), spans.end(),
            [](const GilSpan& a, const GilSpan& b) { return a.start_ns < b.start_ns; });
  return spans;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// ManualGilClock

struct ManualGilClock::Subscribers {
  base::Mutex mu;
  std::set<detail::GilCore*> cores CONCUR_GUARDED_BY(mu);
};

ManualGilClock::ManualGilClock() : subscribers_(std::make_unique<Subscribers>()) {}
ManualGilClock::~ManualGilClock() = default;

void ManualGilClock::advance(std::chrono::nanoseconds by) {
  now_.fetch_add(by.count(), std::memory_order_acq_rel);
  base::MutexLock lock(subscribers_->mu);
  for (detail::GilCore* core : subscribers_->cores) core->time_advanced();
}

void ManualGilClock::subscribe(detail::GilCore* core) {
  base::MutexLock lock(subscribers_->mu);
  subscribers_->cores.insert(core);
}

void ManualGilClock::unsubscribe(detail::GilCore* core) {
  base::MutexLock lock(subscribers_->mu);
  subscribers_->cores.erase(core);
}

// ---------------------------------------------------------------------------------------------
// InterpreterLock

InterpreterLock::InterpreterLock(InterpreterLockOptions options)
    : core_(std::make_shared<detail::GilCore>(*this, options)) {}

InterpreterLock::~InterpreterLock() {
  core_->detach_owner();
}

void InterpreterLock::acquire() {
  if (core_->free_threaded()) return;
  core_->take(std::nullopt);
}

bool InterpreterLock::acquire_within(std::chrono::nanoseconds timeout) {
  if (core_->free_threaded()) return true;
  return core_->take(core_->clock_now() + std::max<std::int64_t>(0, timeout.count()));
}

void InterpreterLock::release() {
  if (core_->free_threaded()) return;
  core_->release();
}

void InterpreterLock::yield_to_waiter() {
  core_->yield();
}

bool InterpreterLock::held_by_current_thread() const {
  return core_->free_threaded() || core_->held_by_current_thread();
}

void InterpreterLock::set_switch_interval(std::chrono::nanoseconds interval) {
  if (interval.count() <= 0) {
    throw std::invalid_argument(
        "concur::InterpreterLock::set_switch_interval(): the interval must be positive "
        "(CPython's default is 5 ms)");
  }
  core_->set_interval(interval);
}

std::chrono::nanoseconds InterpreterLock::switch_interval() const {
  return core_->interval();
}
GilPolicy InterpreterLock::policy() const {
  return core_->policy();
}
bool InterpreterLock::free_threaded() const {
  return core_->free_threaded();
}
void InterpreterLock::name_current_thread(std::string name) {
  core_->name_current_thread(std::move(name));
}
GilStats InterpreterLock::stats() const {
  return core_->stats();
}
int InterpreterLock::add_event_hook(std::function<void(const GilEventInfo&)> hook) {
  return core_->add_hook(std::move(hook));
}
void InterpreterLock::remove_event_hook(int id) {
  core_->remove_hook(id);
}
std::vector<GilSpan> InterpreterLock::timeline() const {
  return core_->timeline();
}

}  // namespace concur
