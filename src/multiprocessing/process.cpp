#include "concur/multiprocessing/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "concur/errors.hpp"
#include "multiprocessing/launcher.hpp"
#include "platform/process.hpp"

namespace concur::multiprocessing {

namespace {

std::atomic<StartMethod> g_default_method{StartMethod::forkserver};
std::atomic<std::size_t> g_running_children{0};
std::atomic<unsigned> g_process_counter{0};

}  // namespace

const char* to_string(StartMethod method) {
  switch (method) {
    case StartMethod::fork:
      return "fork";
    case StartMethod::spawn:
      return "spawn";
    case StartMethod::forkserver:
      return "forkserver";
  }
  return "?";
}

void set_start_method(StartMethod method) {
  g_default_method = method;
}
StartMethod get_start_method() {
  return g_default_method;
}
std::size_t active_children() {
  return g_running_children;
}

struct Process::State {
  ProcessOptions options;
  detail::ProcessTarget target;
  std::string name;
  StartMethod method = StartMethod::forkserver;
  std::optional<detail::ChildWatch> watch;
  int sentinel = -1;     // our own copy of the watch's descriptor: it closes it once reaped
  bool closed = false;   // close() was called
  bool counted = false;  // in g_running_children

  ~State() {
    if (sentinel >= 0) ::close(sentinel);
  }
  void check_not_closed(const char* call) const {
    if (closed) {
      throw std::invalid_argument(std::string("concur::multiprocessing::Process::") + call +
                                  "(): process object is closed; call it before close()");
    }
  }

  void reaped() {
    if (counted) {
      --g_running_children;
      counted = false;
    }
  }
};

Process::Process(ProcessOptions options, detail::ProcessTarget target)
    : state_(std::make_unique<State>()) {
  state_->name =
      options.name.empty() ? "Process-" + std::to_string(++g_process_counter) : options.name;
  state_->method = options.start_method.value_or(get_start_method());
  state_->options = std::move(options);
  state_->target = std::move(target);
}

Process::~Process() {
  if (!state_ || !state_->watch) return;
  try {
    if (state_->options.daemon) terminate();
    join();
  } catch (...) {
  }
}

Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;

void Process::start() {
  state_->check_not_closed("start");
  if (state_->watch) {
    throw AssertionError(
        "concur::multiprocessing::Process::start(): a process can be started "
        "once; make a new Process to run it again");
  }
  State& s = *state_;
  if (s.method == StartMethod::fork) {
    auto body = s.target.local;
    const std::string name = s.name;
    auto launched = detail::launch_fork(
        [body, name](int) {
          detail::lineage().own_name = name;
          try {
            body();
            return 0;
          } catch (const std::exception& e) {
            std::fprintf(stderr, "Process %s:\n%s: %s\n", name.c_str(),
                         detail::type_name(typeid(e)).c_str(), e.what());
          } catch (...) {
            std::fprintf(stderr, "Process %s: an exception not derived from std::exception\n",
                         name.c_str());
          }
          return 1;
        },
        s.options.allow_fork_with_threads, false);
    s.watch = std::move(launched.watch);
  } else {
    if (!s.target.encode) {
      throw std::invalid_argument(
          std::string("concur::multiprocessing::Process::start(): with the ") +
          to_string(s.method) +
          " start method the child can run only a registered function (CONCUR_REGISTER(fn)); "
          "pass one, or use StartMethod::fork to run any callable");
    }
    detail::FdOutbox outbox;  // descriptors of connections, queues, locks among the arguments
    detail::Bootstrap bootstrap;
    bootstrap.mode = detail::Bootstrap::kRunCall;
    bootstrap.process_name = s.name;
    bootstrap.call = s.target.encode();
    auto launched = detail::launch(s.method, bootstrap, outbox.fds(), false);
    s.watch = std::move(launched.watch);
  }
  if (s.watch->fd() >= 0) s.sentinel = fcntl(s.watch->fd(), F_DUPFD_CLOEXEC, 3);
  s.counted = true;
  ++g_running_children;
  // The child has its copy of the arguments now; dropping ours closes, in this process, the
  // descriptors of what was handed over (a Connection end, say), as Python's callers do by hand.
  s.target = {};
}

bool Process::join_until(const concur::detail::Deadline& deadline) {
  state_->check_not_closed("join");
  if (!state_->watch) {
    throw AssertionError(
        "concur::multiprocessing::Process::join(): the process was not "
        "started; call start() first");
  }
  const bool exited = state_->watch->wait(deadline);
  if (exited) state_->reaped();
  return exited;
}

void Process::join() {
  join_until(std::nullopt);
}

bool Process::is_alive() {
  state_->check_not_closed("is_alive");
  if (!state_->watch) return false;
  return !join_until(concur::detail::Clock::now());
}

std::optional<int> Process::exitcode() {
  state_->check_not_closed("exitcode");
  if (!state_->watch) return std::nullopt;
  join_until(concur::detail::Clock::now());
  return state_->watch->exitcode();
}

void Process::terminate() {
  state_->check_not_closed("terminate");
  if (state_->watch) state_->watch->signal(SIGTERM);
}

void Process::interrupt() {
  state_->check_not_closed("interrupt");
  if (state_->watch) state_->watch->signal(SIGINT);
}

void Process::kill() {
  state_->check_not_closed("kill");
  if (state_->watch) state_->watch->signal(SIGKILL);
}

int Process::sentinel() const {
  state_->check_not_closed("sentinel");
  if (!state_->watch) {
    throw std::invalid_argument(
        "concur::multiprocessing::Process::sentinel(): process not started; call start() first");
  }
  return state_->sentinel;
}

void Process::close() {
  State& s = *state_;
  if (s.closed) return;
  if (s.watch && !s.watch->exited()) {
    throw std::invalid_argument(
        "concur::multiprocessing::Process::close(): cannot close a process while it is still "
        "running; call join() or terminate() first");
  }
  if (s.watch) s.reaped();
  s.watch.reset();
  if (s.sentinel >= 0) ::close(s.sentinel);
  s.sentinel = -1;
  s.target = {};
  s.closed = true;
}

pid_t Process::pid() const {
  state_->check_not_closed("pid");
  return state_->watch ? state_->watch->pid() : 0;
}
const std::string& Process::name() const {
  return state_->name;
}
bool Process::daemon() const {
  return state_->options.daemon;
}
StartMethod Process::start_method() const {
  return state_->method;
}

std::optional<ParentProcess> parent_process() {
  const detail::Lineage& l = detail::lineage();
  if (l.parent_pid <= 0) return std::nullopt;
  return ParentProcess(l.parent_pid, l.parent_name, l.parent_fd);
}

bool ParentProcess::is_alive() const {
  return !join_until(concur::detail::Clock::now());
}

bool ParentProcess::join_until(const concur::detail::Deadline& deadline) const {
  if (sentinel_ >= 0) return detail::wait_readable(sentinel_, deadline);
  // No pidfd: poll for the pid's end (an old kernel; a reused pid would look alive).
  for (;;) {
    if (!platform::process_exists(pid_)) return true;
    if (deadline && concur::detail::Clock::now() >= *deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace concur::multiprocessing
