// Signals on Linux: sigaction, sigprocmask, and a self-pipe for SIGCHLD.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "platform/signals.hpp"

namespace concur::platform {

namespace {

int g_child_exit_pipe[2] = {-1, -1};

void on_sigchld(int) {
  const int saved = errno;
  const char byte = 1;
  [[maybe_unused]] const ssize_t n = write(g_child_exit_pipe[1], &byte, 1);
  errno = saved;
}

sigset_t interrupt_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void ignore_sigpipe_unless_handled() noexcept {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL) {
    std::signal(SIGPIPE, SIG_IGN);
  }
}

void block_interrupts() noexcept {
  const sigset_t set = interrupt_set();
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

void unblock_interrupts() noexcept {
  const sigset_t set = interrupt_set();
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

int watch_child_exits() noexcept {
  if (pipe2(g_child_exit_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  struct sigaction sa {};
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, nullptr);
  return g_child_exit_pipe[0];
}

void reap_ended_children(const std::function<void(pid_t, int)>& on_exit) {
  char drain[64];
  while (read(g_child_exit_pipe[0], drain, sizeof drain) > 0) {
  }
  int status = 0;
  pid_t pid = 0;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) on_exit(pid, status);
}

void reset_signals_in_forked_child() noexcept {
  close(g_child_exit_pipe[0]);
  close(g_child_exit_pipe[1]);
  g_child_exit_pipe[0] = g_child_exit_pipe[1] = -1;
  std::signal(SIGCHLD, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
  unblock_interrupts();
}

}  // namespace concur::platform
