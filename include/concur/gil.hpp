// concur/gil.hpp: InterpreterLock, a Global Interpreter Lock for programs that embed an
// interpreter, with CPython's algorithm (Python/ceval_gil.c, the "new GIL" of 3.2) and two
// policies that fix what CPython's leaves broken.
//
// The protocol, as in CPython: a thread holds the lock to run interpreter code and calls
// checkpoint() often (CPython's eval loop does at every backward jump; that is the "eval
// breaker"). A thread that wants the lock waits one switch interval (default 5 ms); if the holder
// has not let go by then it sets a drop request, and the holder, at its next checkpoint(), drops
// the lock and queues to take it back. Around blocking calls a thread releases the lock
// (GilRelease, CPython's Py_BEGIN_ALLOW_THREADS) so that others run meanwhile.
//
// Policies (InterpreterLockOptions::policy):
// clang-format off
//   | policy      | who gets the lock next                     | guarantee, cost                          |
//   |-------------|--------------------------------------------|------------------------------------------|
//   | cpython     | any waiter; a thread arriving while the    | faithful to CPython 3.2-3.12, with its   |
//   | (default)   | lock is free takes it at once (barging);   | faults: no order among waiters (with 3   |
//   |             | a forced dropper waits until another       | or more busy threads one can wait many   |
//   |             | thread has taken it                        | intervals), and the convoy effect: a     |
//   |             |                                            | thread back from a short I/O call waits  |
//   |             |                                            | a whole interval for the lock            |
//   | fifo        | waiters in arrival order; the lock passes  | a waiter gets the lock within (waiters   |
//   |             | straight from the dropper to the oldest    | ahead of it + 1) x interval, plus one    |
//   |             | waiter                                     | checkpoint; a handoff always wakes a     |
//   |             |                                            | thread (no barging shortcut)             |
//   | io_priority | as cpython, but a thread re-taking the     | ends the convoy effect: an I/O thread    |
//   |             | lock after a voluntary release() asks for  | waits one checkpoint, not an interval;   |
//   |             | a drop at once instead of after an         | each of its returns costs a CPU-bound    |
//   |             | interval (Beazley's proposal, bpo-7946)    | holder one switch (spun, see below)      |
// clang-format on
// io_priority's hand-offs come microseconds apart, so with two or more CPUs in the affinity mask
// a thread waiting for such a hand-off spins for it (at most 20 us, the lock's mutex released)
// before it parks: no futex wake per hand-off. On one CPU it never spins. Who gets the lock is
// unchanged; only how a thread waits. cpython and fifo always park, as CPython's waiters do.
// free_threaded = true makes the lock a no-op, as CPython 3.13t without a GIL, so one workload can
// run with and without it.
//
// Instrumentation (InterpreterLockOptions::instrument): per-thread time held and waited, forced vs
// voluntary drops, a wait-time histogram, a timeline of who held and who waited (exportable as
// Chrome/Perfetto trace JSON), all built in rather than bolted on from outside. Counters
// (acquisitions, switches, drop requests) are always kept. With instrumentation off the lock
// reads no clock outside waiting, and checkpoint() is one relaxed load either way.
// Event hooks (add_event_hook) see wants_lock / acquired / released / exited, with the number of
// waiters, in the order they happen (as Ruby 3.2's GVL hooks).
// From outside: `concur-ps PID` shows each lock's policy, its holder, and the threads waiting for
// it with how long they have waited (concur/asyncio/inspect.hpp).
//
// Thread safety: every member may be called from any thread. acquire(), release(), checkpoint()
// act for the calling thread.
// Blocking: acquire() blocks until the lock is granted; checkpoint() blocks only when another
// thread asked for the lock; release() may block briefly under `cpython` when a drop was
// requested, until another thread has taken the lock (forced switching).
// Hooks run on the thread that caused the event while the lock's internal mutex is held: keep them
// short and do not call into the same lock from one.
// Clock: an injectable GilClock drives the switch interval; ManualGilClock makes interval
// behaviour deterministic in tests.
// Fork: in a child process the lock is re-initialised automatically (pthread_atfork): threads that
// did not survive the fork are forgotten, and the lock is held after fork only if the forking
// thread held it before.
// Lifetime: destroy the lock only when no thread holds it or waits for it.
// Errors: concur::RuntimeError, with the fix in the message, for releasing a lock the thread does
// not hold and for acquiring one it already holds (CPython aborts in these cases).
//
// Example:
//   concur::InterpreterLock gil({.policy = concur::GilPolicy::io_priority});
//   concur::GilGuard hold(gil);                    // this thread runs "bytecode"
//   for (auto& op : program) { run(op); gil.checkpoint(); }
//   { concur::GilRelease io(gil); read(fd, buf, n); }   // others run while we block
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "concur/base/thread_annotations.hpp"

namespace concur {

namespace detail {
class GilCore;
}

enum class GilPolicy { cpython, fifo, io_priority };

// The time source of a lock's switch interval. The default reads std::chrono::steady_clock.
class GilClock {
 public:
  virtual ~GilClock() = default;
  virtual std::int64_t now_ns() = 0;
  // True for clocks that move only when told to (waiters then wait for advance(), not real time).
  virtual bool manual() const { return false; }
};

// A clock that stands still until advance(): waiters whose switch interval has passed on it wake
// when it is advanced. For tests of interval behaviour that must not depend on timing.
// Thread safety: any thread may call any member. Must outlive every lock that uses it.
class ManualGilClock final : public GilClock {
 public:
  ManualGilClock();
  ~ManualGilClock() override;
  std::int64_t now_ns() override { return now_.load(std::memory_order_acquire); }
  bool manual() const override { return true; }
  void advance(std::chrono::nanoseconds by);

 private:
  friend class detail::GilCore;
  void subscribe(detail::GilCore* core);
  void unsubscribe(detail::GilCore* core);
  struct Subscribers;
  std::atomic<std::int64_t> now_{0};
  std::unique_ptr<Subscribers> subscribers_;
};

struct InterpreterLockOptions {
  GilPolicy policy = GilPolicy::cpython;
  std::chrono::nanoseconds switch_interval = std::chrono::milliseconds(5);
  bool free_threaded = false;
  // Timings, histogram and timeline (see the top of this file).
  bool instrument = false;
  // How many spans of the timeline to keep (the oldest are dropped first); needs instrument.
  std::size_t trace_capacity = 100'000;
  // Must outlive the lock; nullptr: steady_clock.
  GilClock* clock = nullptr;
};

enum class GilEvent { wants_lock, acquired, released, exited };
const char* to_string(GilEvent event);

struct GilEventInfo {
  GilEvent event = GilEvent::acquired;
  std::uint64_t thread = 0;  // the lock's number for the thread: 1, 2, ... in order of first use
  std::size_t waiters = 0;   // threads waiting for the lock right after the event
  bool forced = false;       // released: dropped because another thread asked
  std::int64_t time_ns = 0;  // on the lock's clock
};

struct GilThreadStats {
  std::uint64_t thread = 0;
  std::string name;  // name_current_thread(), or "thread <n>"
  std::uint64_t acquisitions = 0;
  std::uint64_t forced_drops = 0;         // dropped at a checkpoint() because another thread asked
  std::uint64_t voluntary_drops = 0;      // release() (GilRelease, end of a GilGuard)
  std::uint64_t drop_requests = 0;        // times this thread asked the holder to drop
  std::chrono::nanoseconds time_held{0};  // instrument only
  std::chrono::nanoseconds time_waited{0};  // instrument only
  bool exited = false;
};

struct GilStats {
  std::uint64_t acquisitions = 0;
  std::uint64_t switches = 0;  // acquisitions by a thread other than the previous holder
  std::uint64_t drop_requests = 0;
  std::uint64_t forced_switches = 0;  // forced drops
  std::size_t waiters = 0;            // now
  // Over every acquisition that had to wait (instrument only; zero otherwise).
  std::chrono::nanoseconds wait_p50{0};
  std::chrono::nanoseconds wait_p99{0};
  std::chrono::nanoseconds wait_max{0};
  std::vector<GilThreadStats> threads;
};

// One span of the timeline: a thread held the lock, or waited for it, from start to end.
struct GilSpan {
  enum Kind { holding, waiting };
  std::uint64_t thread = 0;
  Kind kind = holding;
  std::int64_t start_ns = 0;
  std::int64_t end_ns = 0;
};

// A Clang capability: with -Wthread-safety, Clang checks that code calling checkpoint() (or a
// function of yours marked CONCUR_REQUIRES(gil)) holds the lock, and that GilGuard / GilRelease
// pair up, as it does for mutexes (concur/base/thread_annotations.hpp).
class CONCUR_CAPABILITY("interpreter lock") InterpreterLock {
 public:
  explicit InterpreterLock(InterpreterLockOptions options = {});
  ~InterpreterLock();
  InterpreterLock(const InterpreterLock&) = delete;
  InterpreterLock& operator=(const InterpreterLock&) = delete;

  void acquire() CONCUR_ACQUIRE();
  // Gives up after `timeout`; false if the lock was not granted.
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> timeout) CONCUR_TRY_ACQUIRE(true) {
    return acquire_within(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  // A voluntary release (under io_priority, the next acquire() of this thread asks at once).
  void release() CONCUR_RELEASE();

  // The eval breaker: one relaxed load when nobody waits; when a drop was requested, drops the
  // lock and takes it back after another thread has had it. Call only while holding the lock.
  void checkpoint() CONCUR_REQUIRES(this) {
    if (drop_request_.load(std::memory_order_relaxed)) [[unlikely]] {
      yield_to_waiter();
    }
  }

  bool held_by_current_thread() const;

  void set_switch_interval(std::chrono::nanoseconds interval);
  std::chrono::nanoseconds switch_interval() const;
  GilPolicy policy() const;
  bool free_threaded() const;

  // How this thread appears in stats, traces and hooks.
  void name_current_thread(std::string name);

  GilStats stats() const;

  // Returns an id for remove_event_hook().
  int add_event_hook(std::function<void(const GilEventInfo&)> hook);
  void remove_event_hook(int id);

  // The recorded timeline (instrument only): spans in start order, times on the lock's clock.
  std::vector<GilSpan> timeline() const;
  // The timeline as Chrome trace JSON (open it in ui.perfetto.dev or chrome://tracing).
  std::string chrome_trace_json() const;

 private:
  friend class detail::GilCore;
  bool acquire_within(std::chrono::nanoseconds timeout);
  void yield_to_waiter();

  // The eval breaker, here rather than in the core so that checkpoint() is one load.
  std::atomic<bool> drop_request_{false};
  std::shared_ptr<detail::GilCore> core_;
};

// Holds the lock for a scope (acquire in the constructor, release in the destructor).
class CONCUR_SCOPED_CAPABILITY GilGuard {
 public:
  explicit GilGuard(InterpreterLock& lock) CONCUR_ACQUIRE(lock) : lock_(lock) { lock_.acquire(); }
  ~GilGuard() CONCUR_RELEASE() { lock_.release(); }
  GilGuard(const GilGuard&) = delete;
  GilGuard& operator=(const GilGuard&) = delete;

 private:
  InterpreterLock& lock_;
};

// Lets go of a held lock for a scope: CPython's Py_BEGIN_ALLOW_THREADS / Py_END_ALLOW_THREADS,
// around blocking I/O or native work that touches no interpreter state.
// (For Clang's analysis a scoped unlock: the destructor's RELEASE() ends the scope and restores
// the held state, as Clang's documentation spells it.)
class CONCUR_SCOPED_CAPABILITY GilRelease {
 public:
  explicit GilRelease(InterpreterLock& lock) CONCUR_RELEASE(lock) : lock_(lock) { lock_.release(); }
  ~GilRelease() CONCUR_RELEASE() { lock_.acquire(); }
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  InterpreterLock& lock_;
};

}  // namespace concur
