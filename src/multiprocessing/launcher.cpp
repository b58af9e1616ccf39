#include "multiprocessing/launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>

#include "concur/base/mutex.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/main_guard.hpp"
#include "multiprocessing/root.hpp"
#include "platform/descriptors.hpp"
#include "platform/process.hpp"
#include "platform/signals.hpp"

extern char** environ;

namespace concur::multiprocessing::detail {
namespace {

constexpr const char* kBootstrapVariable = "CONCUR_MP_BOOTSTRAP";
constexpr const char* kForkserverVariable = "CONCUR_MP_FORKSERVER";

std::atomic<bool> g_guard_ran{false};
std::atomic<bool> g_is_child{false};
Lineage g_lineage;       // written only while this process is single-threaded (at its start)
base::Mutex g_spawn_mu;  // one spawn at a time: the inherited descriptor must reach one child only

[[noreturn]] void fail(const char* call) {
  throw OSError(errno, std::string("concur::multiprocessing: starting a process failed (") + call +
                           "); out of descriptors, memory or process slots? Free some and retry");
}

// Starts a fresh run of this program with `variable`=<fd>, `fd` inherited by it alone.
pid_t exec_self(const char* variable, int fd) {
  refuse_if_guard_missing();
  base::MutexLock lock(g_spawn_mu);
  const int inherited = fcntl(fd, F_DUPFD, 3);  // no close-on-exec: for the child only
  if (inherited < 0) fail("dup");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "CONCUR_MP_", 10) != 0) {
      env_strings.emplace_back(*e);
    }
  }
  env_strings.push_back(std::string(variable) + "=" + std::to_string(inherited));
  env_strings.push_back(root_environment_entry());
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = platform::this_program_arguments();
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = platform::spawn_this_program(argv.data(), envp.data(), pid);
  close(inherited);
  if (rc != 0) {
    errno = rc;
    fail("posix_spawn of this program");
  }
  return pid;
}

std::pair<int, int> socket_pair() {
  int sv[2];
  if (!platform::stream_socket_pair(sv)) fail("socketpair");
  return {sv[0], sv[1]};
}

void send_bootstrap(int channel, const Bootstrap& bootstrap, const std::vector<int>& fds) {
  std::string frame;
  append_frame(frame, kBootstrap, 0, serialize(bootstrap), static_cast<std::uint16_t>(fds.size()));
  send_all(channel, frame, fds, std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// The forkserver: a single-threaded run of this program that forks children on request, so that
// they start fast and never inherit another thread's locks.

class ForkServer {
 public:
  // Returns the new child's pid and the read end of a pipe that gets its wait status. A server
  // that has died since the last call (killed, say) is replaced first, transparently, as is one
  // that dies before it has taken this request; one that dies while forking fails this call only.
  std::pair<pid_t, int> fork_child(int child_channel) {
    base::MutexLock lock(mu_);
    if (control_ >= 0 && !alive()) restart_next_time();
    for (int attempt = 0;; ++attempt) {
      start_if_needed();
      int status[2];
      if (!platform::pipe_pair(status)) fail("pipe");
      std::string request;
      append_frame(request, kControl, 0, "fork", 2);
      try {
        send_all(control_, request, {child_channel, status[1]}, std::nullopt);
      } catch (const EOFError&) {
        // Gone before it read the request: nothing was forked, so a new server can take it.
        close(status[0]);
        close(status[1]);
        restart_next_time();
        if (attempt == 0) continue;
        throw RuntimeError(
            "concur::multiprocessing: Process::start(): the forkserver process exited as soon as "
            "it started, twice; see its stderr, or use StartMethod::spawn");
      } catch (...) {
        close(status[0]);
        close(status[1]);
        throw;
      }
      close(status[1]);
      return {read_pid_reply(status[0]), status[0]};
    }
  }

 private:
  pid_t read_pid_reply(int status_fd) CONCUR_REQUIRES(mu_) {
    try {
      auto reply = receive_frame(control_, *decoder_, std::nullopt);
      if (!reply || reply->payload.size() != sizeof(pid_t)) {
        throw RuntimeError(
            "concur::multiprocessing: Process::start(): the forkserver process died while "
            "starting this child (was it killed?); a new forkserver starts at the next start(), "
            "so start a new Process");
      }
      pid_t pid = 0;
      std::memcpy(&pid, reply->payload.data(), sizeof pid);
      if (pid <= 0) {
        throw RuntimeError(
            "concur::multiprocessing: Process::start(): the forkserver could not fork (out of "
            "memory or process slots?); free some and start a new Process");
      }
      return pid;
    } catch (...) {
      close(status_fd);
      restart_next_time();
      throw;
    }
  }

  // Between requests the server never writes, so its end being readable means end of file: it
  // has exited. (Polling, not waitpid, since something else in the program may reap it.)
  bool alive() const CONCUR_REQUIRES(mu_) {
    pollfd pfd{control_, POLLIN, 0};
    return poll(&pfd, 1, 0) == 0;
  }

  void start_if_needed() CONCUR_REQUIRES(mu_) {
    if (control_ >= 0) return;
    auto [ours, theirs] = socket_pair();
    try {
      server_pid_ = exec_self(kForkserverVariable, theirs);
    } catch (...) {  // could not start it (found by tests/faults/: posix_spawn failing)
      close(ours);
      close(theirs);
      throw;
    }
    close(theirs);
    control_ = ours;
  }
  void restart_next_time() CONCUR_REQUIRES(mu_) {
    if (control_ >= 0) close(control_);
    control_ = -1;
    decoder_ = std::make_unique<FrameDecoder>();  // nothing half-read from the old server stays
    if (server_pid_ > 0) {
      platform::send_signal(server_pid_, SIGKILL);
      platform::reap(server_pid_);
      server_pid_ = 0;
    }
  }

  base::Mutex mu_;  // one request at a time
  int control_ CONCUR_GUARDED_BY(mu_) = -1;
  pid_t server_pid_ CONCUR_GUARDED_BY(mu_) = 0;
  std::unique_ptr<FrameDecoder> decoder_ CONCUR_GUARDED_BY(mu_) = std::make_unique<FrameDecoder>();
};

ForkServer& forkserver() {
  static ForkServer* server = new ForkServer();  // lives until exit; its process exits with us
  return *server;
}

[[noreturn]] void run_forkserver(int control) {
  g_is_child = true;
  // A Ctrl-C meant for the program must not kill the server mid-fork (Process::interrupt() of a
  // child still reaches it: see block_interrupts()).
  platform::block_interrupts();
  const int child_exits = platform::watch_child_exits();
  if (child_exits < 0) std::_Exit(1);
  FrameDecoder decoder;
  std::vector<std::pair<pid_t, int>> children;  // pid, status fd
  for (;;) {
    pollfd fds[2] = {{control, POLLIN, 0}, {child_exits, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) std::_Exit(1);
    if (fds[1].revents & POLLIN) {
      platform::reap_ended_children([&](pid_t pid, int status) {
        // The wait status goes to the parent's ChildWatch, which holds the other end.
        for (auto it = children.begin(); it != children.end(); ++it) {
          if (it->first != pid) continue;
          while (write(it->second, &status, sizeof status) < 0 && errno == EINTR) {
          }
          close(it->second);
          children.erase(it);
          break;
        }
      });
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
    if (!decoder.read_available(control)) std::_Exit(0);  // the program ended
    while (auto request = decoder.next()) {
      if (request->fds.size() != 2) std::_Exit(1);
      const int channel = request->fds[0];
      const int status_fd = request->fds[1];
      const pid_t pid = platform::fork_process();
      if (pid == 0) {
        close(control);
        platform::reset_signals_in_forked_child();
        for (auto& [other, fd] : children) close(fd);
        close(status_fd);
        run_child(channel, false);
      }
      close(channel);
      if (pid > 0) {
        children.emplace_back(pid, status_fd);
      } else {
        close(status_fd);
      }
      std::string reply;
      append_frame(reply, kControl, 0,
                   std::string_view(reinterpret_cast<const char*>(&pid), sizeof pid));
      send_all(control, reply, {}, std::nullopt);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ChildWatch

ChildWatch ChildWatch::direct(pid_t pid) {
  ChildWatch w;
  w.pid_ = pid;
  w.fd_ = platform::open_exit_handle(pid);
  w.direct_ = true;
  return w;
}

ChildWatch ChildWatch::relayed(pid_t pid, int status_fd) {
  ChildWatch w;
  w.pid_ = pid;
  w.fd_ = status_fd;
  w.direct_ = false;
  return w;
}

ChildWatch::ChildWatch(ChildWatch&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)),
      fd_(std::exchange(other.fd_, -1)),
      direct_(other.direct_),
      exitcode_(other.exitcode_) {}

ChildWatch& ChildWatch::operator=(ChildWatch&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    pid_ = std::exchange(other.pid_, 0);
    fd_ = std::exchange(other.fd_, -1);
    direct_ = other.direct_;
    exitcode_ = other.exitcode_;
  }
  return *this;
}

ChildWatch::~ChildWatch() {
  if (fd_ >= 0) close(fd_);
}

bool ChildWatch::wait(const Deadline& deadline) {
  if (exitcode_) return true;
  if (pid_ <= 0) return false;
  if (direct_) {
    if (fd_ >= 0) {
      if (!wait_readable(fd_, deadline)) return false;
    } else {
      // No exit handle (an old kernel): poll.
      for (;;) {
        if (auto code = platform::try_reap(pid_)) {
          exitcode_ = *code;
          return true;
        }
        if (deadline && Clock::now() >= *deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    exitcode_ = platform::reap(pid_);
  } else {
    if (!wait_readable(fd_, deadline)) return false;
    // The forkserver writes the status in one write; still, a read may be interrupted or (in
    // principle) short: found by tests/faults/. End of file before it: the forkserver died.
    int status = 0;
    std::size_t got = 0;
    while (got < sizeof status) {
      const ssize_t n = read(fd_, reinterpret_cast<char*>(&status) + got, sizeof status - got);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
    exitcode_ = got == sizeof status ? platform::exit_code_from_status(status)
                                     : 255;  // 255: the forkserver died
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return true;
}

void ChildWatch::signal(int sig) const {
  if (!exitcode_) platform::send_signal(pid_, sig);
}

// ---------------------------------------------------------------------------------------------
// Launching

std::size_t thread_count() {
  // A joined thread can still be on its way out for a few microseconds: look again briefly
  // before calling it a second thread.
  std::size_t n = platform::running_thread_count();
  for (int i = 0; n > 1 && i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    n = platform::running_thread_count();
  }
  return n;
}

Lineage& lineage() {
  return g_lineage;
}

void became_child(pid_t parent_pid, std::string parent_name, std::string own_name) {
  Lineage& l = g_lineage;
  if (l.parent_fd >= 0) ::close(l.parent_fd);  // a forked copy of our parent's own
  l.parent_pid = parent_pid;
  l.parent_name = std::move(parent_name);
  l.own_name = std::move(own_name);
  l.parent_fd = platform::open_exit_handle(parent_pid);
}

void refuse_if_guard_missing() {
  if (g_guard_ran.load()) return;
  if (std::getenv(kBootstrapVariable) || std::getenv(kForkserverVariable)) {
    std::fputs(
        "concur: this process was started by concur::multiprocessing (spawn or forkserver), but "
        "its main() tried to start another process before calling "
        "concur::multiprocessing::main_guard(argc, argv). Add that call as the first line of "
        "main(): it is C++'s `if __name__ == '__main__':`, and without it every child would "
        "start children of its own.\n",
        stderr);
    std::_Exit(kMainGuardMissingExitCode);
  }
}

Launched launch(StartMethod method, Bootstrap& bootstrap, const std::vector<int>& fds,
                bool keep_channel) {
  refuse_if_guard_missing();
  bootstrap.start_method = static_cast<std::uint8_t>(method);
  bootstrap.parent_pid = getpid();
  bootstrap.parent_name = lineage().own_name;
  auto [ours, theirs] = socket_pair();
  Launched launched;
  try {
    if (method == StartMethod::spawn) {
      const pid_t pid = exec_self(kBootstrapVariable, theirs);
      launched.watch = ChildWatch::direct(pid);
    } else {
      auto [pid, status_fd] = forkserver().fork_child(theirs);
      launched.watch = ChildWatch::relayed(pid, status_fd);
    }
    close(theirs);
    theirs = -1;
    try {
      send_bootstrap(ours, bootstrap, fds);
    } catch (const EOFError&) {
      // The child exited before it read its bootstrap (one whose main() lacks main_guard()
      // refuses at its own start(), exit code 87). That is the child's failure, not start()'s:
      // its exit code, from join(), says why, as Python's Process.start() would leave it.
    }
  } catch (...) {
    if (theirs >= 0) close(theirs);
    close(ours);
    throw;
  }
  if (keep_channel) {
    launched.channel = ours;
  } else {
    close(ours);
  }
  return launched;
}

Launched launch_fork(const std::function<int(int)>& body, bool allow_threads, bool keep_channel) {
  refuse_if_guard_missing();
  if (!allow_threads) {
    const std::size_t threads = thread_count();
    if (threads > 1) {
      throw RuntimeError(
          "concur::multiprocessing: fork() with " + std::to_string(threads) +
          " threads running can deadlock the child (a lock another thread holds stays locked "
          "forever there; Python 3.12 warns about this); use StartMethod::forkserver or spawn, "
          "or set allow_fork_with_threads if you know no thread holds a lock");
    }
  }
  int ours = -1;
  int theirs = -1;
  if (keep_channel) std::tie(ours, theirs) = socket_pair();
  program_root_pid();    // known before the fork, so the child has it in memory
  std::fflush(nullptr);  // or the child would print the parent's buffered output again
  const pid_t parent = getpid();
  const pid_t pid = platform::fork_process();
  if (pid < 0) {
    if (ours >= 0) close(ours);
    if (theirs >= 0) close(theirs);
    fail("fork");
  }
  if (pid == 0) {
    g_is_child = true;
    set_start_method(StartMethod::fork);  // as Python's child: the method that started it
    became_child(parent, lineage().own_name, lineage().own_name);  // the body names it
    if (ours >= 0) close(ours);
    int code = 1;
    try {
      code = body(theirs);
    } catch (...) {
    }
    std::fflush(nullptr);
    std::_Exit(code);  // not exit(): the parent's atexit handlers and static objects are its own
  }
  if (theirs >= 0) close(theirs);
  return Launched{ChildWatch::direct(pid), ours};
}

int run_call(const std::string& process_name, Call&& call) {
  const Registration* reg = find_registration(call.function);
  if (!reg) {
    std::fprintf(stderr,
                 "Process %s: the function '%s' is not registered in this program; nothing was "
                 "run (register it with CONCUR_REGISTER)\n",
                 process_name.c_str(), call.function.c_str());
    return 1;
  }
  if (reg->signature != call.signature) {
    std::fprintf(stderr,
                 "Process %s: '%s' has signature %s here but %s in the parent (two builds of "
                 "the program?); nothing was run\n",
                 process_name.c_str(), call.function.c_str(), reg->signature.c_str(),
                 call.signature.c_str());
    return 1;
  }
  try {
    reg->invoke(call.args, &call.args);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Process %s:\n%s: %s\n", process_name.c_str(),
                 type_name(typeid(e)).c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr, "Process %s: an exception not derived from std::exception\n",
                 process_name.c_str());
  }
  return 1;
}

void run_child(int channel, bool forked) {
  g_is_child = true;
  int code = 1;
  try {
    FrameDecoder decoder;
    auto frame = receive_frame(channel, decoder, std::nullopt);
    if (!frame || frame->kind != kBootstrap) {
      std::fputs("concur: a child process got no instructions from its parent\n", stderr);
    } else {
      FdInbox inbox(std::move(frame->fds));  // descriptors inside the call's arguments
      Bootstrap bootstrap = deserialize<Bootstrap>(frame->payload);
      set_start_method(static_cast<StartMethod>(bootstrap.start_method));
      became_child(bootstrap.parent_pid, bootstrap.parent_name, bootstrap.process_name);
      frame.reset();  // a big argument is now in `bootstrap` only
      decoder.release_consumed();
      code = bootstrap.mode == Bootstrap::kPoolWorker
                 ? run_pool_worker(channel, decoder, bootstrap)
                 : run_call(bootstrap.process_name, std::move(bootstrap.call));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur: a child process failed before its task: %s\n", e.what());
  }
  std::fflush(nullptr);
  if (forked) std::_Exit(code);
  std::exit(code);  // a fresh run of the program: its own atexit handlers and statics may run
}

}  // namespace concur::multiprocessing::detail

namespace concur::multiprocessing {

void main_guard(int, char**) {
  detail::g_guard_ran = true;
  if (const char* server = std::getenv(detail::kForkserverVariable)) {
    const int fd = std::atoi(server);
    unsetenv(detail::kForkserverVariable);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    detail::run_forkserver(fd);
  }
  if (const char* bootstrap = std::getenv(detail::kBootstrapVariable)) {
    const int fd = std::atoi(bootstrap);
    unsetenv(detail::kBootstrapVariable);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    detail::run_child(fd, false);
  }
}

bool is_child_process() {
  return detail::g_is_child.load();
}

}  // namespace concur::multiprocessing
