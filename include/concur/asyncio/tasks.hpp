// concur/asyncio/tasks.hpp: running tasks together, Python's asyncio.gather, wait, as_completed,
// wait_for, timeout, shield and TaskGroup.
//
// Each takes Task<T> handles. A lazy task (a coroutine called but not started) is scheduled as a
// task of its own on the running loop, as Python's ensure_future() does; one already created with
// create_task() is used as it is.
//
//   gather(tasks)            all results, in argument order. The first task to fail (raise or be
//                            cancelled) makes gather throw that at once; the others keep running.
//                            Cancelling the task that awaits gather cancels every child.
//   gather(return_exceptions, tasks)  never throws for a child: each Outcome holds a value or
//                            the child's exception (CancelledError for a cancelled child).
//   create_task(gather(...)) is Python's gathering future (asyncio.gather()'s return value):
//                            its cancel() cancels the children and returns false once they are
//                            all done (or one failed) and only gather's resumption is pending:
//                            the results stand (bpo-26923). A cancelled child, or a cancel of the
//                            gathering task itself, ends it done with CancelledError as its
//                            exception: exception() returns it and cancelled() is false, as
//                            Python's gather future (a task that co_awaits gather still ends
//                            cancelled, in Python too). One difference remains: a gathering task
//                            cancelled before its first step never starts its lazy children and
//                            ends cancelled(), as any task.
//   wait(tasks, timeout, return_when) {done, pending} when FIRST_COMPLETED / FIRST_EXCEPTION (a
//                            cancellation is not an exception) / ALL_COMPLETED, or when the
//                            timeout passes (not an error). Cancelling the waiter leaves the
//                            children alone. std::invalid_argument for an empty set. As Python's,
//                            it works on the set of distinct tasks: one passed twice is in done
//                            or pending once (in the order of its first appearance).
//   AsCompleted(tasks, timeout)  next() yields the tasks in the order they finish, each distinct
//                            task once; TimeoutError when the timeout passes first.
//   wait_for(task, timeout)  the task's result, or TimeoutError after cancelling it and waiting
//                            for it to unwind (Python 3.12: a task that swallows the cancellation
//                            and returns a value wins over the timeout).
//   timeout(d, body)         runs body (a Task, or a callable returning one, optionally taking
//                            Timeout&) and turns its cancellation by the deadline into
//                            TimeoutError (Python's `async with asyncio.timeout(d)`), with the
//                            3.12 cancel/uncancel accounting so that an outer cancel() is never
//                            mistaken for the timeout.
//   shield(task)             awaits a task that the awaiter's cancellation does not cancel.
//   task_group(body)         Python 3.13's TaskGroup: body(TaskGroup&) starts children; leaving
//                            waits for all; a child that fails cancels the others and the body;
//                            the errors come out together as ExceptionGroup. A KeyboardInterrupt
//                            (of the body or a child) comes out bare instead, after the children
//                            are done. A cancel() of the parent from outside is not lost when the
//                            group fails: after the ExceptionGroup, the parent's next co_await
//                            throws CancelledError (cancelling() stays counted), as in 3.13 (3.12
//                            lost it). The parent resumes from the group's exit through the ready
//                            queue, after what was already scheduled (3.13's nested-group order).
//
// Thread safety: none (the loop's thread). Blocking: never; each suspends the awaiting task.
#pragma once

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/task.hpp"
#include "concur/detail/future_state.hpp"
#include "concur/errors.hpp"

namespace concur::asyncio {

using concur::ReturnWhen;

namespace detail {

// The task running now, or a RuntimeError for code that awaits outside a task.
inline TaskBase& require_task(LoopCore& core, const char* who) {
  TaskBase* me = core.current_task();
  if (!me) {
    throw RuntimeError(std::string(who) +
                       ": must be awaited inside a task (a coroutine run by the loop)");
  }
  return *me;
}

template <class T>
void ensure_spawned(Task<T>& t, LoopCore& core) {
  if (!t.base().spawned()) t.base().spawn(core, concur::base::source_location::current());
}

// Waits on a set of tasks until a condition holds (see Mode), a deadline passes, or the waiting
// task is cancelled. The children are not owned: the caller holds their handles.
class ChildWaiter : public TimerNode, public Suspension {
 public:
  enum Mode : std::uint8_t { kAll, kFirstCompleted, kFirstFailure, kFirstException };
  // propagate_cancel: cancelling the waiting task cancels the children and keeps waiting until
  // the condition holds (gather); otherwise the wait ends at once with CancelledError (wait).
  ChildWaiter(std::vector<TaskBase*> children, Mode mode, bool propagate_cancel,
              std::int64_t deadline_ns = -1)
      : children_(std::move(children)),
        nodes_(std::make_unique<Node[]>(children_.size())),
        mode_(mode),
        propagate_cancel_(propagate_cancel),
        deadline_ns_(deadline_ns) {}
  ChildWaiter(const ChildWaiter&) = delete;
  ChildWaiter& operator=(const ChildWaiter&) = delete;
  ~ChildWaiter() { detach(); }

  bool await_ready() {
    for (TaskBase* c : children_) {
      if (c->done() && satisfies(c)) {
        first_ = c;
        return true;
      }
    }
    return pending_count() == 0;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    core_ = &require_core("asyncio wait");
    TaskBase& me = require_task(*core_, "asyncio wait");
    task = &me;
    if (me.must_cancel() && !propagate_cancel_) return false;  // await_resume throws
    pending_ = 0;
    for (std::size_t i = 0; i < children_.size(); ++i) {
      if (children_[i]->done()) continue;
      ++pending_;
      nodes_[i].waiter = this;
      nodes_[i].index = i;
      nodes_[i].on_done = &on_child_done;
      nodes_[i].awaiter = &me;
      children_[i]->add_done_node(&nodes_[i]);
    }
    handle = h;
    cancel = &on_cancel;
    if (propagate_cancel_) {
      what = "gather";
    } else {
      what = kWait;
    }
    object = deadline_ns_ >= 0 ? static_cast<const TimerNode*>(this) : nullptr;
    me.set_waiting(this);
    if (deadline_ns_ >= 0) {
      fire = &on_timeout;
      core_->arm(this, deadline_ns_);
    }
    if (me.must_cancel()) {  // cancel() came while the task ran: pass it on now
      me.set_must_cancel(false);
      on_cancel(this);
    }
    return true;
  }
  void await_resume() {
    detach();
    if (cancel_requested_) {
      throw CancelledError(task && !task->cancel_message().empty() ? task->cancel_message()
                                                                   : "the task was cancelled");
    }
    if (task && !propagate_cancel_) task->throw_if_cancel_requested();
  }

  // The child whose completion ended the wait early (FIRST_*), if any.
  TaskBase* first() const { return first_; }
  bool timed_out() const { return timed_out_; }

 private:
  struct Node : DoneNode {
    ChildWaiter* waiter = nullptr;
    std::size_t index = 0;
  };

 public:
  // Called for each child that succeeds while the waiter is suspended, with its index, inside
  // the child's last step: gather takes the result then, while the frame is still in cache, and
  // drops its handle so that the frame is freed at once (for 100,000 tasks, touching every frame
  // a second time afterwards cost more than running them).
  void (*harvest)(void* context, std::size_t index, TaskBase* child) = nullptr;
  void* harvest_context = nullptr;

 private:
  bool satisfies(TaskBase* c) const {
    switch (mode_) {
      case kFirstCompleted:
        return true;
      case kFirstFailure:
        return c->cancelled() || c->failed();
      case kFirstException:
        return !c->cancelled() && c->failed();
      case kAll:
        break;
    }
    return false;
  }
  std::size_t pending_count() const {
    return static_cast<std::size_t>(
        std::count_if(children_.begin(), children_.end(), [](TaskBase* c) { return !c->done(); }));
  }
  void detach() {
    for (std::size_t i = 0; i < children_.size(); ++i) {
      if (nodes_[i].linked) children_[i]->remove_done_node(&nodes_[i]);
    }
    if (armed()) core_->disarm(this);
  }
  Suspension* finish_wait() {
    woken_ = true;
    if (armed()) core_->disarm(this);
    return this;
  }

  static Suspension* on_child_done(DoneNode* n, TaskBase* child) {
    auto* node = static_cast<Node*>(n);
    ChildWaiter* w = node->waiter;
    --w->pending_;
    if (w->harvest && !child->cancelled() && !child->failed()) {
      w->harvest(w->harvest_context, node->index, child);
    }
    if (w->woken_) return nullptr;
    if (w->satisfies(child)) {
      w->first_ = child;
      return w->finish_wait();
    }
    if (w->pending_ == 0) return w->finish_wait();
    return nullptr;
  }
  static void on_timeout(TimerNode* t) {
    auto* w = static_cast<ChildWaiter*>(t);
    if (w->woken_) return;
    w->timed_out_ = true;
    w->woken_ = true;
    w->core_->resume_now(w);
  }
  static void on_cancel(Suspension* s) {
    auto* w = static_cast<ChildWaiter*>(s);
    if (w->propagate_cancel_) {
      w->cancel_requested_ = true;
      // Only those still linked: a harvested child may be freed already.
      for (std::size_t i = 0; i < w->children_.size(); ++i) {
        if (w->nodes_[i].linked) w->children_[i]->cancel(s->task->cancel_message());
      }
      return;  // the first cancelled child ends the wait (kFirstFailure)
    }
    w->woken_ = true;
    if (w->armed()) w->core_->disarm(w);
    s->task->set_must_cancel();
    w->core_->wake(s);
  }
  std::vector<TaskBase*> children_;
  std::unique_ptr<Node[]> nodes_;
  LoopCore* core_ = nullptr;
  TaskBase* first_ = nullptr;
  std::size_t pending_ = 0;  // children not done, while suspended
  Mode mode_;
  bool propagate_cancel_;
  bool woken_ = false;
  bool timed_out_ = false;
  bool cancel_requested_ = false;
  std::int64_t deadline_ns_;
};

// co_await MarkGathering{} at the start of gather(): if gather runs as a task of its own, that
// task is Python's gathering future (see TaskBase::set_gathering). Never suspends.
struct MarkGathering {
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    TaskBase& self = h.promise();
    if (self.spawned()) self.set_gathering();
    return false;
  }
  void await_resume() const noexcept {}
};

template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Takes a finished task's value: moved out when no other handle can read it.
template <class T>
Stored<T> take_result(Task<T>& t) {
  t.base().check_result_ready("asyncio::gather");
  if constexpr (std::is_void_v<T>) {
    return {};
  } else if (t.promise()->refs() == 1) {
    return std::move(t.promise()->value());
  } else {
    return t.promise()->value();
  }
}

// Python's wait() and as_completed() work on a set: the same task passed twice counts once. The
// first occurrence keeps its place.
template <class T>
void drop_duplicates(std::vector<Task<T>>& tasks) {
  std::vector<Task<T>> unique;
  unique.reserve(tasks.size());
  for (Task<T>& t : tasks) {
    detail::TaskBase* b = &t.base();
    bool seen =
        std::any_of(unique.begin(), unique.end(), [b](const Task<T>& u) { return &u.base() == b; });
    if (!seen) unique.push_back(std::move(t));
  }
  tasks = std::move(unique);
}

inline std::int64_t deadline_after(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return -1;
  return monotonic_ns() + std::max<std::int64_t>(0, timeout->count());
}

}  // namespace detail

// The result or the exception of one child of gather(return_exceptions, ...).
template <class T>
class Outcome {
 public:
  explicit Outcome(detail::Stored<T> value) : value_(std::move(value)) {}
  explicit Outcome(std::exception_ptr error) : error_(std::move(error)) {}
  bool ok() const { return !error_; }
  std::exception_ptr error() const { return error_; }
  // Rethrows the child's exception when it failed.
  const detail::Stored<T>& value() const {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  bool cancelled() const {
    if (!error_) return false;
    try {
      std::rethrow_exception(error_);
    } catch (const CancelledError&) {
      return true;
    } catch (...) {
      return false;
    }
  }

 private:
  std::optional<detail::Stored<T>> value_;
  std::exception_ptr error_;
};

struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

template <class T>
Task<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> gather(
    std::vector<Task<T>> tasks) {
  co_await detail::MarkGathering();
  detail::LoopCore& core = detail::require_core("asyncio::gather");
  std::vector<detail::TaskBase*> bases;
  bases.reserve(tasks.size());
  for (Task<T>& t : tasks) {
    detail::ensure_spawned(t, core);
    bases.push_back(&t.base());
  }
  detail::ChildWaiter waiter(std::move(bases), detail::ChildWaiter::kFirstFailure, true);
  // Results taken as each child finishes (see ChildWaiter::harvest); the rest after the wait.
  std::vector<std::optional<detail::Stored<T>>> slots(tasks.size());
  struct Harvest {
    std::vector<Task<T>>* tasks;
    std::vector<std::optional<detail::Stored<T>>>* slots;
  } harvest{&tasks, &slots};
  waiter.harvest_context = &harvest;
  waiter.harvest = [](void* context, std::size_t i, detail::TaskBase*) {
    auto* h = static_cast<Harvest*>(context);
    Task<T>& t = (*h->tasks)[i];
    if (t.promise()->refs() != 2) return;  // someone else holds it too: read it at the end
    if constexpr (std::is_void_v<T>) {
      (*h->slots)[i].emplace();
    } else {
      (*h->slots)[i].emplace(std::move(t.promise()->value()));
    }
    t = Task<T>();  // the frame goes when the child's last step ends, now
  };
  co_await waiter;
  if (detail::TaskBase* failed = waiter.first()) failed->check_result_ready("asyncio::gather");
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (!slots[i]) slots[i].emplace(detail::take_result(tasks[i]));
  }
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    std::vector<T> out;
    out.reserve(slots.size());
    for (auto& v : slots) out.push_back(std::move(*v));
    co_return out;
  }
}

template <class... T>
Task<std::tuple<detail::Stored<T>...>> gather(Task<T>... tasks) {
  co_await detail::MarkGathering();
  detail::LoopCore& core = detail::require_core("asyncio::gather");
  (detail::ensure_spawned(tasks, core), ...);
  detail::ChildWaiter waiter({&tasks.base()...}, detail::ChildWaiter::kFirstFailure, true);
  co_await waiter;
  if (detail::TaskBase* failed = waiter.first()) failed->check_result_ready("asyncio::gather");
  co_return std::tuple<detail::Stored<T>...>(detail::take_result(tasks)...);
}

template <class T>
Task<std::vector<Outcome<T>>> gather(ReturnExceptions, std::vector<Task<T>> tasks) {
  co_await detail::MarkGathering();
  detail::LoopCore& core = detail::require_core("asyncio::gather");
  std::vector<detail::TaskBase*> bases;
  bases.reserve(tasks.size());
  for (Task<T>& t : tasks) {
    detail::ensure_spawned(t, core);
    bases.push_back(&t.base());
  }
  detail::ChildWaiter waiter(std::move(bases), detail::ChildWaiter::kAll, true);
  co_await waiter;
  std::vector<Outcome<T>> out;
  out.reserve(tasks.size());
  for (Task<T>& t : tasks) {
    try {
      out.emplace_back(detail::take_result(t));
    } catch (...) {
      out.emplace_back(std::current_exception());
    }
  }
  co_return out;
}

template <class T>
struct WaitResult {
  std::vector<Task<T>> done;
  std::vector<Task<T>> pending;
};

template <class T>
Task<WaitResult<T>> wait(std::vector<Task<T>> tasks,
                         std::optional<std::chrono::nanoseconds> timeout = std::nullopt,
                         ReturnWhen return_when = ReturnWhen::ALL_COMPLETED) {
  if (tasks.empty()) {
    throw std::invalid_argument("asyncio::wait(): the set of tasks is empty; pass at least one");
  }
  detail::drop_duplicates(tasks);
  detail::LoopCore& core = detail::require_core("asyncio::wait");
  std::vector<detail::TaskBase*> bases;
  for (Task<T>& t : tasks) {
    detail::ensure_spawned(t, core);
    bases.push_back(&t.base());
  }
  auto mode = return_when == ReturnWhen::FIRST_COMPLETED   ? detail::ChildWaiter::kFirstCompleted
              : return_when == ReturnWhen::FIRST_EXCEPTION ? detail::ChildWaiter::kFirstException
                                                           : detail::ChildWaiter::kAll;
  detail::ChildWaiter waiter(std::move(bases), mode, false, detail::deadline_after(timeout));
  co_await waiter;
  WaitResult<T> out;
  for (Task<T>& t : tasks) (t.done() ? out.done : out.pending).push_back(std::move(t));
  co_return out;
}

// Python's asyncio.as_completed: `while (ac.has_next()) { Task<T> t = co_await ac.next(); }`.
template <class T>
class AsCompleted {
 public:
  explicit AsCompleted(std::vector<Task<T>> tasks,
                       std::optional<std::chrono::nanoseconds> timeout = std::nullopt)
      : remaining_(std::move(tasks)), deadline_ns_(detail::deadline_after(timeout)) {
    detail::drop_duplicates(remaining_);
  }
  bool has_next() const { return !remaining_.empty(); }
  // The next task to finish (done; read it with result()). TimeoutError when the timeout passes
  // first; std::out_of_range when none is left.
  Task<Task<T>> next() {
    if (remaining_.empty()) {
      throw std::out_of_range("asyncio::AsCompleted::next(): no task left; check has_next()");
    }
    detail::LoopCore& core = detail::require_core("asyncio::AsCompleted::next");
    std::vector<detail::TaskBase*> bases;
    for (Task<T>& t : remaining_) {
      detail::ensure_spawned(t, core);
      bases.push_back(&t.base());
    }
    detail::ChildWaiter waiter(std::move(bases), detail::ChildWaiter::kFirstCompleted, false,
                               deadline_ns_);
    co_await waiter;
    if (waiter.timed_out()) {
      throw TimeoutError("asyncio::AsCompleted::next(): the timeout passed with " +
                         std::to_string(remaining_.size()) + " task(s) still running");
    }
    auto it = std::find_if(remaining_.begin(), remaining_.end(),
                           [&](const Task<T>& t) { return &t.base() == waiter.first(); });
    Task<T> out = std::move(*it);
    remaining_.erase(it);
    co_return out;
  }

 private:
  std::vector<Task<T>> remaining_;
  std::int64_t deadline_ns_;
};

template <class T>
Task<T> shield(Task<T> task) {
  detail::ensure_spawned(task, detail::require_core("asyncio::shield"));
  detail::ChildWaiter waiter({&task.base()}, detail::ChildWaiter::kAll, false);
  co_await waiter;
  co_return co_await std::move(task);
}

// ---------------------------------------------------------------------------------------------
// timeout / wait_for

// The deadline of a timeout() scope, which the body may move (Python's Timeout.reschedule).
class Timeout : detail::TimerNode {
 public:
  Timeout(detail::LoopCore& core, detail::TaskBase& task, std::optional<Clock::time_point> when)
      : core_(core), task_(task) {
    fire = &on_fire;
    reschedule(when);
  }
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  ~Timeout() { core_.disarm(this); }

  // Moves the deadline (nullopt: none). RuntimeError once the timeout expired.
  void reschedule(std::optional<Clock::time_point> when) {
    if (expired_) {
      throw RuntimeError("asyncio::Timeout::reschedule(): the timeout has already expired");
    }
    core_.disarm(this);
    when_ = when;
    if (!when) return;
    std::int64_t due_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(when->time_since_epoch()).count();
    if (due_ns <= detail::monotonic_ns()) {
      // Already due: cancel now, as Python's call_soon(_on_timeout) does, so that the body's
      // first suspension (even a sleep(0), which the ready queue would resume before any timer
      // fires) is the one cancelled.
      on_fire(this);
      return;
    }
    core_.arm(this, due_ns);
  }
  std::optional<Clock::time_point> when() const { return when_; }
  bool expired() const { return expired_; }

  // Internal, for timeout(): leaves the scope; turns its own cancellation into TimeoutError.
  void leave(std::exception_ptr error, int cancelling_at_entry) {
    core_.disarm(this);
    bool was_cancel = false;
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const CancelledError&) {
        was_cancel = true;
      } catch (...) {
      }
    }
    if (expired_) {
      // Ours: withdraw the request we made; if no other request is pending, it was only the
      // deadline, so it becomes TimeoutError.
      if (task_.uncancel() <= cancelling_at_entry && was_cancel) {
        throw TimeoutError("asyncio::timeout(): the deadline passed before the work finished");
      }
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  static void on_fire(detail::TimerNode* t) {
    auto* self = static_cast<Timeout*>(t);
    self->expired_ = true;
    self->task_.cancel();
  }
  detail::LoopCore& core_;
  detail::TaskBase& task_;
  std::optional<Clock::time_point> when_;
  bool expired_ = false;
};

namespace detail {
template <class F>
auto invoke_body(F& body, Timeout& scope) {
  if constexpr (std::is_invocable_v<F&, Timeout&>) {
    return body(scope);
  } else {
    return body();
  }
}
template <class B>
struct BodyResult;
template <class T>
struct BodyResult<Task<T>> {
  using type = T;
};

}  // namespace detail

// Runs body under a deadline. body: a Task<T>, or a callable returning one (called with the
// Timeout& scope if it takes one). See the header comment.
template <class F>
auto timeout_at(std::optional<Clock::time_point> when, F body)
    -> Task<typename detail::BodyResult<std::remove_cvref_t<
        decltype(detail::invoke_body(std::declval<F&>(), std::declval<Timeout&>()))>>::type> {
  using T = typename detail::BodyResult<std::remove_cvref_t<decltype(detail::invoke_body(
      std::declval<F&>(), std::declval<Timeout&>()))>>::type;
  detail::LoopCore& core = detail::require_core("asyncio::timeout");
  detail::TaskBase& me = detail::require_task(core, "asyncio::timeout");
  int cancelling = me.cancelling();  // before the scope, which may cancel at once
  Timeout scope(core, me, when);
  std::exception_ptr error;
  if constexpr (std::is_void_v<T>) {
    try {
      co_await detail::invoke_body(body, scope);
    } catch (...) {
      error = std::current_exception();
    }
    scope.leave(error, cancelling);
  } else {
    std::optional<T> value;
    try {
      value.emplace(co_await detail::invoke_body(body, scope));
    } catch (...) {
      error = std::current_exception();
    }
    scope.leave(error, cancelling);
    co_return std::move(*value);
  }
}

template <class F>
auto timeout(std::optional<std::chrono::nanoseconds> delay, F body) {
  std::optional<Clock::time_point> when;
  if (delay) when = Clock::now() + *delay;
  if constexpr (is_task<std::remove_cvref_t<F>>::value) {
    return timeout_at(when, [t = std::move(body)]() mutable { return std::move(t); });
  } else {
    return timeout_at(when, std::move(body));
  }
}

// Python 3.12's wait_for: see the header comment.
template <class T>
Task<T> wait_for(Task<T> task, std::optional<std::chrono::nanoseconds> timeout_after) {
  if (timeout_after && timeout_after->count() <= 0) {
    if (task.base().phase() == detail::TaskBase::kLazy) {
      throw TimeoutError("asyncio::wait_for(): the timeout is zero; the coroutine was not run");
    }
    if (!task.done()) {
      task.cancel();
      detail::ChildWaiter waiter({&task.base()}, detail::ChildWaiter::kAll, false);
      co_await waiter;
      if (task.cancelled()) {
        throw TimeoutError("asyncio::wait_for(): the timeout is zero and the task was not done");
      }
    }
    co_return co_await std::move(task);
  }
  co_return co_await timeout(timeout_after, std::move(task));
}

// ---------------------------------------------------------------------------------------------
// TaskGroup

class TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup();

  // Starts a child. RuntimeError once the group has finished or is shutting down after a
  // failure (Python 3.12: "TaskGroup is shutting down"); the refused coroutine is then closed, as
  // Python closes it: dropping it is not reported as "never awaited" in debug mode.
  template <class T>
  Task<T> create_task(
      Task<T> task, std::string name = {},
      concur::base::source_location where = concur::base::source_location::current()) {
    try {
      check_open();
    } catch (...) {
      if (task.valid()) task.base().close_unstarted();
      throw;
    }
    task.base().spawn(core_, where);
    if (!name.empty()) task.set_name(std::move(name));
    adopt(task.base());
    return task;
  }
  std::size_t size() const { return live_; }

  // Python 3.15's TaskGroup.cancel(): cancels every child not yet done and the body wherever it
  // waits, and the group then ends WITHOUT CancelledError: task_group() returns normally (or
  // throws the ExceptionGroup of children that failed). A cancel of the parent task from outside
  // still propagates. Later create_task() calls are refused (RuntimeError). Idempotent, and a
  // no-op once the group is exiting with no child left. From the loop's thread only (a child,
  // the body, or any task holding the reference), and only while task_group() has not returned:
  // the group lives in its frame (Python's "cancel before entering" has no equivalent: the
  // group does not exist before).
  void cancel();

  // Internal (used by task_group()).
  TaskGroup(detail::LoopCore& core, detail::TaskBase& parent) : core_(core), parent_(parent) {}
  Task<void> exit(std::exception_ptr body_error);

 private:
  struct Child : detail::DoneNode {
    TaskGroup* group = nullptr;
    detail::TaskBase* task = nullptr;
    Child* next_child = nullptr;
    Child* prev_child = nullptr;
  };
  struct ExitWait;
  void check_open() const;
  void adopt(detail::TaskBase& task);
  void abort();
  static detail::Suspension* on_child_done(detail::DoneNode* n, detail::TaskBase* task);

  detail::LoopCore& core_;
  detail::TaskBase& parent_;
  Child* children_ = nullptr;
  std::size_t live_ = 0;
  std::vector<std::exception_ptr> errors_;
  std::exception_ptr base_error_;  // the first KeyboardInterrupt: re-raised bare
  detail::Suspension* exit_waiter_ = nullptr;
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
};

// Python's `async with asyncio.TaskGroup() as tg: body`. body: a callable taking TaskGroup& and
// returning Task<void>.
template <class F>
Task<void> task_group(F body) {
  detail::LoopCore& core = detail::require_core("asyncio::task_group");
  TaskGroup group(core, detail::require_task(core, "asyncio::task_group"));
  std::exception_ptr error;
  try {
    co_await body(group);
  } catch (...) {
    error = std::current_exception();
  }
  co_await group.exit(error);
}

}  // namespace concur::asyncio
