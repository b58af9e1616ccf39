// concur/asyncio/gather_limited.hpp: gather() with a bound on how many children run at once.
//
// Bounded fan-out is what Python users build by hand with a Semaphore (Python issue gh-115201
// asks for it in asyncio itself). gather_limited(limit, tasks) runs at most `limit` of the tasks
// at a time: the first `limit` start at once, the next one when one of them ends, in the order
// given. Otherwise it is gather():
//   - the results come back in the order of `tasks` (void tasks: nothing);
//   - the first child that fails (or is cancelled) ends it: the running children are cancelled,
//     the ones not started yet are closed and never run, and once the running ones have ended
//     its exception is thrown;
//   - cancelling the task that awaits it cancels the running children and closes the others;
//     it then ends with CancelledError once the running ones have ended.
// Pass coroutines not yet started (`f(i)`, not `create_task(f(i))`): a task already running
// cannot be held back, so it is refused (std::invalid_argument), as is a limit of 0.
// Thread safety: none; the loop's thread.
//
//   std::vector<Task<Page>> fetches;
//   for (const auto& url : urls) fetches.push_back(fetch(url));
//   std::vector<Page> pages = co_await asyncio::gather_limited(8, std::move(fetches));
#pragma once

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "concur/asyncio/tasks.hpp"

namespace concur::asyncio {

template <class T>
Task<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> gather_limited(
    std::size_t limit, std::vector<Task<T>> tasks) {
  // A refused call closes the coroutines it was given, as Python closes a refused coroutine:
  // dropping them is then not reported as "never awaited".
  auto refuse = [&](const char* why) {
    for (Task<T>& t : tasks) t.base().close_unstarted();
    throw std::invalid_argument(why);
  };
  if (limit == 0) refuse("asyncio::gather_limited(): limit must be at least 1");
  for (const Task<T>& t : tasks) {
    if (t.base().spawned()) {
      refuse(
          "asyncio::gather_limited(): a task is already running, so it cannot be held back; "
          "pass the coroutine itself (f(x), not create_task(f(x)))");
    }
  }
  detail::LoopCore& core = detail::require_core("asyncio::gather_limited");
  std::size_t next = 0;
  std::vector<std::size_t> running;
  std::exception_ptr failure;
  auto stop_starting = [&] {
    for (; next < tasks.size(); ++next) tasks[next].base().close_unstarted();
  };
  auto start_more = [&] {
    while (running.size() < limit && next < tasks.size()) {
      detail::ensure_spawned(tasks[next], core);
      running.push_back(next++);
    }
  };
  start_more();
  while (!running.empty()) {
    std::vector<detail::TaskBase*> bases;
    for (std::size_t i : running) bases.push_back(&tasks[i].base());
    // Until one ends (or, once failing, until all have): a cancel of this task is passed on to
    // the running children and the wait goes on until then (as gather()'s).
    detail::ChildWaiter waiter(
        std::move(bases),
        failure ? detail::ChildWaiter::kAll : detail::ChildWaiter::kFirstCompleted,
        /*propagate_cancel=*/true);
    bool cancelled_here = false;
    try {
      co_await waiter;
    } catch (const CancelledError&) {
      cancelled_here = true;  // handled below: a handler cannot co_await
    }
    if (cancelled_here && !failure) {
      failure = std::make_exception_ptr(CancelledError("the task was cancelled"));
      stop_starting();
      for (std::size_t i : running) tasks[i].base().cancel();
    }
    for (auto it = running.begin(); it != running.end();) {
      detail::TaskBase& b = tasks[*it].base();
      if (!b.done()) {
        ++it;
        continue;
      }
      if ((b.failed() || b.cancelled()) && !failure) {
        try {
          b.check_result_ready("asyncio::gather_limited");
        } catch (...) {
          failure = std::current_exception();
        }
        stop_starting();
        for (std::size_t i : running) tasks[i].base().cancel();
      }
      it = running.erase(it);
    }
    if (!failure) start_more();
  }
  if (failure) std::rethrow_exception(failure);
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    std::vector<T> out;
    out.reserve(tasks.size());
    for (Task<T>& t : tasks) out.push_back(detail::take_result(t));
    co_return out;
  }
}

}  // namespace concur::asyncio
