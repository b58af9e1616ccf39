// concur/asyncio/loop.hpp: EventLoop and asyncio::run(), Python's asyncio event loop, on libuv.
//
// One thread, one loop: the loop runs whichever coroutine is ready, polls the sockets, timers and
// child processes through libuv (the library uvloop is built on), and resumes the coroutines
// their events complete. asyncio::run(main()) is the usual entry point: it makes a loop, runs
// main() as a task to its end, cancels what main() left running, waits for those tasks, shuts the
// default executor down and closes the loop (Python's asyncio.run and asyncio.Runner).
//
// One loop turn: poll I/O (not blocking if something is ready; else until the next timer),
// resume the coroutines whose I/O completed (directly from libuv's callbacks), fire due timers,
// then run the ready queue (see LoopCore::run_ready for how far).
//
// States:  created -> running (run_until_complete / run_forever) -> stopped -> ... -> closed
//   A loop runs on one thread at a time and not re-entrantly (RuntimeError otherwise, as Python:
//   "This event loop is already running"). close() refuses while running. A closed loop refuses
//   everything (RuntimeError "Event loop is closed").
// Thread safety: only call_soon_threadsafe() (and awaiting a concur::Future, which uses it) may
//   be called from other threads. Everything else belongs to the loop's thread.
// Blocking: run_until_complete() and run_forever() block the calling thread; callbacks and tasks
//   must not block (debug mode reports any step longer than slow_callback_duration, 100 ms).
// Lifetime: destroying a loop closes it; tasks that never finished are destroyed (their frames'
//   destructors run, like Python's coroutine.close()); a Task handle may outlive its loop, but
//   only to read a finished task's result.
// SIGPIPE: making a loop sets SIGPIPE to SIG_IGN if it has the default action (Python does so at
//   startup), so that writing to a peer that left raises BrokenPipeError instead of killing the
//   program. A handler the program installed is left alone.
// Errors: an exception nobody can catch (from a call_soon callback, or a task whose exception is
//   never retrieved) goes to the exception handler (default: printed to stderr).
//
// Debug mode (Python's PYTHONASYNCIODEBUG / loop.set_debug): LoopOptions::debug, or the
// environment variable CONCUR_ASYNCIO_DEBUG=1. Reports each callback or task step that kept the
// loop longer than slow_callback_duration, naming the task and where it was created (or where the
// callback was scheduled), a task that swallowed its cancellation (caught CancelledError and
// returned normally), and a coroutine dropped without ever being awaited. A task's exception that
// nobody retrieved is reported in every mode.
//
// Example:
//   asyncio::Task<int> main_task() { co_await asyncio::sleep(50ms); co_return 7; }
//   int main() { return concur::asyncio::run(main_task()); }
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include "concur/base/source_location.hpp"

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/task.hpp"
#include "concur/errors.hpp"

namespace concur {
class ThreadPoolExecutor;
}

namespace concur::asyncio {

struct LoopOptions {
  // Debug mode (see the header comment). Also turned on by CONCUR_ASYNCIO_DEBUG=1.
  bool debug = false;
  std::chrono::nanoseconds slow_callback_duration = std::chrono::milliseconds(100);
};

// What the exception handler is told (Python's context dict: message, exception, task).
struct ExceptionContext {
  std::string message;
  std::exception_ptr exception;
};

// A callback scheduled with call_soon / call_later / call_at (Python's Handle / TimerHandle).
class CallbackHandle {
 public:
  CallbackHandle() = default;
  // Prevents the callback from running, if it has not yet; idempotent.
  void cancel();
  bool cancelled() const;
  // For call_later / call_at: when it is due.
  std::optional<Clock::time_point> when() const;

  struct State;
  explicit CallbackHandle(std::shared_ptr<State> s) : state_(std::move(s)) {}

 private:
  std::shared_ptr<State> state_;
};

class EventLoop {
 public:
  explicit EventLoop(LoopOptions options = {});
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs `main` as a task until it is done and returns its result (rethrows its exception).
  // RuntimeError if stop() ends the loop first ("Event loop stopped before Future completed").
  template <class T>
  T run_until_complete(Task<T> main, concur::base::source_location where =
                                         concur::base::source_location::current()) {
    Task<T> task = std::move(main);
    check_can_run("EventLoop::run_until_complete()");  // before scheduling anything, as Python
    if (!task.base().spawned()) spawn_here(task.base(), where);
    run_until_done(task.base());
    if constexpr (std::is_void_v<T>) {
      task.result();
    } else {
      return T(task.result());
    }
  }
  // Runs until stop().
  void run_forever();
  // Stops run_forever() after the current turn (Python's loop.stop()).
  void stop();
  bool is_running() const;
  bool is_closed() const;
  // Destroys what is left (see Lifetime) and frees the loop's resources. RuntimeError while
  // running. Idempotent.
  void close();

  // The loop's clock (steady_clock), Python's loop.time().
  Clock::time_point time() const { return Clock::now(); }

  // Runs fn in the next turn (FIFO among call_soon callbacks).
  // A callback that throws is reported to the exception handler (with where it was scheduled).
  CallbackHandle call_soon(std::function<void()> fn, concur::base::source_location where =
                                                         concur::base::source_location::current());
  CallbackHandle call_later(
      std::chrono::nanoseconds delay, std::function<void()> fn,
      concur::base::source_location where = concur::base::source_location::current());
  CallbackHandle call_at(
      Clock::time_point when, std::function<void()> fn,
      concur::base::source_location where = concur::base::source_location::current());
  // From any thread: runs fn on the loop's thread in its next turn, waking the loop if it sleeps.
  // RuntimeError if the loop is closed.
  void call_soon_threadsafe(std::function<void()> fn);
  // The loop's thread-safe inbox, which outlives the loop: detail::post_threadsafe(inbox, fn)
  // reaches the loop from any thread while it is open and throws RuntimeError after it closed.
  std::shared_ptr<void> inbox() const;

  template <class T>
  Task<T> create_task(
      Task<T> task, std::string name = {},
      concur::base::source_location where = concur::base::source_location::current()) {
    spawn_here(task.base(), where);
    if (!name.empty()) task.set_name(std::move(name));
    return task;
  }

  // Python's loop.set_task_factory(asyncio.eager_task_factory): on, asyncio::create_task() in
  // this running loop makes eager tasks (see CreateTaskOptions::eager_start in task.hpp) unless
  // it says otherwise; off (the default) restores scheduled tasks. The loop's own create_task()
  // and the main task of run_until_complete() are always scheduled (no loop runs yet there).
  void set_eager_tasks(bool on);
  bool get_debug() const;
  void set_debug(bool on);
  void set_slow_callback_duration(std::chrono::nanoseconds d);
  // Replaces the handler of uncaught errors (nullptr: the default, which prints to stderr).
  void set_exception_handler(std::function<void(const ExceptionContext&)> handler);
  void call_exception_handler(const ExceptionContext& context);

  // Runs fn on the loop whenever signal `signum` arrives (libuv signal handling: safe, no
  // async-signal restrictions on fn). Replaces a previous handler of the same signal.
  void add_signal_handler(int signum, std::function<void()> fn);
  bool remove_signal_handler(int signum);

  // The executor of to_thread() and run_in_executor(nullptr, ...): a ThreadPoolExecutor of
  // min(32, usable CPUs + 4) threads (ThreadPoolExecutor's
  // default), made on first use, shut down (waiting) by close().
  ThreadPoolExecutor& default_executor();

  // How many spawned tasks have not finished (len(asyncio.all_tasks())).
  std::size_t pending_tasks() const;
  // Requests cancellation of every unfinished task (what asyncio.run does at the end).
  void cancel_all_tasks();

  // The libuv loop (uv_loop_t*), for code that adds its own handles.
  void* native_handle() const;
  detail::LoopCore& core();

  struct Impl;

 private:
  void spawn_here(detail::TaskBase& task, concur::base::source_location where);
  // RuntimeError if the loop is closed, running, or another loop runs on this thread.
  void check_can_run(const char* who) const;
  void run_until_done(detail::TaskBase& task);
  void drain_tasks(int idle_turns);
  std::unique_ptr<Impl> impl_;
};

// The loop running on this thread; RuntimeError "no running event loop" otherwise.
EventLoop& get_running_loop();

struct RunOptions {
  bool debug = false;
  // Python's asyncio.run installs a SIGINT handler that cancels the main task, so that Ctrl-C
  // unwinds it cleanly; run() then throws concur::KeyboardInterrupt. Off: SIGINT is left alone.
  bool handle_sigint = true;
};

namespace detail {
// See EventLoop::inbox().
void post_threadsafe(const std::shared_ptr<void>& inbox, std::function<void()> fn);
// Cancels every other task of the running loop, waits for them to finish, reports those that
// failed.
Task<void> wait_all_tasks();
// The end of asyncio::run: cancel what is left, wait for it, stop the executor, close.
void finish_run(EventLoop& loop);
// Installs / removes run()'s SIGINT handler; tells whether SIGINT arrived.
struct SigintGuard {
  SigintGuard(EventLoop& loop, TaskBase& main, bool enabled);
  ~SigintGuard();
  bool interrupted() const;
  EventLoop& loop;
  bool enabled;
  std::shared_ptr<bool> fired;
};
}  // namespace detail

// Python's asyncio.run(main): see the header comment. Throws main's exception, or
// KeyboardInterrupt if SIGINT cancelled it.
template <class T>
T run(Task<T> main, RunOptions options = {},
      concur::base::source_location where = concur::base::source_location::current()) {
  if (detail::running_core()) {
    throw RuntimeError(
        "asyncio::run() cannot be called from a running event loop; co_await the coroutine "
        "instead");
  }
  EventLoop loop(LoopOptions{.debug = options.debug});
  Task<T> task = std::move(main);
  task = loop.create_task(std::move(task), "main", where);
  detail::SigintGuard sigint(loop, task.base(), options.handle_sigint);
  std::exception_ptr error;
  try {
    loop.run_until_complete(task);
  } catch (...) {
    error = std::current_exception();
  }
  detail::finish_run(loop);
  if (sigint.interrupted() && task.cancelled()) {
    throw KeyboardInterrupt("asyncio::run(): interrupted by SIGINT; the main task was cancelled");
  }
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) return T(task.result());
}

// ---------------------------------------------------------------------------------------------
// sleep

namespace detail {
struct SleepAwaiter : TimerNode, Suspension {
  std::int64_t delay_ns;
  LoopCore* core = nullptr;

  explicit SleepAwaiter(std::int64_t ns) : delay_ns(ns) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    core = &require_core("asyncio::sleep");
    TaskBase* me = core->current_task();
    task = me;  // before the check below: await_resume throws for it
    if (me && me->must_cancel()) return false;
    handle = h;
    cancel = &on_cancel;
    what = kSleep;
    if (me) me->set_waiting(this);
    if (delay_ns <= 0) {
      core->wake(this);  // sleep(0): yield to the other ready tasks
    } else {
      fire = &on_fire;
      object = static_cast<const TimerNode*>(this);
      core->arm(this, monotonic_ns() + delay_ns);
    }
    return true;
  }
  void await_resume() {
    if (task) task->throw_if_cancel_requested();
  }
  ~SleepAwaiter() {
    if (armed()) core->disarm(this);
  }

  static void on_fire(TimerNode* t) {
    auto* self = static_cast<SleepAwaiter*>(t);
    self->core->resume_now(self);
  }
  static void on_cancel(Suspension* s) {
    auto* self = static_cast<SleepAwaiter*>(s);
    self->core->disarm(self);
    s->task->set_must_cancel();
    self->core->wake(s);
  }
};
}  // namespace detail

namespace detail {
// sleep(delay, result): the same wait, then yields `result` (moved out).
template <class T>
struct SleepWithResult : SleepAwaiter {
  T result;
  SleepWithResult(std::int64_t ns, T value) : SleepAwaiter(ns), result(std::move(value)) {}
  T await_resume() {
    SleepAwaiter::await_resume();
    return std::move(result);
  }
};
}  // namespace detail

// Suspends the current task for `delay` (at millisecond resolution, as every event loop polls);
// sleep(0) yields to the other ready tasks. Cancellation throws CancelledError from it.
inline detail::SleepAwaiter sleep(std::chrono::nanoseconds delay) {
  return detail::SleepAwaiter(delay.count());
}
// Python's sleep(delay, result): `int v = co_await asyncio::sleep(10ms, 42);` gives 42 once the
// delay has passed (the value is kept in the awaiter meanwhile; a cancellation drops it).
template <class T>
detail::SleepWithResult<std::decay_t<T>> sleep(std::chrono::nanoseconds delay, T&& result) {
  return {delay.count(), std::forward<T>(result)};
}

}  // namespace concur::asyncio
