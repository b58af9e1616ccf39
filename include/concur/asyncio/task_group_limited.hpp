// concur/asyncio/task_group_limited.hpp: a TaskGroup whose children run at most N at a time.
//
// Bounded fan-out, the TaskGroup side of gather_limited() (Python issue gh-115201 asks for both;
// Python users build it by hand from a Semaphore, which is what this does for them):
//
//   co_await asyncio::task_group_limited(8, [&](asyncio::LimitedTaskGroup& tg) -> Task<void> {
//     for (const auto& url : urls) tg.create_task(fetch(url));
//     co_return;
//   });
//
// Every child is a task at once (create_task returns it, it can be awaited, cancelled, named),
// but its coroutine starts only when fewer than `limit` children are running: in the order the
// children were created (the slots are a FIFO Semaphore). Otherwise it is task_group():
//   - the group ends when every child has ended; the first child that fails cancels the others
//     and the body, and the group throws the ExceptionGroup of the failures;
//   - a child still waiting for a slot when it is cancelled (by a failure, by cancel(), by the
//     parent being cancelled, or by hand) ends cancelled without its coroutine ever running
//     (the coroutine is closed, so it is not reported as "never awaited");
//   - cancel() is TaskGroup::cancel() (Python 3.15).
// Pass coroutines not yet started (`f(i)`, not `asyncio::create_task(f(i))`): a task already
// running cannot be held back, so it is refused (std::invalid_argument), as is a limit of 0.
// Thread safety: none; the loop's thread, inside task_group_limited()'s body and children.
#pragma once

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "concur/asyncio/sync.hpp"
#include "concur/asyncio/tasks.hpp"

namespace concur::asyncio {

class LimitedTaskGroup {
 public:
  LimitedTaskGroup(TaskGroup& group, std::size_t limit)
      : group_(group), slots_(static_cast<long>(limit)), limit_(limit) {}
  LimitedTaskGroup(const LimitedTaskGroup&) = delete;
  LimitedTaskGroup& operator=(const LimitedTaskGroup&) = delete;

  // Starts a child that runs `task` once a slot is free. Refused as TaskGroup::create_task is
  // (RuntimeError once the group is shutting down: the coroutine is then closed), and with
  // std::invalid_argument for a task already running, which is left untouched with the caller
  // (it goes on running; await or cancel it).
  template <class T>
  Task<T> create_task(
      Task<T>&& task, std::string name = {},
      concur::base::source_location where = concur::base::source_location::current()) {
    if (task.valid() && task.base().spawned()) {
      throw std::invalid_argument(
          "asyncio::LimitedTaskGroup::create_task(): the task is already running, so it cannot "
          "wait for a slot; pass the coroutine itself (f(x), not asyncio::create_task(f(x)))");
    }
    return group_.create_task(when_a_slot_frees(std::move(task)), std::move(name), where);
  }

  void cancel() { group_.cancel(); }
  // Children not yet ended (waiting for a slot or running).
  std::size_t size() const { return group_.size(); }
  // Children whose coroutine is running now (at most the limit).
  std::size_t running() const { return running_; }
  std::size_t limit() const { return limit_; }
  TaskGroup& group() { return group_; }

 private:
  template <class T>
  Task<T> when_a_slot_frees(Task<T> body) {
    try {
      co_await slots_.acquire();
    } catch (...) {
      body.base().close_unstarted();  // cancelled while waiting: it never runs
      throw;
    }
    struct Slot {
      LimitedTaskGroup& group;
      explicit Slot(LimitedTaskGroup& g) : group(g) { ++group.running_; }
      ~Slot() {
        --group.running_;
        group.slots_.release();
      }
    } slot(*this);
    if constexpr (std::is_void_v<T>) {
      co_await std::move(body);
    } else {
      co_return co_await std::move(body);
    }
  }

  TaskGroup& group_;
  Semaphore slots_;
  std::size_t limit_;
  std::size_t running_ = 0;
};

// task_group() whose children run at most `limit` at a time. body: a callable taking
// LimitedTaskGroup& and returning Task<void>. std::invalid_argument for a limit of 0.
template <class F>
Task<void> task_group_limited(std::size_t limit, F body) {
  if (limit == 0) {
    throw std::invalid_argument("asyncio::task_group_limited(): limit must be at least 1");
  }
  // As task_group(), with the slots in this frame: they must outlive every child, and the
  // group's exit() returns only once every child has ended.
  detail::LoopCore& core = detail::require_core("asyncio::task_group_limited");
  TaskGroup group(core, detail::require_task(core, "asyncio::task_group_limited"));
  LimitedTaskGroup limited(group, limit);
  std::exception_ptr error;
  try {
    co_await body(limited);
  } catch (...) {
    error = std::current_exception();
  }
  co_await group.exit(error);
}

}  // namespace concur::asyncio
