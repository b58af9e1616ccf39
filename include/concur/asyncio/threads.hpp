// concur/asyncio/threads.hpp: bridges between the loop and the other models.
//
//   co_await f / wrap_future(f)    awaits a concur::Future (from a ThreadPoolExecutor, a
//                                  ProcessPoolExecutor or a Promise) without blocking the loop.
//   co_await run_in_executor(ex, fn, args...)  submits now (Python's loop.run_in_executor) to any
//                                  executor with submit(), e.g. concur::ThreadPoolExecutor or
//                                  concur::ProcessPoolExecutor, and awaits the result.
//   co_await to_thread(fn, args...)  runs fn on the loop's default executor (Python's
//                                  asyncio.to_thread).
//
// The future is completed on another thread; the loop hears of it through call_soon_threadsafe.
// Cancelling the awaiting task cancels the future (a task not yet started never runs; one
// running finishes, its result dropped) and raises CancelledError at once, as asyncio does.
// Exceptions from fn are rethrown at co_await as their own type.
// Thread safety: call these on the loop's thread; fn runs on the executor's.
// GCC 12: a lambda whose captures own something (a std::string, a shared_ptr) written inside the
// co_await expression is destroyed twice (a compiler bug, see the README): name it first,
// `auto job = [s] {...}; co_await to_thread(job);`.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

#include "concur/asyncio/loop.hpp"
#include "concur/asyncio/task.hpp"
#include "concur/futures.hpp"
#include "concur/thread_pool.hpp"

namespace concur::asyncio {

namespace detail {

// What the awaiting task and the completing thread share: only the loop's thread reads or
// writes `waiter`; the other thread only posts a callback that does.
struct FutureBridge {
  Suspension* waiter = nullptr;
};

template <class T>
struct FutureAwaiter : Suspension {
  Future<T> future;
  std::shared_ptr<FutureBridge> bridge;

  explicit FutureAwaiter(Future<T> f) : future(std::move(f)) {}
  FutureAwaiter(FutureAwaiter&& other) noexcept : future(std::move(other.future)) {}
  bool await_ready() const { return future.done(); }
  bool await_suspend(std::coroutine_handle<> h) {
    LoopCore& core = require_core("co_await asyncio::wrap_future()");
    TaskBase* me = core.current_task();
    if (!me) throw RuntimeError("asyncio::wrap_future(): must be awaited inside a task");
    task = me;  // before the check below: await_resume throws for it
    if (me->must_cancel()) {
      future.cancel();
      return false;
    }
    handle = h;
    cancel = &on_cancel;
    what = "concurrent future";
    bridge = std::make_shared<FutureBridge>();
    bridge->waiter = this;
    me->set_waiting(this);
    std::shared_ptr<void> inbox = core.loop->inbox();
    future.add_done_callback([bridge = bridge, inbox = std::move(inbox)](const Future<T>&) {
      try {
        post_threadsafe(inbox, [bridge]() {
          if (Suspension* s = std::exchange(bridge->waiter, nullptr)) {
            s->task->loop_core()->resume_now(s);
          }
        });
      } catch (const RuntimeError&) {
        // The loop closed meanwhile: nobody waits any more.
      }
    });
    return true;
  }
  static void on_cancel(Suspension* s) {
    auto* self = static_cast<FutureAwaiter*>(s);
    self->bridge->waiter = nullptr;
    self->future.cancel();
    s->task->set_must_cancel();
    s->task->loop_core()->wake(s);
  }
  decltype(auto) await_resume() {
    if (task) task->throw_if_cancel_requested();
    if constexpr (std::is_void_v<T>) {
      future.result();
    } else {
      return T(future.result());
    }
  }
  ~FutureAwaiter() {
    if (bridge) bridge->waiter = nullptr;
  }
};

}  // namespace detail

template <class T>
Task<T> wrap_future(Future<T> future) {
  co_return co_await detail::FutureAwaiter<T>(std::move(future));
}

template <class Executor, class F, class... Args>
auto run_in_executor(Executor& executor, F&& fn, Args&&... args) {
  return wrap_future(executor.submit(std::forward<F>(fn), std::forward<Args>(args)...));
}

template <class F, class... Args>
auto to_thread(F&& fn, Args&&... args) {
  return run_in_executor(get_running_loop().default_executor(), std::forward<F>(fn),
                         std::forward<Args>(args)...);
}

}  // namespace concur::asyncio

namespace concur {
// `co_await future` inside a task: the same as co_await asyncio::wrap_future(future), without
// making a coroutine frame.
template <class T>
asyncio::detail::FutureAwaiter<T> operator co_await(Future<T> future) {
  return asyncio::detail::FutureAwaiter<T>(std::move(future));
}
}  // namespace concur
