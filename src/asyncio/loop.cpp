// EventLoop on libuv: the turn (poll, timers, ready queue), callbacks, signals, the thread-safe
// inbox, closing, and asyncio::run's ending.
#include "concur/asyncio/loop.hpp"

#include <signal.h>
#include <uv.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "asyncio/uv_util.hpp"
#include "concur/base/mutex.hpp"
#include "concur/thread_pool.hpp"
#include "describe_exception.hpp"
#include "platform/signals.hpp"

namespace concur::asyncio {

namespace detail {
namespace {
thread_local LoopCore* t_running_core = nullptr;
thread_local EventLoop* t_running_loop = nullptr;
}  // namespace

LoopCore* running_core() noexcept {
  return t_running_core;
}

LoopCore& require_core(const char* who) {
  if (!t_running_core) {
    throw RuntimeError(std::string(who) +
                       ": no running event loop; call it from a coroutine run by "
                       "asyncio::run() or EventLoop::run_until_complete()");
  }
  return *t_running_core;
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Callbacks (call_soon, call_later, call_at)

struct CallbackHandle::State : detail::TimerNode {
  std::function<void()> fn;
  detail::LoopCore* core = nullptr;
  std::shared_ptr<State> self;  // the loop's reference while scheduled
  concur::base::source_location where;
  bool cancelled = false;
  bool timed = false;

  static void run(void* p) {
    auto* s = static_cast<State*>(p);
    std::shared_ptr<State> keep = std::move(s->self);
    if (s->cancelled) return;
    try {
      s->fn();
    } catch (...) {
      s->core->report("Exception in " + s->describe(), std::current_exception());
    }
    s->fn = nullptr;  // free what it captured now, not when the last handle goes
  }
  static void on_fire(detail::TimerNode* t) { run(static_cast<State*>(t)); }
  static void drop(void* p) {
    auto* s = static_cast<State*>(p);
    s->fn = nullptr;
    s->self.reset();  // may free s
  }
  static std::string describe_item(void* p) { return static_cast<State*>(p)->describe(); }
  std::string describe() const {
    return std::string("the callback scheduled at ") + where.file_name() + ":" +
           std::to_string(where.line());
  }
};

void CallbackHandle::cancel() {
  if (!state_ || state_->cancelled) return;
  state_->cancelled = true;
  state_->fn = nullptr;
  if (state_->armed()) {
    state_->core->disarm(state_.get());
    state_->self.reset();
  }
}

bool CallbackHandle::cancelled() const {
  return state_ && state_->cancelled;
}

std::optional<Clock::time_point> CallbackHandle::when() const {
  if (!state_ || !state_->timed) return std::nullopt;
  return Clock::time_point(std::chrono::nanoseconds(state_->when_ns));
}

// ---------------------------------------------------------------------------------------------
// The thread-safe inbox outlives the loop (shared with every thread that may still post), so a
// late call_soon_threadsafe gets a clear error instead of touching freed memory.

namespace {
struct Inbox {
  base::Mutex mutex;
  std::vector<std::function<void()>> items CONCUR_GUARDED_BY(mutex);
  uv_async_t* async CONCUR_GUARDED_BY(mutex) = nullptr;  // null once the loop closes
};

struct SignalEntry {
  uv_signal_t handle;
  std::function<void()> fn;
  EventLoop::Impl* loop = nullptr;
};
}  // namespace

struct EventLoop::Impl {
  detail::LoopCore core;
  uv_loop_t uv;
  uv_timer_t timer;
  uv_async_t async;
  std::shared_ptr<Inbox> inbox = std::make_shared<Inbox>();
  std::map<int, SignalEntry*> signals;
  std::unique_ptr<ThreadPoolExecutor> executor;
  std::function<void(const ExceptionContext&)> handler;
  std::int64_t timer_due_ns = -1;  // what the uv timer is armed for
  std::thread::id thread;
  bool running = false;
  bool stopping = false;
  bool closed = false;
};

namespace {

void check_uv(int rc, const char* what) {
  if (rc < 0) throw OSError(-rc, std::string(what) + ": " + uv_strerror(rc));
}

void on_async(uv_async_t* handle) {
  auto* m = static_cast<EventLoop::Impl*>(handle->data);
  std::vector<std::function<void()>> items;
  {
    base::MutexLock lock(m->inbox->mutex);
    items.swap(m->inbox->items);
  }
  for (auto& fn : items) {
    try {
      fn();
    } catch (...) {
      m->core.report("Exception in a call_soon_threadsafe callback", std::current_exception());
    }
  }
}

void on_signal(uv_signal_t* handle, int) {
  auto* e = static_cast<SignalEntry*>(handle->data);
  std::function<void()> fn = e->fn;  // it may remove itself
  try {
    fn();
  } catch (...) {
    e->loop->core.report("Exception in a signal handler", std::current_exception());
  }
}

void on_signal_closed(uv_handle_t* handle) {
  delete static_cast<SignalEntry*>(handle->data);
}

}  // namespace

void detail::LoopCore::report(const std::string& message, std::exception_ptr error) {
  if (loop) {
    loop->call_exception_handler(ExceptionContext{message, error});
    return;
  }
  std::fprintf(stderr, "concur.asyncio: %s%s%s\n", message.c_str(), error ? ": " : "",
               error ? concur::detail::describe_exception(error).c_str() : "");
}

void detail::ignore_default_sigpipe() {
  platform::ignore_sigpipe_unless_handled();
}

EventLoop::EventLoop(LoopOptions options) : impl_(std::make_unique<Impl>()) {
  detail::ignore_default_sigpipe();
  Impl& m = *impl_;
  m.core.loop = this;
  const char* env = std::getenv("CONCUR_ASYNCIO_DEBUG");
  m.core.debug = options.debug || (env && *env && std::string(env) != "0");
  m.core.slow_callback_ns = options.slow_callback_duration.count();
  m.core.callback_runner = &CallbackHandle::State::run;
  m.core.describe_callback = &CallbackHandle::State::describe_item;
  m.core.drop_callback = &CallbackHandle::State::drop;
  check_uv(uv_loop_init(&m.uv),
           "asyncio::EventLoop: could not make libuv's loop (uv_loop_init; out of descriptors or "
           "memory?)");
  m.uv.data = &m;
  m.core.turn_ms = static_cast<std::uint32_t>(uv_now(&m.uv));
  uv_timer_init(&m.uv, &m.timer);
  uv_unref(reinterpret_cast<uv_handle_t*>(&m.timer));
  if (const int rc = uv_async_init(&m.uv, &m.async, &on_async); rc < 0) {
    // The loop exists: close what it holds before saying why (found by tests/faults/).
    uv_close(reinterpret_cast<uv_handle_t*>(&m.timer), nullptr);
    uv_run(&m.uv, UV_RUN_DEFAULT);
    uv_loop_close(&m.uv);
    check_uv(rc,
             "asyncio::EventLoop: could not make the loop's wake-up (uv_async_init; out of "
             "descriptors?)");
  }
  m.async.data = &m;
  base::MutexLock lock(m.inbox->mutex);  // no other thread has the inbox yet; for the analysis
  m.inbox->async = &m.async;
}

EventLoop::~EventLoop() {
  if (!impl_) return;
  if (impl_->running) {
    std::fprintf(stderr, "concur.asyncio: an EventLoop was destroyed while running; aborting\n");
    std::abort();
  }
  close();
}

bool EventLoop::is_running() const {
  return impl_->running;
}
bool EventLoop::is_closed() const {
  return impl_->closed;
}
void* EventLoop::native_handle() const {
  return &impl_->uv;
}
detail::LoopCore& EventLoop::core() {
  return impl_->core;
}
bool EventLoop::get_debug() const {
  return impl_->core.debug;
}
void EventLoop::set_debug(bool on) {
  impl_->core.debug = on;
}
void EventLoop::set_slow_callback_duration(std::chrono::nanoseconds d) {
  impl_->core.slow_callback_ns = d.count();
}
void EventLoop::set_exception_handler(std::function<void(const ExceptionContext&)> handler) {
  impl_->handler = std::move(handler);
}

void EventLoop::call_exception_handler(const ExceptionContext& context) {
  if (impl_->handler) {
    try {
      impl_->handler(context);
      return;
    } catch (...) {
      std::fprintf(stderr, "concur.asyncio: the exception handler threw: %s\n",
                   concur::detail::describe_exception(std::current_exception()).c_str());
    }
  }
  std::fprintf(
      stderr, "concur.asyncio: %s%s%s\n", context.message.c_str(), context.exception ? ": " : "",
      context.exception ? concur::detail::describe_exception(context.exception).c_str() : "");
}

namespace {
void require_open(const EventLoop::Impl& m, const char* who) {
  if (m.closed) {
    throw RuntimeError(std::string(who) +
                       ": Event loop is closed; make a new EventLoop (or use asyncio::run)");
  }
}

// One poll of libuv: without blocking when something is ready, else until the next timer.
void poll_once(EventLoop::Impl& m, bool may_block) {
  detail::LoopCore& core = m.core;
  uv_run_mode mode = UV_RUN_NOWAIT;
  if (may_block && !core.has_ready()) {
    std::int64_t deadline = core.next_deadline();
    if (deadline < 0) {
      if (m.timer_due_ns >= 0) {
        uv_timer_stop(&m.timer);
        m.timer_due_ns = -1;
      }
      mode = UV_RUN_ONCE;
    } else {
      std::int64_t wait = deadline - detail::monotonic_ns();
      if (wait > 0) {
        mode = UV_RUN_ONCE;
        if (m.timer_due_ns != deadline) {
          uv_update_time(&m.uv);
          auto ms = static_cast<std::uint64_t>((wait + 999'999) / 1'000'000);
          // Repeating: libuv's UV_RUN_ONCE runs due timers before it polls, and a timer of ours
          // that libuv's millisecond clock already sees as due would fire there, leaving no
          // timer to bound the poll, which would then sleep for ever (libuv #3326). The repeat
          // keeps one armed.
          uv_timer_start(
              &m.timer, [](uv_timer_t*) {}, ms, ms);
          m.timer_due_ns = deadline;
        }
      }
    }
  }
  uv_run(&m.uv, mode);
  core.turn_ms = static_cast<std::uint32_t>(uv_now(&m.uv));
  if (mode == UV_RUN_ONCE) m.timer_due_ns = -1;  // fired or superseded: re-arm next time
  if (core.next_deadline() >= 0) core.fire_due(detail::monotonic_ns());
}

void check_can_run(const EventLoop::Impl& m, const char* who) {
  require_open(m, who);
  if (m.running) {
    throw RuntimeError(std::string(who) + ": This event loop is already running");
  }
  if (detail::t_running_core) {
    throw RuntimeError(std::string(who) +
                       ": Cannot run the event loop while another loop is running on this "
                       "thread; await the coroutine instead");
  }
}

struct Running {
  EventLoop::Impl& m;
  detail::LoopCore* prev_core;
  EventLoop* prev_loop;
  Running(EventLoop::Impl& impl, EventLoop* self, const char* who) : m(impl) {
    check_can_run(m, who);
    prev_core = detail::t_running_core;
    prev_loop = detail::t_running_loop;
    detail::t_running_core = &m.core;
    detail::t_running_loop = self;
    m.running = true;
    m.thread = std::this_thread::get_id();
  }
  ~Running() {
    m.running = false;
    m.stopping = false;
    detail::t_running_core = prev_core;
    detail::t_running_loop = prev_loop;
  }
};
}  // namespace

void EventLoop::run_until_done(detail::TaskBase& task) {
  Impl& m = *impl_;
  Running running(m, this, "EventLoop::run_until_complete()");
  for (;;) {
    m.core.run_ready();
    if (task.done()) return;
    if (m.stopping) {
      throw RuntimeError(
          "EventLoop::run_until_complete(): Event loop stopped before Future completed");
    }
    poll_once(m, true);
  }
}

void EventLoop::run_forever() {
  Impl& m = *impl_;
  Running running(m, this, "EventLoop::run_forever()");
  for (;;) {
    m.core.run_ready();
    if (m.stopping) return;
    poll_once(m, true);
  }
}

void EventLoop::check_can_run(const char* who) const {
  asyncio::check_can_run(*impl_, who);
}

void EventLoop::stop() {
  impl_->stopping = true;
}

void EventLoop::spawn_here(detail::TaskBase& task, concur::base::source_location where) {
  require_open(*impl_, "EventLoop::create_task()");
  task.spawn(impl_->core, where);
}

void EventLoop::set_eager_tasks(bool on) {
  impl_->core.eager_tasks = on;
}

CallbackHandle EventLoop::call_soon(std::function<void()> fn, concur::base::source_location where) {
  require_open(*impl_, "EventLoop::call_soon()");
  auto s = std::make_shared<CallbackHandle::State>();
  s->fn = std::move(fn);
  s->core = &impl_->core;
  s->where = where;
  s->self = s;
  impl_->core.push_ready(&CallbackHandle::State::run, s.get());
  return CallbackHandle(std::move(s));
}

CallbackHandle EventLoop::call_at(Clock::time_point when, std::function<void()> fn,
                                  concur::base::source_location where) {
  require_open(*impl_, "EventLoop::call_at()");
  auto s = std::make_shared<CallbackHandle::State>();
  s->fn = std::move(fn);
  s->core = &impl_->core;
  s->where = where;
  s->timed = true;
  s->self = s;
  s->fire = &CallbackHandle::State::on_fire;
  impl_->core.arm(
      s.get(),
      std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count());
  return CallbackHandle(std::move(s));
}

CallbackHandle EventLoop::call_later(std::chrono::nanoseconds delay, std::function<void()> fn,
                                     concur::base::source_location where) {
  return call_at(Clock::now() + delay, std::move(fn), where);
}

void EventLoop::call_soon_threadsafe(std::function<void()> fn) {
  detail::post_threadsafe(impl_->inbox, std::move(fn));
}

std::shared_ptr<void> EventLoop::inbox() const {
  return impl_->inbox;
}

void detail::post_threadsafe(const std::shared_ptr<void>& inbox_ptr, std::function<void()> fn) {
  auto* inbox = static_cast<Inbox*>(inbox_ptr.get());
  base::MutexLock lock(inbox->mutex);
  if (!inbox->async) {
    throw RuntimeError(
        "EventLoop::call_soon_threadsafe(): Event loop is closed; the callback was not run");
  }
  inbox->items.push_back(std::move(fn));
  uv_async_send(inbox->async);  // under the lock, so close() cannot free it meanwhile
}

void EventLoop::add_signal_handler(int signum, std::function<void()> fn) {
  Impl& m = *impl_;
  require_open(m, "EventLoop::add_signal_handler()");
  if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP) {
    throw std::invalid_argument("EventLoop::add_signal_handler(): signal " +
                                std::to_string(signum) +
                                " cannot be handled; pass a catchable signal such as SIGINT");
  }
  if (!fn) throw std::invalid_argument("EventLoop::add_signal_handler(): empty handler");
  if (auto it = m.signals.find(signum); it != m.signals.end()) {
    it->second->fn = std::move(fn);
    return;
  }
  auto* e = new SignalEntry;
  e->fn = std::move(fn);
  e->loop = &m;
  uv_signal_init(&m.uv, &e->handle);
  e->handle.data = e;
  int rc = uv_signal_start(&e->handle, &on_signal, signum);
  if (rc < 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&e->handle), &on_signal_closed);
    check_uv(rc, "EventLoop::add_signal_handler(): uv_signal_start");
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->handle));
  m.signals[signum] = e;
}

bool EventLoop::remove_signal_handler(int signum) {
  Impl& m = *impl_;
  auto it = m.signals.find(signum);
  if (it == m.signals.end()) return false;
  SignalEntry* e = it->second;
  m.signals.erase(it);
  uv_signal_stop(&e->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&e->handle), &on_signal_closed);
  return true;
}

ThreadPoolExecutor& EventLoop::default_executor() {
  require_open(*impl_, "EventLoop::default_executor()");
  if (!impl_->executor) {
    impl_->executor = std::make_unique<ThreadPoolExecutor>();  // Python's default size
  }
  return *impl_->executor;
}

std::size_t EventLoop::pending_tasks() const {
  return impl_->core.live_tasks;
}

void EventLoop::cancel_all_tasks() {
  // Cancelling may finish a task that was never started, which unlinks it: collect first.
  std::vector<detail::TaskBase*> tasks;
  for (detail::TaskBase* t = impl_->core.tasks_head; t; t = t->all_next) tasks.push_back(t);
  for (detail::TaskBase* t : tasks) t->cancel();
}

// Runs turns (never blocking) until no task is left or `idle_turns` turns in a row ran nothing.
void EventLoop::drain_tasks(int idle_turns) {
  Impl& m = *impl_;
  Running running(m, this, "EventLoop::close()");
  int idle = 0;
  while (m.core.live_tasks != 0 && idle < idle_turns) {
    bool had = m.core.has_ready();
    m.core.run_ready();
    poll_once(m, false);
    idle = had || m.core.has_ready() ? 0 : idle + 1;
  }
}

void EventLoop::close() {
  Impl& m = *impl_;
  if (m.closed) return;
  if (m.running) {
    throw RuntimeError("EventLoop::close(): Cannot close a running event loop; stop() it first");
  }
  // Tasks still pending are cancelled and given a few turns to unwind (their RAII cleanup runs
  // with the loop still there); one that still will not finish is reported and its frame
  // destroyed, unless a handle outside still refers to it (then it is leaked, and reported).
  // (Not while another loop runs on this thread: this one cannot run then, and close() may be
  // called from a destructor, which must not throw.)
  for (int round = 0; round < 3 && m.core.live_tasks != 0 && !detail::t_running_core; ++round) {
    cancel_all_tasks();
    drain_tasks(3);
  }
  while (detail::TaskBase* t = m.core.tasks_head) {
    m.core.report(t->describe() + " was destroyed but it is pending (it ignored cancellation)");
    t->abandon();
  }
  // Callbacks still queued or timed are dropped (their captures freed), as Python's close() does.
  m.core.clear_ready();
  while (detail::TimerNode* t = m.core.first_timer()) {
    m.core.disarm(t);
    if (t->fire == &CallbackHandle::State::on_fire) {
      auto* s = static_cast<CallbackHandle::State*>(t);
      s->fn = nullptr;
      s->self.reset();
    }
  }
  if (m.executor) m.executor->shutdown(true);
  for (auto& [signum, e] : m.signals) {
    uv_signal_stop(&e->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&e->handle), &on_signal_closed);
  }
  m.signals.clear();
  {
    base::MutexLock lock(m.inbox->mutex);
    m.inbox->async = nullptr;
    m.inbox->items.clear();
  }
  m.core.close_resources();  // streams, servers, sockets still open: closed their own way
  uv_close(reinterpret_cast<uv_handle_t*>(&m.async), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&m.timer), nullptr);
  uv_run(&m.uv, UV_RUN_DEFAULT);  // runs the close callbacks
  if (uv_loop_close(&m.uv) == UV_EBUSY) {
    // Handles someone else added through native_handle() and never closed.
    uv_walk(
        &m.uv,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&m.uv, UV_RUN_DEFAULT);
    uv_loop_close(&m.uv);
  }
  m.closed = true;
}

EventLoop& get_running_loop() {
  if (!detail::t_running_loop) {
    throw RuntimeError(
        "asyncio::get_running_loop(): no running event loop; call it from a coroutine run by "
        "asyncio::run()");
  }
  return *detail::t_running_loop;
}

namespace detail {

// Used only at shutdown: waits for one task to be done, whatever its outcome, without taking it.
struct DoneAwaiter {
  TaskBase* task;
  DoneNode node;
  Suspension suspension;
  bool await_ready() const noexcept { return task->done(); }
  void await_suspend(std::coroutine_handle<> h) {
    LoopCore& core = require_core("wait_all_tasks");
    suspension = Suspension{core.current_task(), h, nullptr, "task", task};
    node.awaiter = suspension.task;
    node.on_done = [](DoneNode* n, TaskBase*) -> Suspension* {
      return &reinterpret_cast<DoneAwaiter*>(reinterpret_cast<char*>(n) -
                                             offsetof(DoneAwaiter, node))
                  ->suspension;
    };
    task->add_done_node(&node);
    if (suspension.task) suspension.task->set_waiting(&suspension);
  }
  void await_resume() const noexcept {}
  ~DoneAwaiter() {
    if (node.linked) task->remove_done_node(&node);
  }
};

Task<void> wait_all_tasks() {
  LoopCore& core = require_core("wait_all_tasks");
  std::vector<TaskBase*> tasks;
  for (TaskBase* t = core.tasks_head; t; t = t->all_next) {
    if (t == core.current_task()) continue;
    t->add_ref();
    tasks.push_back(t);
  }
  struct Release {
    std::vector<TaskBase*>& tasks;
    ~Release() {
      for (TaskBase* t : tasks) t->release();
    }
  } release{tasks};
  // Cancelled only now that they are referenced here: a task that fails while it unwinds is
  // reported below (as Python's _cancel_all_tasks does), not as "never retrieved".
  for (TaskBase* t : tasks) t->cancel();
  for (TaskBase* t : tasks) co_await DoneAwaiter{t, {}, {}};
  for (TaskBase* t : tasks) {
    if (t->cancelled()) continue;
    if (std::exception_ptr e = t->exception()) {
      core.report("unhandled exception during asyncio::run() shutdown (" + t->describe() + ")", e);
    }
  }
}

void finish_run(EventLoop& loop) {
  // Python's asyncio.run: cancel the tasks main() left behind and wait for them to unwind.
  if (loop.is_closed()) return;
  if (loop.pending_tasks() != 0) {
    try {
      loop.run_until_complete(wait_all_tasks());  // cancels them, then waits
    } catch (...) {
      loop.core().report("unhandled exception during asyncio::run() shutdown",
                         std::current_exception());
    }
  }
  loop.close();
}

SigintGuard::SigintGuard(EventLoop& l, TaskBase& main, bool on)
    : loop(l), enabled(on), fired(std::make_shared<bool>(false)) {
  if (!enabled) return;
  // The first SIGINT cancels the main task; a second one, if it will not finish, kills the
  // program with the default action, as a second Ctrl-C does to Python.
  loop.add_signal_handler(SIGINT, [this, &main, fired = fired]() {
    if (*fired || main.done()) {
      loop.remove_signal_handler(SIGINT);
      std::signal(SIGINT, SIG_DFL);
      std::raise(SIGINT);
      return;
    }
    *fired = true;
    main.cancel("interrupted by SIGINT");
  });
}

SigintGuard::~SigintGuard() {
  if (enabled && !loop.is_closed()) loop.remove_signal_handler(SIGINT);
}

bool SigintGuard::interrupted() const {
  return *fired;
}

}  // namespace detail
}  // namespace concur::asyncio
