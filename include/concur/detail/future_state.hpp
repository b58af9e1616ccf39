// Internal to concur: the shared state behind Future<T> and Promise<T>, and behind every task an
// executor runs. Users include concur/futures.hpp instead.
//
// One allocation holds everything a submitted task needs: the reference count, the status word,
// the waiter and callback lists, the result (value or exception) and, for tasks, the callable and
// its arguments (TaskState, below). Executors queue tasks through the intrusive `next_task` link,
// so queuing allocates nothing either.
//
// The status word packs the status (2 bits), a small lock bit that guards the two lists, and a
// "has listeners" bit. Completing a future that nobody waits on and nobody added callbacks to is a
// single compare-and-swap; only when a waiter or callback exists does the completer take the lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace concur {

// When concur::wait() returns (Python's FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };

namespace platform {
class Parker;
}

namespace detail {

using Clock = std::chrono::steady_clock;
// When a blocking call gives up; std::nullopt waits forever.
using Deadline = std::optional<Clock::time_point>;

// Python's timeouts: zero or negative means "do not wait", and a timeout too long to add to the
// clock (hours::max(), say) means "wait forever" rather than overflowing into the past.
template <class Rep, class Period>
Deadline deadline_after(std::chrono::duration<Rep, Period> timeout) {
  const auto now = Clock::now();
  if (timeout <= timeout.zero()) return now;
  constexpr double kForeverSeconds = 100.0 * 365 * 24 * 3600;
  if (std::chrono::duration<double>(timeout).count() >= kForeverSeconds) return std::nullopt;
  return now + std::chrono::ceil<Clock::duration>(timeout);
}

class StateBase;

// A waiting thread's hook on a state. Lives in the waiter (usually on its stack) and is unlinked
// before the waiter returns. on_done() runs on the completing thread with the state's lock held:
// it must be short and must not throw (it unparks a thread or bumps a counter).
class WaitNode {
 public:
  virtual void on_done(StateBase& state) noexcept = 0;
  virtual ~WaitNode() = default;

 private:
  friend class StateBase;
  WaitNode* prev_ = nullptr;
  WaitNode* next_ = nullptr;
  bool linked_ = false;
};

// A user's done-callback, owned by the state until it has run. run() invokes and deletes it.
class CallbackNode {
 public:
  virtual void run(StateBase& state) noexcept = 0;
  virtual ~CallbackNode() = default;

 private:
  friend class StateBase;
  CallbackNode* next_ = nullptr;
};

class StateBase {
 public:
  enum Status : std::uint32_t { kPending = 0, kRunning = 1, kFinished = 2, kCancelled = 3 };

  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;
  virtual ~StateBase() = default;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  Status status() const noexcept {
    return static_cast<Status>(word_.load(std::memory_order_acquire) & kStatusMask);
  }
  bool done() const noexcept { return status() >= kFinished; }
  // Valid once status() == kFinished.
  const std::exception_ptr& exception() const noexcept { return exception_; }

  // pending -> running; false if the future was cancelled first. Called once, by the executor
  // that owns the task (Python's set_running_or_notify_cancel()).
  bool try_start() noexcept {
    std::uint32_t word = word_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint32_t status = word & kStatusMask;
      if (status != kPending) return status == kRunning;
      if (word & kLocked) {
        word = wait_unlocked();
        continue;
      }
      if (word_.compare_exchange_weak(word, (word & ~kStatusMask) | kRunning,
                                      std::memory_order_acquire, std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  // pending -> cancelled, waking waiters and running callbacks. True if the future is (now or
  // already) cancelled; false if it is running or finished.
  bool cancel() noexcept;

  // pending/running -> finished, after the producer stored the value or exception_. Returns false
  // (and changes nothing) if the future was already done.
  bool finish() noexcept {
    std::uint32_t word = word_.load(std::memory_order_relaxed);
    for (;;) {
      if ((word & kStatusMask) >= kFinished) return false;
      if (word & (kLocked | kListeners)) return complete_slow(kFinished);
      if (word_.compare_exchange_weak(word, (word & ~kStatusMask) | kFinished,
                                      std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  // Completes a queued task with `error` instead of running it (an executor that can no longer
  // run tasks); false if it was cancelled first.
  bool fail(std::exception_ptr error) noexcept {
    if (!try_start()) return false;
    exception_ = std::move(error);
    return finish();
  }

  // Blocks until done or the deadline; returns done(). On a pool worker it runs other tasks of its
  // pool meanwhile (see concur/thread_pool.hpp).
  bool wait(const Deadline& deadline);

  // Links `node` so that completion calls node.on_done(); returns false, linking nothing, if the
  // state is already done.
  bool add_wait_node(WaitNode& node) noexcept;
  // Unlinks `node` if completion has not already; afterwards on_done() is not running and will not
  // run for it.
  void remove_wait_node(WaitNode& node) noexcept;
  // Takes ownership of `node`; runs it after completion, on the completing thread, or at once on
  // this thread if already done. Callbacks run in the order they were added.
  void add_callback(std::unique_ptr<CallbackNode> node) noexcept;

  // The task interface. An executor calls exactly one of run() or abandon() for each task it
  // queued; each consumes the queue's reference. Plain promise states are never queued.
  virtual void run() noexcept;
  virtual void abandon() noexcept;

  // The intrusive link executors queue tasks through.
  std::atomic<StateBase*> next_task{nullptr};

 protected:
  StateBase() = default;

  std::exception_ptr exception_;

 private:
  static constexpr std::uint32_t kStatusMask = 3;
  static constexpr std::uint32_t kLocked = 4;
  static constexpr std::uint32_t kListeners = 8;

  bool complete_slow(Status to) noexcept;
  static CallbackNode* oldest_first(CallbackNode* newest) noexcept;
  std::uint32_t lock() noexcept;
  void unlock(std::uint32_t word) noexcept {
    word_.store(word & ~kLocked, std::memory_order_release);
  }
  std::uint32_t wait_unlocked() const noexcept;

  std::atomic<std::uint32_t> word_{kPending};
  std::atomic<std::uint32_t> refs_{1};
  WaitNode* waiters_ = nullptr;        // guarded by the lock bit
  CallbackNode* callbacks_ = nullptr;  // guarded by the lock bit; newest first
};

// Adds storage for a T to the base state. The producer constructs the value, then calls finish().
template <class T>
class State : public StateBase {
 public:
  State() = default;
  ~State() override {
    if (has_value_) value().~T();
  }

  template <class... A>
  void emplace_value(A&&... args) {
    ::new (static_cast<void*>(&storage_)) T(std::forward<A>(args)...);
    has_value_ = true;
  }
  void set_exception_ptr(std::exception_ptr e) noexcept { this->exception_ = std::move(e); }

  // Valid once finished without an exception.
  T& value() noexcept { return *std::launder(reinterpret_cast<T*>(&storage_)); }

 private:
  alignas(T) unsigned char storage_[sizeof(T)];
  bool has_value_ = false;
};

template <>
class State<void> : public StateBase {
 public:
  void set_exception_ptr(std::exception_ptr e) noexcept { this->exception_ = std::move(e); }
};

// Set by a thread pool's worker while it runs a task at top level. TaskState::run() stores true
// there once the callable has returned and before the future completes, so a thread woken by the
// result already sees that worker as about to look for work: Python's rule starts a new thread only
// while no worker is idle, and a submit right after result() must not count this one as busy.
constinit inline thread_local std::atomic<bool>* callable_returned_flag = nullptr;

// A submitted task: the state plus the callable, in one allocation. The callable is destroyed as
// soon as it has run (or been abandoned), before the future completes, so that whatever it
// captured is released by the time result() returns.
template <class Fn, class T>
class TaskState final : public State<T> {
 public:
  explicit TaskState(Fn&& fn) : fn_(std::move(fn)) {}
  ~TaskState() override {
    if (alive_) fn_.~Fn();
  }

  void run() noexcept override {
    if (this->try_start()) {
      try {
        if constexpr (std::is_void_v<T>) {
          fn_();
        } else {
          this->emplace_value(fn_());
        }
      } catch (...) {
        this->set_exception_ptr(std::current_exception());
      }
      drop_callable();
      if (std::atomic<bool>* flag = callable_returned_flag) {
        flag->store(true, std::memory_order_relaxed);  // published by finish()'s release
      }
      this->finish();
    } else {
      drop_callable();
    }
    this->release();
  }

  void abandon() noexcept override {
    drop_callable();
    this->release();
  }

 private:
  void drop_callable() noexcept {
    fn_.~Fn();
    alive_ = false;
  }

  union {
    Fn fn_;
  };
  bool alive_ = true;
};

// Waits until `states` satisfy `when` or the deadline passes (concur::wait's core).
void wait_for_states(std::span<StateBase* const> states, ReturnWhen when, const Deadline& deadline);

// as_completed's core: yields the given states as they finish. Holds a reference to each until it
// has been yielded or the queue is destroyed. Duplicates are yielded once.
class CompletionQueue {
 public:
  CompletionQueue(std::span<StateBase* const> states, Deadline deadline);
  ~CompletionQueue();
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // The next finished state (the caller adopts its reference), or nullptr after the last one.
  // Throws concur::TimeoutError("N (of M) futures unfinished") once the deadline passes.
  StateBase* next();

  std::size_t total() const noexcept { return total_; }

 private:
  class Node;
  class Ready;
  std::unique_ptr<Ready> ready_;
  std::size_t total_ = 0;
  std::size_t yielded_ = 0;
  Deadline deadline_;
};

// Prints "concur: exception calling callback for <future>: <what>" to stderr, as Python logs it.
void report_callback_exception(const StateBase& state, std::exception_ptr error) noexcept;

}  // namespace detail
}  // namespace concur
