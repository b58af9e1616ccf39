// TaskGroup: Python 3.13's taskgroups.py: structured concurrency, the parent's uncancel() order,
// the re-raised outside cancellation and KeyboardInterrupt passed through bare.
#include "concur/asyncio/tasks.hpp"

namespace concur::asyncio {

namespace {
template <class E>
bool is_a(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}
bool is_cancel(const std::exception_ptr& e) {
  return is_a<CancelledError>(e);
}
// Python's _is_base_error(): SystemExit and KeyboardInterrupt are not grouped. concur has no
// SystemExit; KeyboardInterrupt is what asyncio::run() raises on Ctrl-C.
bool is_base_error(const std::exception_ptr& e) {
  return is_a<KeyboardInterrupt>(e);
}
}  // namespace

TaskGroup::~TaskGroup() {
  // Only with children left when the frame holding the group is destroyed (its loop closed).
  while (Child* c = children_) {
    children_ = c->next_child;
    c->task->remove_done_node(c);
    delete c;
  }
}

void TaskGroup::check_open() const {
  if (exiting_ && live_ == 0) {
    throw RuntimeError("asyncio::TaskGroup::create_task(): the TaskGroup is finished");
  }
  if (aborting_) {
    throw RuntimeError(
        "asyncio::TaskGroup::create_task(): the TaskGroup is shutting down (a child failed or the "
        "group was cancelled); start no new children");
  }
}

void TaskGroup::adopt(detail::TaskBase& task) {
  auto* c = new Child;
  c->group = this;
  c->task = &task;
  c->on_done = &on_child_done;
  c->awaiter = &parent_;  // as Python's create_task: the parent awaits each child (call graphs)
  c->next_child = children_;
  if (children_) children_->prev_child = c;
  children_ = c;
  ++live_;
  task.add_done_node(c);
}

void TaskGroup::abort() {
  aborting_ = true;
  for (Child* c = children_; c; c = c->next_child) {
    if (!c->task->done()) c->task->cancel();
  }
}

void TaskGroup::cancel() {
  if (exiting_ && live_ == 0) return;
  if (aborting_) return;
  abort();
  // The same request a failing child makes: exit() withdraws it, so the group ends without
  // CancelledError unless someone else also cancelled the parent.
  if (!parent_cancel_requested_ && !parent_.done()) {
    parent_cancel_requested_ = true;
    parent_.cancel();
  }
}

detail::Suspension* TaskGroup::on_child_done(detail::DoneNode* n, detail::TaskBase* task) {
  auto* c = static_cast<Child*>(n);
  TaskGroup* g = c->group;
  (c->prev_child ? c->prev_child->next_child : g->children_) = c->next_child;
  if (c->next_child) c->next_child->prev_child = c->prev_child;
  delete c;
  --g->live_;
  if (task->failed()) {
    g->errors_.push_back(task->exception());
    if (!g->base_error_ && is_base_error(g->errors_.back())) g->base_error_ = g->errors_.back();
    if (g->parent_.done()) {
      g->core_.report("a TaskGroup child failed after its parent task finished", g->errors_.back());
    } else if (!g->aborting_ && !g->parent_cancel_requested_) {
      // Stop the rest, and the body wherever it waits; exit() withdraws this cancel again.
      g->abort();
      g->parent_cancel_requested_ = true;
      g->parent_.cancel();
    }
  }
  if (g->live_ == 0 && g->exit_waiter_) {
    // Through the ready queue, as Python's on_completed_fut: what is already scheduled (another
    // group's failing child, say) runs before the parent resumes. Resuming the parent here, inside
    // the child's last step, changed what cancelling() the parent saw between nested groups.
    g->core_.wake(std::exchange(g->exit_waiter_, nullptr));
  }
  return nullptr;
}

// Suspends exit() until the last child is done. A cancel of the parent meanwhile aborts the
// group (once) and is remembered; the wait goes on.
struct TaskGroup::ExitWait : detail::Suspension {
  TaskGroup* group;
  bool* cancelled;
  bool await_ready() const noexcept { return group->live_ == 0; }
  void await_suspend(std::coroutine_handle<> h) {
    detail::TaskBase& me = group->parent_;
    task = &me;
    handle = h;
    cancel = &on_cancel;
    what = "TaskGroup";
    object = group;
    me.set_waiting(this);
    group->exit_waiter_ = this;
    if (me.must_cancel()) {
      me.set_must_cancel(false);
      on_cancel(this);
    }
  }
  void await_resume() const noexcept {}
  ~ExitWait() {
    if (group->exit_waiter_ == this) group->exit_waiter_ = nullptr;
  }
  static void on_cancel(detail::Suspension* s) {
    auto* w = static_cast<ExitWait*>(s);
    if (!w->group->aborting_) {
      *w->cancelled = true;
      w->group->abort();
    }
  }
};

Task<void> TaskGroup::exit(std::exception_ptr body_error) {
  exiting_ = true;
  if (body_error && !base_error_ && is_base_error(body_error)) base_error_ = body_error;
  bool body_cancelled = is_cancel(body_error);
  std::exception_ptr propagate = body_cancelled ? body_error : nullptr;
  if (body_error && !aborting_) abort();
  bool cancelled_while_waiting = false;
  while (live_ > 0) {
    co_await ExitWait{{}, this, &cancelled_while_waiting};
    // A cancel() that came after the last child woke us: Python throws it into the await of
    // on_completed_fut, where __aexit__ catches it; so do we.
    if (parent_.must_cancel()) {
      parent_.set_must_cancel(false);
      if (!aborting_) {
        cancelled_while_waiting = true;
        abort();
      }
    }
  }
  if (cancelled_while_waiting && !propagate) {
    propagate = std::make_exception_ptr(CancelledError(
        parent_.cancel_message().empty() ? "the task was cancelled" : parent_.cancel_message()));
  }
  // Bare, before the parent's uncancel(), as 3.13 does.
  if (base_error_) std::rethrow_exception(base_error_);
  if (parent_cancel_requested_ && parent_.uncancel() == 0) propagate = nullptr;
  if (propagate && errors_.empty()) std::rethrow_exception(propagate);
  if (body_error && !body_cancelled) errors_.push_back(body_error);
  if (errors_.empty()) co_return;
  // The parent is also being cancelled from outside (Python 3.13): withdraw and renew that
  // request so that it is delivered at the parent's next co_await, after the group's errors are
  // handled, with cancelling() unchanged.
  if (parent_.cancelling() > 0) {
    parent_.uncancel();
    parent_.cancel();
  }
  std::vector<std::exception_ptr> errors = std::move(errors_);
  std::string what = "unhandled errors in a TaskGroup (" + std::to_string(errors.size()) +
                     " sub-exception" + (errors.size() == 1 ? "" : "s") + ")";
  throw ExceptionGroup(what, std::move(errors));
}

}  // namespace concur::asyncio
