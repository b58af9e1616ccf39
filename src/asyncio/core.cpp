// The loop's core (ready queue, timers) and the task state machine; the frame allocator is in
// frames.cpp.
#include "concur/asyncio/detail/core.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "concur/asyncio/task.hpp"
#include "describe_exception.hpp"
#include "inspect/layout.hpp"

namespace concur::asyncio::detail {

// ---------------------------------------------------------------------------------------------
// LoopCore

namespace {
// A done callback: a node that owns its function and frees itself after running it.
struct CallbackNode : DoneNode {
  std::function<void()> fn;
  LoopCore* core = nullptr;
  static Suspension* on_done_cb(DoneNode* n, TaskBase*) {
    auto* self = static_cast<CallbackNode*>(n);
    self->core->push_ready(&run, self);
    return nullptr;
  }
  static void run(void* p) {
    std::unique_ptr<CallbackNode> self(static_cast<CallbackNode*>(p));
    try {
      self->fn();
    } catch (...) {
      self->core->report("Exception in a task's done callback", std::current_exception());
    }
  }
};
}  // namespace

// A loop takes over the ready queue the last loop on its thread grew, and gives its own back
// when it ends. A program that calls asyncio::run() repeatedly (a benchmark, a test, a CLI
// handling requests one loop each) otherwise grows a fresh queue every time, and a queue that
// reached 100,000 tasks is megabytes of new pages faulted in: measured, the fresh-loop rounds of
// create-and-gather of 100,000 tasks took ~2,400 page faults each where rounds inside one loop
// took none. Bounded: a queue above kMaxSpareReady items is freed, not kept.
//
// The spare is a plain pointer (valid at any point of the thread's life) freed by a guard whose
// destructor also marks the thread as ending: a loop destroyed after that (a static EventLoop at
// exit) frees its queue instead of handing it to storage that is gone.
namespace {
constexpr std::size_t kMaxSpareReady = std::size_t{1} << 18;  // 4 MiB of ReadyItems
}  // namespace

struct LoopCore::SpareReady {
  std::vector<ReadyItem>* items = nullptr;
  bool ended = false;
};

LoopCore::SpareReady& LoopCore::spare_ready() {
  thread_local SpareReady spare;  // trivially destructible: usable until the thread is gone
  thread_local struct Release {
    ~Release() {
      delete spare.items;
      spare.items = nullptr;
      spare.ended = true;
    }
  } release;
  (void)&release;  // constructed (and its destructor registered) with the first loop
  return spare;
}

LoopCore::LoopCore() {
  SpareReady& spare = spare_ready();
  if (spare.items) {
    ready_ = std::move(*spare.items);
    delete spare.items;
    spare.items = nullptr;
  } else {
    ready_.resize(256);
  }
  heap_.reserve(64);
  register_loop(this);
}

LoopCore::~LoopCore() {
  unregister_loop(this);
  SpareReady& spare = spare_ready();
  if (spare.ended || spare.items || ready_.size() > kMaxSpareReady) return;
  spare.items = new (std::nothrow) std::vector<ReadyItem>(std::move(ready_));
}

void LoopCore::grow_ready() {
  std::vector<ReadyItem> bigger(ready_.size() * 2);
  for (std::size_t i = 0; i < ready_size_; ++i) {
    bigger[i] = ready_[(ready_head_ + i) & (ready_.size() - 1)];
  }
  ready_ = std::move(bigger);
  ready_head_ = 0;
}

void LoopCore::resume_suspension(void* p) {
  auto* s = static_cast<Suspension*>(p);
  LoopCore* core = s->task ? s->task->core_ : running_core();
  TaskBase* prev = core->current_;
  core->current_ = s->task;
  s->handle.resume();
  core->current_ = prev;
}

void LoopCore::resume_now(Suspension* s) {
  if (s->task) clear_waiting(s);
  if (!debug) {
    resume_suspension(s);
    return;
  }
  std::int64_t t0 = monotonic_ns();
  TaskBase* task = s->task;
  std::string what = task ? task->describe() : std::string("a coroutine");
  resume_suspension(s);
  std::int64_t dt = monotonic_ns() - t0;
  if (dt > slow_callback_ns) report_slow(what.c_str(), dt);
}

void LoopCore::run_ready() {
  std::size_t budget = ready_size_ + kReadyBudget;
  while (ready_size_ != 0 && budget-- != 0) {
    ReadyItem item = ready_[ready_head_];
    ready_head_ = (ready_head_ + 1) & (ready_.size() - 1);
    --ready_size_;
    if (!debug) {
      item.run(item.arg);
      continue;
    }
    std::string what = describe_ready(item);
    std::int64_t t0 = monotonic_ns();
    item.run(item.arg);
    std::int64_t dt = monotonic_ns() - t0;
    if (dt > slow_callback_ns) report_slow(what.c_str(), dt);
  }
}

std::string LoopCore::describe_ready(const ReadyItem& item) const {
  if (item.run == &resume_suspension) {
    auto* s = static_cast<Suspension*>(item.arg);
    if (s->task) return s->task->describe();
  }
  if (item.run == &TaskBase::step_start) return static_cast<TaskBase*>(item.arg)->describe();
  if (describe_callback && item.run == callback_runner) return describe_callback(item.arg);
  return "a callback";
}

void LoopCore::report_slow(const char* what, std::int64_t ns) {
  char text[96];
  std::snprintf(text, sizeof text, " blocked the event loop for %.3f s (debug mode: the limit is ",
                static_cast<double>(ns) / 1e9);
  char limit[48];
  std::snprintf(limit, sizeof limit, "%.3f s)", static_cast<double>(slow_callback_ns) / 1e9);
  report(std::string("Executing ") + what + text + limit +
         "; move blocking work to asyncio::to_thread()");
}

void LoopCore::clear_ready() {
  while (ready_size_ != 0) {
    ReadyItem item = ready_[ready_head_];
    ready_head_ = (ready_head_ + 1) & (ready_.size() - 1);
    --ready_size_;
    if (item.run == &CallbackNode::run) delete static_cast<CallbackNode*>(item.arg);
    if (item.run == callback_runner && drop_callback) drop_callback(item.arg);
  }
}

void LoopCore::arm(TimerNode* t, std::int64_t when_ns) {
  if (t->armed()) disarm(t);
  t->when_ns = when_ns;
  t->seq = timer_seq_++;
  heap_.push_back(t);
  t->index = static_cast<std::uint32_t>(heap_.size() - 1);
  sift_up(t->index);
}

void LoopCore::disarm(TimerNode* t) {
  if (!t->armed()) return;
  std::uint32_t i = t->index;
  t->index = TimerNode::kNotArmed;
  TimerNode* last = heap_.back();
  heap_.pop_back();
  if (last == t) return;
  place(i, last);
  sift_down(i);
  sift_up(last->index);
}

void LoopCore::sift_up(std::uint32_t i) {
  TimerNode* t = heap_[i];
  while (i > 0) {
    std::uint32_t parent = (i - 1) / 2;
    if (!before(t, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, t);
}

void LoopCore::sift_down(std::uint32_t i) {
  TimerNode* t = heap_[i];
  auto n = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    std::uint32_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], t)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, t);
}

std::size_t LoopCore::fire_due(std::int64_t now_ns) {
  std::size_t fired = 0;
  // Timers armed while firing (a task that sleeps again at once) wait for the next turn, even if
  // already due, so that a zero-length timer loop cannot keep the loop from polling.
  std::uint64_t last_seq = timer_seq_;
  while (!heap_.empty() && heap_.front()->when_ns <= now_ns && heap_.front()->seq < last_seq) {
    TimerNode* t = heap_.front();
    disarm(t);
    ++fired;
    t->fire(t);
  }
  return fired;
}

// ---------------------------------------------------------------------------------------------
// TaskBase

TaskBase::~TaskBase() {
  // Only reached through frame_.destroy(): the frame is finished, never started, or torn down
  // with its loop. Anyone still listening is told nothing more; unlink them so they do not point
  // here.
  drop_done_nodes();
}

void TaskBase::drop_done_nodes() noexcept {
  while (DoneNode* n = done_head_) {
    remove_done_node(n);
    if (n->on_done == &CallbackNode::on_done_cb) delete static_cast<CallbackNode*>(n);
  }
}

std::string TaskBase::name() const {
  if (extras_ && !extras_->name.empty()) return extras_->name;
  return "Task-" + std::to_string(id_);
}

std::string TaskBase::describe() const {
  return "task " + name() + " (created at " + created_at_.file_name() + ":" +
         std::to_string(created_at_.line()) + ")";
}

void TaskBase::set_name(std::string name) {
  if (!extras_) extras_ = std::make_unique<Extras>();
  extras_->name = std::move(name);
}

void TaskBase::spawn(LoopCore& core, concur::base::source_location where, bool eager) {
  if (phase_ != kLazy) {
    throw RuntimeError(
        "asyncio::create_task(): this coroutine has already been started or awaited; a coroutine "
        "runs once, so call the coroutine function again for a new task");
  }
  spawned_ = true;
  core_ = &core;
  phase_ = kScheduled;
  created_at_ = where;
  created_ms_ = core.turn_ms;
  id_ = ++core.next_task_id;
  add_ref();  // the running reference, released when the task finishes
  all_prev = nullptr;
  all_next = core.tasks_head;
  if (core.tasks_head) core.tasks_head->all_prev = this;
  core.tasks_head = this;
  ++core.live_tasks;
  if (eager) {
    // Its first step, now: step_start sets it as the current task and restores the caller's.
    // The handle the caller holds keeps it alive if it finishes within this step.
    step_start(this);
    return;
  }
  core.push_ready(&step_start, this);
}

void TaskBase::step_start(void* self) {
  auto* t = static_cast<TaskBase*>(self);
  if (t->must_cancel_) {
    // Cancelled before its first step: the body never runs (asyncio throws CancelledError in at
    // the first line, before any try block is entered).
    t->must_cancel_ = false;
    t->error_ = std::make_exception_ptr(CancelledError(t->cancel_message_or_default()));
    LoopCore* core = t->core_;
    TaskBase* prev = core->current_task();
    std::coroutine_handle<> next = t->finish();  // may free t
    if (next != std::noop_coroutine()) next.resume();
    core->set_current_task(prev);
    return;
  }
  LoopCore* core = t->core_;
  TaskBase* prev = core->current_task();
  core->set_current_task(t);
  t->frame_.resume();
  core->set_current_task(prev);
}

std::string TaskBase::cancel_message_or_default() const {
  if (extras_ && !extras_->cancel_message.empty()) return extras_->cancel_message;
  return "the task was cancelled";
}

bool TaskBase::cancel(std::string_view message) {
  if (!spawned_) {
    throw InvalidStateError(
        "asyncio::Task::cancel(): this coroutine is not a task; pass it to "
        "asyncio::create_task() to run and cancel it on its own");
  }
  if (phase_ == kDone) return false;
  if (gathering_ && !waiting_) return false;  // see set_gathering()
  ++cancel_requests_;
  if (!message.empty()) {
    if (!extras_) extras_ = std::make_unique<Extras>();
    extras_->cancel_message = std::string(message);
  }
  if (waiting_ && waiting_->cancel) {
    Suspension* s = waiting_;
    s->cancel(s);  // detaches the wait and wakes the task, or passes the request on
    return true;
  }
  must_cancel_ = true;
  return true;
}

void TaskBase::throw_if_cancel_requested() {
  if (!must_cancel_) return;
  must_cancel_ = false;
  throw_cancelled();
}

void TaskBase::throw_cancelled() const {
  throw CancelledError(cancel_message_or_default());
}

std::exception_ptr TaskBase::exception() {
  if (phase_ != kDone) {
    throw InvalidStateError(
        "asyncio::Task::exception(): the task is not done yet; co_await it (or check done())");
  }
  if (cancelled_) throw_cancelled();
  retrieved_ = true;
  return error_;
}

void TaskBase::check_result_ready(const char* who) {
  if (phase_ != kDone) {
    throw InvalidStateError(std::string(who) +
                            ": the task is not done yet; co_await it (or check done()) first");
  }
  retrieved_ = true;
  if (error_) std::rethrow_exception(error_);
  if (cancelled_) throw_cancelled();
}

void TaskBase::on_exception(std::exception_ptr e) noexcept {
  error_ = std::move(e);
}

void TaskBase::add_done_node(DoneNode* n) {
  n->linked = true;
  n->next = nullptr;
  n->prev = done_tail_;
  (done_tail_ ? done_tail_->next : done_head_) = n;
  done_tail_ = n;
}

void TaskBase::remove_done_node(DoneNode* n) {
  if (!n->linked) return;
  (n->prev ? n->prev->next : done_head_) = n->next;
  (n->next ? n->next->prev : done_tail_) = n->prev;
  n->prev = n->next = nullptr;
  n->linked = false;
}

void TaskBase::add_done_callback(std::function<void()> fn) {
  LoopCore* core = core_ ? core_ : running_core();
  if (!core) {
    throw RuntimeError(
        "asyncio::Task::add_done_callback(): the task has no loop; create_task() it first");
  }
  auto node = std::make_unique<CallbackNode>();
  node->fn = std::move(fn);
  node->core = core;
  node->on_done = &CallbackNode::on_done_cb;
  if (phase_ == kDone) {
    core->push_ready(&CallbackNode::run, node.release());  // as asyncio: soon, not now
    return;
  }
  add_done_node(node.release());
}

// The end of a spawned task: settle the outcome, tell the listeners, drop the running reference.
std::coroutine_handle<> TaskBase::finish() noexcept {
  LoopCore* core = core_;
  if (error_) {
    try {
      std::rethrow_exception(error_);
    } catch (const CancelledError&) {
      cancelled_ = !gathering_;  // a gathering task ends with the exception (set_gathering())
    } catch (...) {
    }
  } else if (must_cancel_) {
    // cancel() came while the task ran its last step and it returned without awaiting again:
    // asyncio ends such a task cancelled, its result dropped.
    must_cancel_ = false;
    cancelled_ = true;  // the value stays in the frame, unreachable: result() throws
  }
  if (core->debug && !cancelled_ && !error_ && cancel_requests_ > 0) {
    core->report(describe() +
                 " was cancelled but returned normally: it caught CancelledError and did not "
                 "re-throw it (call uncancel() if that is deliberate)");
  }
  phase_ = kDone;
  (all_prev ? all_prev->all_next : core->tasks_head) = all_next;
  if (all_next) all_next->all_prev = all_prev;
  all_prev = all_next = nullptr;
  --core->live_tasks;

  std::coroutine_handle<> next = std::noop_coroutine();
  bool single = done_head_ && done_head_ == done_tail_;
  while (DoneNode* n = done_head_) {
    remove_done_node(n);
    Suspension* s = n->on_done(n, this);
    if (!s) continue;
    if (single && s->handle) {
      if (s->task) s->task->set_waiting(nullptr);
      core->set_current_task(s->task);
      next = s->handle;
    } else {
      core->wake(s);
    }
  }
  release();  // may destroy this frame: touch nothing after it
  return next;
}

std::coroutine_handle<> TaskBase::on_final() noexcept {
  if (phase_ == kInline) {
    phase_ = kDone;
    return continuation_;
  }
  return finish();
}

void TaskBase::report_unretrieved() {
  std::string message = "Task exception was never retrieved (" + describe() + ")";
  if (core_ && running_core() == core_) {
    core_->report(message, error_);
    return;
  }
  std::fprintf(stderr, "concur.asyncio: %s: %s\n", message.c_str(),
               concur::detail::describe_exception(error_).c_str());
}

void TaskBase::abandon() noexcept {
  LoopCore* core = core_;
  (all_prev ? all_prev->all_next : core->tasks_head) = all_next;
  if (all_next) all_next->all_prev = all_prev;
  all_prev = all_next = nullptr;
  --core->live_tasks;
  phase_ = kDone;
  cancelled_ = true;
  drop_done_nodes();
  if (refs_ > 1) {
    abandoned_ = true;
    --refs_;
    return;
  }
  refs_ = 0;
  frame_.destroy();
}

void TaskBase::release() {
  if (--refs_ != 0) return;
  if (abandoned_) return;  // see abandon()
  if (phase_ == kLazy && !closed_) {
    LoopCore* core = running_core();
    if (core && core->debug) {
      core->report(
          "a coroutine was never awaited: a Task<T> was made and dropped without "
          "co_await or create_task(), so its body never ran");
    }
  }
  if (phase_ == kDone && spawned_ && error_ && !retrieved_ && !cancelled_) report_unretrieved();
  frame_.destroy();
}

}  // namespace concur::asyncio::detail

namespace concur::asyncio {
detail::TaskBase* current_task() noexcept {
  detail::LoopCore* core = detail::running_core();
  return core ? core->current_task() : nullptr;
}
}  // namespace concur::asyncio
