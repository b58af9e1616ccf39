// Child processes on libuv: spawning with pipes (uv_spawn), the exit (libuv reaps the child),
// signals, wait() and communicate().
#include "concur/asyncio/subprocess.hpp"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <coroutine>
#include <csignal>
#include <cstdint>
#include <stdexcept>

#include "asyncio/stream_internal.hpp"
#include "asyncio/uv_util.hpp"
#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/detail/wait.hpp"
#include "concur/asyncio/tasks.hpp"
#include "platform/process.hpp"

namespace concur::asyncio {

namespace detail {

struct ProcessState {
  uv_process_t proc{};
  LoopCore* core = nullptr;
  int pid = 0;
  std::optional<int> returncode;
  WaitList exit_waiters{"Process.wait"};  // ExitWait nodes
  // The Process's own references to the pipes (empty when not Stdio::PIPE).
  StreamWriter in;
  StreamReader out;
  StreamReader err;
  std::uint32_t refs = 1;
  bool spawned = false;          // uv_spawn was called (it initialises the handle)
  bool close_requested = false;  // uv_close called by us (the exit was seen, or spawning failed)
  bool closed = false;           // our close callback ran
  // No handle is left and the child runs: the state waits for the exit in the thread's list.
  bool orphan = false;
  ProcessState* orphan_prev = nullptr;
  ProcessState* orphan_next = nullptr;

  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&proc); }
  // EventLoop::close() closed the handle while the child ran: libuv no longer watches it.
  bool detached() { return !close_requested && uv_is_closing(handle()) != 0; }
};

namespace {

// A detached child (see ProcessState::detached) is nobody's to reap but ours: poll it.
void poll_detached(ProcessState* s) {
  if (s->returncode || !s->detached()) return;
  if (auto code = platform::try_reap(s->pid)) s->returncode = *code;
}

// The states whose last handle went while their child ran, per thread (a loop's thread). Their
// exit callback frees them; those whose loop closed first are freed by the next sweep (at the
// next create_subprocess_exec on the thread, or when the thread exits).
struct Orphans {
  ProcessState* head = nullptr;
  Orphans() = default;
  Orphans(const Orphans&) = delete;
  Orphans& operator=(const Orphans&) = delete;
  ~Orphans() { sweep(); }
  void link(ProcessState* s) {
    s->orphan = true;
    s->orphan_prev = nullptr;
    s->orphan_next = head;
    if (head) head->orphan_prev = s;
    head = s;
  }
  void unlink(ProcessState* s) {
    (s->orphan_prev ? s->orphan_prev->orphan_next : head) = s->orphan_next;
    if (s->orphan_next) s->orphan_next->orphan_prev = s->orphan_prev;
    s->orphan = false;
  }
  void sweep() {
    for (ProcessState* s = head; s;) {
      ProcessState* next = s->orphan_next;
      if (s->detached()) {
        poll_detached(s);
        unlink(s);
        delete s;
      }
      s = next;
    }
  }
};
thread_local Orphans t_orphans;

void free_state(ProcessState* s) {
  if (s->orphan) t_orphans.unlink(s);
  delete s;
}

void on_closed(uv_handle_t* h) {
  auto* s = static_cast<ProcessState*>(h->data);
  s->closed = true;
  if (s->refs == 0) free_state(s);
}

void on_exit(uv_process_t* h, std::int64_t exit_status, int term_signal) {
  auto* s = static_cast<ProcessState*>(h->data);
  s->returncode = term_signal != 0 ? -term_signal : static_cast<int>(exit_status);
  while (WaitNode* n = s->exit_waiters.head) {
    s->exit_waiters.remove(n);
    n->mark_woken();
    s->core->wake(&n->suspension);
  }
  s->close_requested = true;
  uv_close(s->handle(), &on_closed);  // on_closed frees the state if no handle is left
}

// A wait() suspended until the exit: a node of exit_waiters, inside the coroutine's frame.
struct ExitWait : WaitNode {
  ProcessState* s;
  explicit ExitWait(ProcessState* state) : s(state) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    TaskBase* me = s->core->current_task();
    if (!me) {
      throw RuntimeError(
          "asyncio::Process::wait(): must be awaited inside a task (a coroutine run by the loop)");
    }
    suspension.task = me;
    if (me->must_cancel()) return false;
    suspension.handle = h;
    suspension.cancel = &on_cancel;
    s->exit_waiters.push_back(this);
    me->set_waiting(&suspension);
    return true;
  }
  void await_resume() {
    if (suspension.task) suspension.task->throw_if_cancel_requested();
  }
  static void on_cancel(Suspension* su) {
    auto* n =
        reinterpret_cast<WaitNode*>(reinterpret_cast<char*>(su) - offsetof(WaitNode, suspension));
    if (n->linked()) n->list()->remove(n);
    su->task->set_must_cancel();
    su->task->loop_core()->wake(su);
  }
};

// wait() and communicate() need the loop that watches the child.
void require_watching_loop(ProcessState* s, const char* who) {
  if (s->detached()) {
    throw RuntimeError(std::string("asyncio::Process::") + who +
                       "(): the event loop that started process " + std::to_string(s->pid) +
                       " has closed; the child is detached (poll returncode(), or wait for it "
                       "before the loop closes)");
  }
  if (&require_core("asyncio::Process") != s->core) {
    throw RuntimeError(std::string("asyncio::Process::") + who +
                       "(): the process belongs to another event loop; await it from the loop "
                       "that created it");
  }
}

// The child's ends of the pipes: closed in this process once the child has them, or on failure.
struct ChildEnds {
  int fd[3] = {-1, -1, -1};
  ChildEnds() = default;
  ChildEnds(const ChildEnds&) = delete;
  ChildEnds& operator=(const ChildEnds&) = delete;
  ~ChildEnds() { close_all(); }
  void close_all() {
    for (int& f : fd) {
      if (f >= 0) ::close(f);
      f = -1;
    }
  }
};

const char* stdio_name(int i) {
  return i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr";
}

Process spawn(const std::string& program, const std::vector<std::string>& args,
              const SubprocessOptions& options) {
  const char* who = "asyncio::create_subprocess_exec";
  LoopCore& core = require_core(who);
  uv_loop_t* uv = current_uv_loop(who);
  if (options.stdin_mode == Stdio::STDOUT || options.stdout_mode == Stdio::STDOUT) {
    throw std::invalid_argument(
        "asyncio::create_subprocess_exec(): Stdio::STDOUT is for stderr only (it sends stderr "
        "where stdout goes)");
  }
  check_stream_limit(who, options.limit);
  t_orphans.sweep();
  if (options.stdin_mode == Stdio::PIPE) ignore_default_sigpipe();

  auto* s = new ProcessState;
  s->core = &core;
  s->proc.data = s;
  Process process(s);  // from here the handle owns it: a failure frees it and its pipes
  ChildEnds child;
  StreamState* pipes[3] = {nullptr, nullptr, nullptr};
  uv_stdio_container_t stdio[3];
  const Stdio modes[3] = {options.stdin_mode, options.stdout_mode, options.stderr_mode};
  for (int i = 0; i < 3; ++i) {
    switch (modes[i]) {
      case Stdio::INHERIT:
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
        break;
      case Stdio::DEVNULL:
        stdio[i].flags = UV_IGNORE;  // libuv opens /dev/null for fds 0-2
        break;
      case Stdio::STDOUT:
        stdio[i] = stdio[1];
        break;
      case Stdio::PIPE: {
        // Both ends close-on-exec; libuv dup2()s the child's end onto fd i in the child.
        uv_file fds[2];
        int rc = i == 0 ? uv_pipe(fds, 0, UV_NONBLOCK_PIPE) : uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
        if (rc < 0) throw_uv(rc, std::string(who) + ": a pipe for " + stdio_name(i));
        int ours = i == 0 ? fds[1] : fds[0];
        child.fd[i] = i == 0 ? fds[0] : fds[1];
        StreamState* p = new_pipe_stream(core, uv, options.limit);
        // One handle, of the side we use: the pipe closes when it goes.
        if (i == 0) {
          s->in = StreamWriter(p);
        } else {
          (i == 1 ? s->out : s->err) = StreamReader(p);
        }
        auto* pipe_handle = reinterpret_cast<uv_pipe_t*>(stream_handle(p));
        rc = uv_pipe_open(pipe_handle, ours);
        if (rc < 0) {
          ::close(ours);
          throw_uv(rc, std::string(who) + ": opening the pipe for " + stdio_name(i));
        }
        // An open pipe does not keep EventLoop::close() waiting (it closes it instead).
        uv_unref(reinterpret_cast<uv_handle_t*>(pipe_handle));
        pipes[i] = p;
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = child.fd[i];
        break;
      }
    }
  }

  std::vector<std::string> argv_strings;
  argv_strings.reserve(args.size() + 1);
  argv_strings.push_back(program);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  if (options.env) {
    for (const auto& [key, value] : *options.env) env_strings.push_back(key + "=" + value);
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
  }

  uv_process_options_t o{};
  o.exit_cb = &on_exit;
  o.file = program.c_str();
  o.args = argv.data();
  o.env = options.env ? envp.data() : nullptr;
  o.cwd = options.cwd ? options.cwd->c_str() : nullptr;
  o.flags = options.start_new_session ? UV_PROCESS_DETACHED : 0;
  o.stdio_count = 3;
  o.stdio = stdio;
  int rc = uv_spawn(uv, &s->proc, &o);
  s->spawned = true;
  s->proc.data = s;
  child.close_all();  // the child has its copies; EOF comes when it (and its children) close them
  if (rc < 0) {
    s->close_requested = true;  // uv_spawn initialised the handle: it must be closed
    uv_close(s->handle(), &on_closed);
    throw_uv(rc, std::string(who) + "(" + program + ")");
  }
  s->pid = s->proc.pid;
  // A running child does not keep EventLoop::close() waiting either (see the header: detached).
  uv_unref(s->handle());
  for (int i = 1; i < 3; ++i) {
    if (pipes[i]) begin_reading(pipes[i]);
  }
  return process;
}

Task<int> wait_exit(Process keep) {
  ProcessState* s = keep.state();
  poll_detached(s);
  while (!s->returncode) {
    require_watching_loop(s, "wait");
    ExitWait w(s);
    co_await w;
  }
  co_return *s->returncode;
}

// Writes input, waits for the pipe to take it, and closes stdin; a child that did not read it all
// (BrokenPipeError, ConnectionResetError) is no error here, as in Python.
Task<std::string> feed_stdin(StreamWriter w, std::string input) {
  try {
    if (!input.empty()) w.write(input);
    co_await w.drain();
  } catch (const BrokenPipeError&) {
  } catch (const ConnectionResetError&) {
  }
  w.close();
  co_return std::string();
}

// Everything up to EOF, read in chunks of the limit (so that the reader's back-pressure, which
// pauses the pipe beyond 2 x limit, never stalls it).
Task<std::string> read_to_eof(StreamReader r) {
  const auto chunk = static_cast<long>(std::max<std::size_t>(r.limit(), 64 * 1024));
  std::string out;
  for (;;) {
    std::string part = co_await r.read(chunk);
    if (part.empty()) break;
    out += part;
  }
  co_return out;
}

Task<CommunicateResult> communicate_with(Process keep, std::string input) {
  ProcessState* s = keep.state();
  if (!input.empty() && !s->in.valid()) {
    throw std::invalid_argument(
        "asyncio::Process::communicate(): input was given but stdin is not a pipe; create the "
        "process with stdin_mode = Stdio::PIPE");
  }
  require_watching_loop(s, "communicate");
  std::vector<Task<std::string>> parts;
  std::size_t out_at = 0, err_at = 0;
  if (s->in.valid()) parts.push_back(feed_stdin(s->in, std::move(input)));
  if (s->out.valid()) {
    out_at = parts.size();
    parts.push_back(read_to_eof(s->out));
  }
  if (s->err.valid()) {
    err_at = parts.size();
    parts.push_back(read_to_eof(s->err));
  }
  CommunicateResult result;
  if (!parts.empty()) {
    std::vector<std::string> outputs = co_await gather(std::move(parts));
    if (s->out.valid()) result.out = std::move(outputs[out_at]);
    if (s->err.valid()) result.err = std::move(outputs[err_at]);
  }
  result.returncode = co_await wait_exit(keep);
  co_return result;
}

}  // namespace

void add_ref(ProcessState* s) noexcept {
  ++s->refs;
}

void release(ProcessState* s) noexcept {
  if (--s->refs != 0) return;
  // The Process's references to the pipes go (handles the program holds keep them open).
  s->in = StreamWriter();
  s->out = StreamReader();
  s->err = StreamReader();
  if (s->closed) {
    delete s;
  } else if (s->close_requested) {
    // on_closed frees it
  } else if (!s->spawned) {
    delete s;  // spawning failed before uv_spawn: there is no handle
  } else if (s->detached()) {
    poll_detached(s);
    delete s;
  } else {
    t_orphans.link(s);  // the child runs: on_exit closes the handle, on_closed frees the state
  }
}

}  // namespace detail

using detail::ProcessState;

ProcessState* Process::require(const char* who) const {
  if (!s_) {
    throw InvalidStateError(std::string("asyncio::Process::") + who +
                            "(): empty handle (moved from or default-built)");
  }
  return s_;
}

int Process::pid() const {
  return require("pid")->pid;
}
StreamWriter Process::stdin_pipe() const {
  return require("stdin_pipe")->in;
}
StreamReader Process::stdout_pipe() const {
  return require("stdout_pipe")->out;
}
StreamReader Process::stderr_pipe() const {
  return require("stderr_pipe")->err;
}

std::optional<int> Process::returncode() const {
  ProcessState* s = require("returncode");
  detail::poll_detached(s);
  return s->returncode;
}

Task<int> Process::wait() const {
  require("wait");
  return detail::wait_exit(*this);
}

void Process::send_signal(int sig) {
  ProcessState* s = require("send_signal");
  detail::poll_detached(s);
  if (s->returncode) {
    throw OSError(ESRCH, "asyncio::Process::send_signal(): process " + std::to_string(s->pid) +
                             " has exited (returncode " + std::to_string(*s->returncode) +
                             "); no signal was sent");
  }
  int rc = uv_kill(s->pid, sig);
  if (rc < 0) {
    detail::throw_uv(rc, "asyncio::Process::send_signal(" + std::to_string(sig) + ") to process " +
                             std::to_string(s->pid));
  }
}

void Process::terminate() {
  send_signal(SIGTERM);
}
void Process::kill() {
  send_signal(SIGKILL);
}

Task<CommunicateResult> Process::communicate(std::string input) {
  require("communicate");
  return detail::communicate_with(*this, std::move(input));
}

Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                     SubprocessOptions options) {
  co_return detail::spawn(program, args, options);
}

}  // namespace concur::asyncio
