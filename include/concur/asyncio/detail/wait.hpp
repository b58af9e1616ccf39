// Internal: the awaitable every waiting primitive (Lock, Event, Condition, Semaphore, Queue) is
// built from. The waiter is a node of the primitive's WaitList, inside the awaiting coroutine's
// frame: waiting allocates nothing.
#pragma once

#include <coroutine>
#include <cstddef>

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/task.hpp"

namespace concur::asyncio::detail {

// Suspends the current task on a WaitList until wake_first/wake_all takes it off, or the task is
// cancelled (then it is taken off and CancelledError is due: check cancel_due() in await_resume,
// where the primitive undoes what a wake-up it will not use had promised). The list is passed to
// suspend_on() rather than stored, so that an awaiter that knows its primitive (Event::Wait)
// stays small: a parked task's frame holds it.
struct ListWaiter : WaitNode {
  bool await_ready() const noexcept { return false; }
  bool suspend_on(WaitList& waiters, std::coroutine_handle<> h) {
    LoopCore& core = require_core("asyncio: waiting on a Lock, Event, Semaphore or Queue");
    TaskBase* me = core.current_task();
    if (!me) {
      throw RuntimeError(
          "asyncio: Lock, Event, Semaphore and Queue waits must be awaited inside a task");
    }
    suspension.task = me;
    if (me->must_cancel()) return false;
    suspension.handle = h;
    suspension.cancel = &on_cancel;
    waiters.push_back(this);  // also says what the task waits on (the list, its name)
    me->set_waiting(&suspension);
    return true;
  }
  // Plain co_await of a ListWaiter returns nothing: the caller inspects woken / cancel_due().
  void await_resume() const noexcept {}
  // True when the task must now throw CancelledError (call throw_cancel() after cleaning up).
  bool cancel_due() const { return suspension.task && suspension.task->must_cancel(); }
  void throw_cancel() { suspension.task->throw_if_cancel_requested(); }

  static void on_cancel(Suspension* s) {
    auto* n =
        reinterpret_cast<WaitNode*>(reinterpret_cast<char*>(s) - offsetof(WaitNode, suspension));
    if (n->linked()) n->list()->remove(n);
    s->task->set_must_cancel();
    s->task->loop_core()->wake(s);
  }
};

// A ListWaiter on a list given up front.
struct ListWait : ListWaiter {
  WaitList* waiters;
  explicit ListWait(WaitList& on) : waiters(&on) {}
  bool await_suspend(std::coroutine_handle<> h) { return suspend_on(*waiters, h); }
};

// Takes the first waiter off and wakes it; false when there is none.
inline bool wake_first(WaitList& list) {
  WaitNode* n = list.head;
  if (!n) return false;
  list.remove(n);
  n->mark_woken();
  n->suspension.task->loop_core()->wake(&n->suspension);
  return true;
}

inline void wake_all(WaitList& list) {
  while (wake_first(list)) {
  }
}

}  // namespace concur::asyncio::detail
