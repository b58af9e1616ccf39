// concur/thread_pool.hpp: ThreadPoolExecutor, Python's concurrent.futures.ThreadPoolExecutor.
//
// ThreadPoolExecutor runs callables on up to max_workers threads and hands back concur::Future
// results. Python's semantics, kept exactly: map() yields results in input order and rethrows an
// item's exception when that item is reached; a task's exception travels to result() as its own
// type; shutdown(wait, cancel_futures); threads start lazily, one per submit while no worker is
// idle; an initializer runs in each worker first, and if it throws the pool is broken.
//
// Beyond Python: a worker that waits on a future (result(), wait(), as_completed()) runs other
// tasks of its pool meanwhile, so recursive fan-out (a task that submits tasks and waits on them)
// cannot deadlock, even with one worker; and map() over an endless range works, submitting only
// a window of inputs ahead.
//
// States:
//   | state    | submit()/map()          | shutdown()                      | destructor       |
//   |----------|-------------------------|---------------------------------|------------------|
//   | running  | queues the task         | -> shut down                    | shutdown(true)   |
//   | shut down| throws concur::RuntimeError | no-op (wait=true still joins)| joins workers    |
//   | broken   | throws BrokenThreadPool | -> shut down                    | joins workers    |
// Queued tasks still run after shutdown() unless cancel_futures=true cancels them.
// From outside: `concur-ps PID` lists the pool's workers, whether each runs a task, and how many
// tasks wait (concur/asyncio/inspect.hpp).
//
// Thread safety: every member may be called from any thread, including from inside tasks, except
// that shutdown(wait=true) from inside a task of the same pool throws (it would wait for itself).
// Blocking: submit() and map() never wait for a worker (map() with a window waits for results only
// as its range is read). shutdown(true) and the destructor wait for every queued and running task.
// Callbacks and tasks run on worker threads, named "<thread_name_prefix>_<n>".
// Lifetime: the executor must outlive every call made on it; futures may outlive it. The
// destructor always joins the workers (shutdown(false) only makes that call return early), so it
// must not run on one of the pool's own workers.
// Errors: std::invalid_argument for max_workers == 0; concur::RuntimeError for submit after
// shutdown; concur::BrokenThreadPool once an initializer has thrown (every queued future gets it
// too); a task's own exception only through its future.
//
// Example:
//   concur::ThreadPoolExecutor pool(10);
//   auto pages = pool.map([](int id) { return fetch(id); }, std::views::iota(0, 10));
//   for (const std::string& page : pages) std::cout << page << '\n';   // in input order
//   auto f = pool.submit(std::pow<double, double>, 2.0, 8.0);          // f.result() == 256
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "concur/detail/map_result.hpp"
#include "concur/futures.hpp"

namespace concur {

namespace detail {
class Scheduler;
}

struct ThreadPoolOptions {
  // Unset: min(32, usable CPUs + 4), Python 3.13's default (usable: the
  // process's affinity mask, so `taskset -c 0` gives 5). Zero is an error.
  std::optional<std::size_t> max_workers = std::nullopt;
  // Unset or empty: "ThreadPoolExecutor-<k>" with k counting pools in this process.
  std::string thread_name_prefix = {};
  // Runs once in each worker before its first task (Python's initializer + initargs: bind
  // arguments with a lambda). If it throws, the pool is broken.
  std::function<void()> initializer = {};
};

class ThreadPoolExecutor {
 public:
  ThreadPoolExecutor() : ThreadPoolExecutor(ThreadPoolOptions{}) {}
  explicit ThreadPoolExecutor(std::size_t max_workers)
      : ThreadPoolExecutor(ThreadPoolOptions{.max_workers = max_workers}) {}
  explicit ThreadPoolExecutor(ThreadPoolOptions options);
  ~ThreadPoolExecutor();

  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  // Schedules fn(args...) and returns its future. fn and args are decay-copied (or moved) into
  // the task, as std::thread does, and the callable is destroyed right after it runs.
  template <class F, class... Args>
  requires std::invocable<std::decay_t<F>, std::decay_t<Args>...>
  auto submit(F&& fn, Args&&... args)
      -> Future<std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>> {
    using R = std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;
    auto call = [fn = std::forward<F>(fn), ... args = std::forward<Args>(args)]() mutable -> R {
      return std::invoke(std::move(fn), std::move(args)...);
    };
    auto* task = new detail::TaskState<decltype(call), R>(std::move(call));
    Future<R> future = detail::FutureAccess<R>::adopt(task);
    task->add_ref();  // the queue's reference; schedule() gives it up if it refuses the task
    schedule(task);
    return future;
  }

  // Python's Executor.map(fn, inputs, timeout=..., buffersize=...): an input range of fn(x) for
  // each x of `inputs`, in input order (a tuple x is unpacked into fn's arguments when fn does
  // not take the tuple itself). Work is submitted now; reading waits for each result in turn and
  // rethrows its exception, after which the range ends and the rest are cancelled. Leaving the
  // loop early cancels what has not started. `inputs` (if an lvalue) must outlive the range.
  //   for (int square : pool.map([](int x) { return x * x; }, std::vector{1, 2, 3})) ...
  template <class F, std::ranges::input_range R>
  [[nodiscard]] auto map(F&& fn, R&& inputs, const MapOptions& options = {}) {
    auto submit_one = [this](auto&& task, auto&& item) {
      return this->submit(std::forward<decltype(task)>(task), std::forward<decltype(item)>(item));
    };
    return detail::make_map_result(submit_one, std::forward<F>(fn), std::forward<R>(inputs),
                                   options, 4 * max_workers());
  }

  // Python's shutdown(wait=True, cancel_futures=False). Refuses new work from now on. With
  // cancel_futures, tasks that have not started are cancelled. With wait, blocks until every
  // remaining task has run and every worker has exited. Safe to call more than once.
  void shutdown(bool wait = true, bool cancel_futures = false);

  std::size_t max_workers() const noexcept;
  // How many worker threads have been started so far (they start lazily).
  std::size_t thread_count() const noexcept;

 private:
  void schedule(detail::StateBase* task);

  detail::Scheduler* scheduler_;
};

// The calling thread's name: "<prefix>_<n>" on a pool worker, else what the OS has for it.
std::string thread_name();

}  // namespace concur
