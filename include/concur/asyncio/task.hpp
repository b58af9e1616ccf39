// concur/asyncio/task.hpp: Task<T>, a C++20 coroutine that is also Python's asyncio.Task.
//
// A function returning Task<T> is a coroutine. Calling it runs nothing (like calling an `async
// def`): the Task is *lazy* until either
//   - another coroutine does `co_await f()`: it runs inline, as part of the awaiting task, exactly
//     as `await f()` runs a coroutine in Python (no scheduling, no new task), or
//   - asyncio::create_task(f()) schedules it on the running loop: it becomes a task of its own that
//     runs concurrently, and the Task handle is Python's Task object: done(), cancel(), result(),
//     add_done_callback(), and `co_await task` to wait for its result.
//
// States (a spawned task):   pending -> done (result | exception | cancelled)
//   pending: scheduled to start, running, or suspended at a co_await.
//   cancel() on a pending task requests cancellation: the task's current co_await throws
//   concur::CancelledError (a task not started yet never starts); the task may catch it and carry
//   on (Python's semantics: a request, counted by cancelling(), withdrawn by uncancel()). A task
//   that awaits another task passes the cancellation on to it, as in Python (shield() stops it).
//
// Handles: Task<T> is a reference-counted handle (copy = another reference to the same task, as
// a Python reference). The frame lives until the task has finished and the last handle is gone;
// a spawned task keeps itself alive while it runs, so dropping every handle does not kill it
// (unlike Python, where an unreferenced task may be garbage-collected mid-flight).
//
// Lambdas: a coroutine lambda's captures live in the lambda object, not in the coroutine frame, so
// `create_task([&] () -> Task<void> {...}())` leaves the task reading a destroyed temporary. Pass
// what the coroutine needs as parameters (they are copied into the frame), or keep the lambda
// object alive as long as the task (task_group() and timeout() keep theirs).
//
// Thread safety: none. A task, its handles and its loop belong to the loop's thread.
// Errors: result() before done() throws InvalidStateError; result() of a cancelled task throws
// CancelledError; a task's exception is rethrown by result() and co_await as its own type. A
// spawned task whose exception nobody retrieved is reported when its last handle goes ("Task
// exception was never retrieved", as asyncio logs it).
//
// Example:
//   asyncio::Task<int> answer() { co_await asyncio::sleep(10ms); co_return 42; }
//   asyncio::Task<void> main_task() {
//     auto t = asyncio::create_task(answer());   // runs concurrently from the next loop turn
//     int v = co_await t;                        // 42
//   }
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include "concur/base/source_location.hpp"

#include "concur/asyncio/detail/core.hpp"
#include "concur/errors.hpp"

namespace concur::asyncio {

template <class T = void>
class Task;

namespace detail {

// Someone waiting for a spawned task to finish: an awaiting task, gather(), wait(), a callback.
struct DoneNode {
  DoneNode* prev = nullptr;
  DoneNode* next = nullptr;
  // Called once when the task is done. Returns the suspended task to wake, if any: the finishing
  // task switches to it directly (symmetric transfer) when it is the only node, and queues it
  // otherwise. A node that does its own work (a callback, gather's counter) returns nullptr.
  Suspension* (*on_done)(DoneNode*, TaskBase*) = nullptr;
  // The task that waits through this node (by co_await, gather, wait, or as a TaskGroup's
  // parent); null for a callback. Who awaits a task is read from these (call_graph.hpp).
  TaskBase* awaiter = nullptr;
  bool linked = false;
};

class TaskBase {
 public:
  enum Phase : std::uint8_t { kLazy, kInline, kScheduled, kDone };

  bool done() const { return phase_ == kDone; }
  bool cancelled() const { return phase_ == kDone && cancelled_; }
  bool spawned() const { return spawned_; }
  Phase phase() const { return phase_; }
  // Python's Task.cancel(msg): false if already done.
  bool cancel(std::string_view message = {});
  int cancelling() const { return cancel_requests_; }
  // Withdraws one request; when none is left, a pending one not yet delivered is dropped too
  // (Python 3.12's uncancel()).
  int uncancel() {
    if (cancel_requests_ > 0) --cancel_requests_;
    if (cancel_requests_ == 0) must_cancel_ = false;
    return cancel_requests_;
  }
  // Throws InvalidStateError (not done) or CancelledError (cancelled); marks it retrieved.
  std::exception_ptr exception();
  void check_result_ready(const char* who);  // the same checks, then rethrows a stored exception
  std::string name() const;
  void set_name(std::string name);
  // The number in its default name "Task-N": unique on its loop, from 1 in creation order (0 for
  // a task never spawned).
  std::uint32_t id() const { return id_; }
  // "task NAME (created at FILE:LINE)", for reports.
  std::string describe() const;
  const concur::base::source_location& created_at() const { return created_at_; }
  // When it was created: the loop's clock at the start of the turn that created it
  // (LoopCore::turn_ms; milliseconds, wrapping every 49 days).
  std::uint32_t created_ms() const { return created_ms_; }
  // The message given to cancel(), if any.
  std::string cancel_message() const { return extras_ ? extras_->cancel_message : std::string(); }

  void add_done_node(DoneNode* n);
  void remove_done_node(DoneNode* n);
  void add_done_callback(std::function<void()> fn);

  // Handle bookkeeping.
  void add_ref() { ++refs_; }
  std::uint32_t refs() const { return refs_; }
  void release();

  // EventLoop::close() gives up on a task that ignored cancellation: it is unlinked, marked
  // cancelled and its frame destroyed; if handles still refer to it, the frame is leaked instead
  // (destroying it later would run its destructors without a loop).
  void abandon() noexcept;

  // Python's coro.close() for a coroutine that will never run (refused by TaskGroup::create_task):
  // dropping it is then deliberate, and debug mode does not report it as never awaited.
  void close_unstarted() noexcept {
    if (phase_ == kLazy) closed_ = true;
  }

  // Set by gather() when it runs as a task of its own (create_task(gather(...))): the task is
  // then Python's _GatheringFuture. cancel() returns false once the children are all done (or
  // one failed) and gather is only waiting to resume (bpo-26923: the results stand), and a
  // CancelledError ends it done with that exception, not cancelled() (Python's
  // outer.set_exception(CancelledError)).
  void set_gathering() noexcept { gathering_ = true; }

  // create_task(): schedules a lazy task on `core`.
  // Makes it a task of `core`. eager: its first step runs now, inside this call, until its first
  // suspension (Python 3.12's eager tasks); otherwise it is scheduled for the next turn.
  void spawn(LoopCore& core, concur::base::source_location where, bool eager = false);

  // The coroutine's last step (final_suspend). Returns the coroutine to run next.
  std::coroutine_handle<> on_final() noexcept;
  void on_exception(std::exception_ptr e) noexcept;

  // The loop the task runs on (null while lazy).
  LoopCore* loop_core() const { return core_; }
  // For the awaitables: the task's suspension point.
  Suspension* waiting() const { return waiting_; }
  void set_waiting(Suspension* s) { waiting_ = s; }
  // The nodes of those waiting for this task to finish (see DoneNode::awaiter).
  const DoneNode* done_nodes() const { return done_head_; }
  bool must_cancel() const { return must_cancel_; }
  void set_must_cancel(bool on = true) { must_cancel_ = on; }
  // Finished by raising an exception other than CancelledError.
  bool failed() const { return phase_ == kDone && error_ && !cancelled_; }
  // Consumes a pending cancellation: throws CancelledError if one is pending.
  void throw_if_cancel_requested();
  [[noreturn]] void throw_cancelled() const;

  // Links in the loop's list of live tasks (asyncio.all_tasks()).
  TaskBase* all_prev = nullptr;
  TaskBase* all_next = nullptr;

 protected:
  TaskBase() = default;
  ~TaskBase();
  TaskBase(const TaskBase&) = delete;
  TaskBase& operator=(const TaskBase&) = delete;

  std::coroutine_handle<> frame_;
  std::coroutine_handle<> continuation_;  // inline: the coroutine awaiting this one
  LoopCore* core_ = nullptr;
  Suspension* waiting_ = nullptr;
  DoneNode* done_head_ = nullptr;
  DoneNode* done_tail_ = nullptr;
  std::exception_ptr error_;
  // Rarely set, so kept out of line: a parked task's frame is what 10,000 connections cost.
  struct Extras {
    std::string name;
    std::string cancel_message;
  };
  std::unique_ptr<Extras> extras_;
  concur::base::source_location created_at_;
  std::uint32_t refs_ = 1;
  std::uint32_t id_ = 0;
  std::uint32_t created_ms_ = 0;  // in padding: the task is no larger for it
  std::uint16_t cancel_requests_ = 0;
  Phase phase_ = kLazy;
  bool spawned_ = false;
  bool must_cancel_ = false;
  bool cancelled_ = false;
  bool retrieved_ = false;
  bool abandoned_ = false;
  bool closed_ = false;     // see close_unstarted()
  bool gathering_ = false;  // see set_gathering()

 private:
  static void step_start(void* self);
  std::coroutine_handle<> finish() noexcept;
  std::string cancel_message_or_default() const;
  void report_unretrieved();
  void drop_done_nodes() noexcept;
  friend class LoopCore;
  friend struct InspectOffsets;  // concur-ps reads these fields from outside (inspect_anchor.cpp)

  template <class>
  friend class concur::asyncio::Task;
  template <class>
  friend struct TaskAwaiter;
};

template <class T>
class Promise;

struct FinalAwaiter {
  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    return h.promise().on_final();
  }
  void await_resume() const noexcept {}
};

template <class Derived>
class PromiseCommon : public TaskBase {
 public:
  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { on_exception(std::current_exception()); }

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept { deallocate_frame(p, size); }
};

template <class T>
class Promise final : public PromiseCommon<Promise<T>> {
 public:
  Promise() { this->frame_ = std::coroutine_handle<Promise>::from_promise(*this); }
  Task<T> get_return_object() noexcept;
  template <class U = T>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(value));
  }
  T& value() { return *value_; }

 private:
  std::optional<T> value_;
};

template <>
class Promise<void> final : public PromiseCommon<Promise<void>> {
 public:
  Promise() { this->frame_ = std::coroutine_handle<Promise>::from_promise(*this); }
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

inline void LoopCore::clear_waiting(Suspension* s) {
  s->task->set_waiting(nullptr);
}

// co_await on a Task: inline start of a lazy one, or a wait for a spawned one.
template <class T>
struct TaskAwaiter {
  Promise<T>* promise;
  DoneNode node;
  Suspension suspension;
  bool suspended_on_spawned = false;

  bool await_ready() const {
    if (!promise) {
      throw InvalidStateError("co_await on an empty asyncio::Task (moved from or default-built)");
    }
    return promise->phase() == TaskBase::kDone;
  }

  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    LoopCore& core = require_core("co_await asyncio::Task");
    TaskBase* me = core.current_task();
    if (promise->phase() == TaskBase::kLazy) {
      promise->phase_ = TaskBase::kInline;
      promise->continuation_ = h;
      promise->core_ = &core;
      return promise->frame_;  // run it inline, now (symmetric transfer)
    }
    if (promise->phase() == TaskBase::kInline) {
      throw RuntimeError(
          "co_await asyncio::Task: this coroutine is already being awaited by another one; a "
          "coroutine runs once: create_task() it to await it from several places");
    }
    if (me == promise) {
      throw RuntimeError("co_await asyncio::Task: a task cannot await itself");
    }
    suspended_on_spawned = true;
    node.on_done = &on_done;
    promise->add_done_node(&node);
    node.awaiter = me;
    suspension = Suspension{me, h, &on_cancel, "task", promise};
    me->set_waiting(&suspension);
    if (me->must_cancel()) {
      // cancel() was called while this task ran: pass it on to the awaited task, as asyncio does
      // when a cancelled task yields on a future.
      me->must_cancel_ = false;
      on_cancel(&suspension);
    }
    return std::noop_coroutine();
  }

  static Suspension* on_done(DoneNode* n, TaskBase*) {
    auto* self =
        reinterpret_cast<TaskAwaiter*>(reinterpret_cast<char*>(n) - offsetof(TaskAwaiter, node));
    return &self->suspension;
  }

  static void on_cancel(Suspension* s) {
    auto* self = reinterpret_cast<TaskAwaiter*>(reinterpret_cast<char*>(s) -
                                                offsetof(TaskAwaiter, suspension));
    if (!self->promise->cancel(s->task->cancel_message())) s->task->set_must_cancel();
  }

  TaskAwaiter(Promise<T>* p) : promise(p) {}
  TaskAwaiter(TaskAwaiter&& other) noexcept : promise(other.promise) {}  // before await_suspend
  ~TaskAwaiter() {
    if (node.linked) promise->remove_done_node(&node);  // the waiting frame is being destroyed
  }

  void check() {
    if (suspended_on_spawned) promise->core_->current_task()->throw_if_cancel_requested();
    promise->check_result_ready("co_await asyncio::Task");
  }
};

}  // namespace detail

template <class T>
class Task {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;

  Task() = default;
  explicit Task(promise_type* p) noexcept : promise_(p) {}
  Task(const Task& other) noexcept : promise_(other.promise_) {
    if (promise_) promise_->add_ref();
  }
  Task(Task&& other) noexcept : promise_(std::exchange(other.promise_, nullptr)) {}
  Task& operator=(Task other) noexcept {
    std::swap(promise_, other.promise_);
    return *this;
  }
  ~Task() {
    if (promise_) promise_->release();
  }

  bool valid() const { return promise_ != nullptr; }
  bool done() const { return base().done(); }
  bool cancelled() const { return base().cancelled(); }
  // Requests cancellation (see the header comment); false if the task is already done.
  bool cancel(std::string_view message = {}) { return base().cancel(message); }
  int cancelling() const { return base().cancelling(); }
  int uncancel() { return base().uncancel(); }
  // The result of a finished task; rethrows its exception; throws CancelledError if it was
  // cancelled and InvalidStateError if it is not done.
  decltype(auto) result() const {
    base().check_result_ready("asyncio::Task::result()");
    if constexpr (!std::is_void_v<T>) return static_cast<const T&>(promise_->value());
  }
  std::exception_ptr exception() const { return base().exception(); }
  // Runs fn (on the loop, from its ready queue) when the task is done; at once if it is.
  void add_done_callback(std::function<void(const Task&)> fn) const {
    Task self = *this;
    base().add_done_callback([fn = std::move(fn), self]() { fn(self); });
  }
  std::string get_name() const { return base().name(); }
  void set_name(std::string name) { base().set_name(std::move(name)); }
  // Where create_task() was called (for debug reports).
  const concur::base::source_location& created_at() const { return base().created_at(); }

  // co_await task: runs a lazy task inline, or waits for a spawned one; yields its result.
  auto operator co_await() const& {
    struct Awaiter : detail::TaskAwaiter<T> {
      decltype(auto) await_resume() {
        this->check();
        if constexpr (!std::is_void_v<T>) return static_cast<const T&>(this->promise->value());
      }
    };
    return Awaiter{{promise_}};
  }
  auto operator co_await() && {
    struct Awaiter : detail::TaskAwaiter<T> {
      Task owner;  // keeps a temporary's frame alive until its result is taken
      auto await_resume() -> std::conditional_t<std::is_void_v<T>, void, T> {
        this->check();
        if constexpr (!std::is_void_v<T>) {
          // Move the result out when no other handle can read it (or it cannot be copied).
          if constexpr (std::is_copy_constructible_v<T>) {
            if (this->promise->refs() != 1) return this->promise->value();
          }
          return std::move(this->promise->value());
        }
      }
    };
    promise_type* p = promise_;
    return Awaiter{{p}, std::move(*this)};
  }

  // Internal: the untyped task.
  detail::TaskBase& base() const {
    if (!promise_) {
      throw InvalidStateError("asyncio::Task: empty handle (moved from or default-built)");
    }
    return *promise_;
  }
  promise_type* promise() const { return promise_; }

 private:
  promise_type* promise_ = nullptr;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(this);
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(this);
}
}  // namespace detail

// The task the running loop is executing, or nullptr outside a task (asyncio.current_task()).
detail::TaskBase* current_task() noexcept;

// Schedules a lazy task to run concurrently on the running loop and returns it (the same handle).
// It starts at the loop's next turn, or at once when the loop makes eager tasks (see below).
// Throws RuntimeError when no loop runs on this thread or the task was already started.
template <class T>
Task<T> create_task(
    Task<T> task, std::string name = {},
    concur::base::source_location where = concur::base::source_location::current()) {
  detail::TaskBase& b = task.base();
  detail::LoopCore& core = detail::require_core("asyncio::create_task");
  if (!name.empty()) b.set_name(std::move(name));
  b.spawn(core, where, core.eager_tasks);
  return task;
}

// Python 3.14's create_task(coro, name=..., eager_start=...).
struct CreateTaskOptions {
  std::string name = {};
  // true: an eager task (Python 3.12): the coroutine runs now, inside create_task(), until its
  // first real suspension, with current_task() the new task; one that finishes without
  // suspending is done when create_task() returns and is never scheduled. false: scheduled for
  // the next turn. nullopt: as the loop makes tasks (EventLoop::set_eager_tasks, Python's
  // eager_task_factory; scheduled by default).
  std::optional<bool> eager_start = std::nullopt;
};

template <class T>
Task<T> create_task(
    Task<T> task, CreateTaskOptions options,
    concur::base::source_location where = concur::base::source_location::current()) {
  detail::TaskBase& b = task.base();
  detail::LoopCore& core = detail::require_core("asyncio::create_task");
  if (!options.name.empty()) b.set_name(std::move(options.name));
  b.spawn(core, where, options.eager_start.value_or(core.eager_tasks));
  return task;
}

// Anything that can be co_awaited and turned into a task: a Task<T>.
template <class A>
struct is_task : std::false_type {};
template <class T>
struct is_task<Task<T>> : std::true_type {};

}  // namespace concur::asyncio
