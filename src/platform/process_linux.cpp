// Processes on Linux: waitpid, kill, pidfd_open, fork, posix_spawn and /proc.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "platform/process.hpp"

namespace concur::platform {

int exit_code_from_status(int wait_status) noexcept {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return -WTERMSIG(wait_status);
  return 255;
}

std::optional<int> try_reap(pid_t pid) noexcept {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid) return std::nullopt;
  return exit_code_from_status(status);
}

int reap(pid_t pid) noexcept {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 255;
  }
  return exit_code_from_status(status);
}

bool process_exists(pid_t pid) noexcept {
  return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

void send_signal(pid_t pid, int sig) noexcept {
  if (pid > 0) kill(pid, sig);
}

int open_exit_handle(pid_t pid) noexcept {
  // pidfd_open's descriptors are close-on-exec already (the kernel sets O_CLOEXEC on them).
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

pid_t fork_process() noexcept {
  return fork();
}

int spawn_this_program(char* const argv[], char* const envp[], pid_t& pid) noexcept {
  return posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp);
}

std::vector<std::string> this_program_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  for (std::size_t start = 0; start < all.size();) {
    const std::size_t end = all.find('\0', start);
    argv.push_back(all.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (argv.empty()) argv.emplace_back("concur-child");
  return argv;
}

std::size_t running_thread_count() {
  // A thread that was just joined can linger in /proc/self/task for a moment after pthread_join
  // returned (the kernel wakes the joiner before it reaps the task), in state Z or X.
  std::size_t n = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      char path[320];
      std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
      char state = 'R';
      if (FILE* f = std::fopen(path, "re")) {
        // "tid (comm) S ...": the state follows the last ')', as comm may hold one.
        char buf[512];
        const std::size_t len = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[len] = '\0';
        if (const char* close = std::strrchr(buf, ')'); close && close[1] == ' ') state = close[2];
      }
      if (state != 'Z' && state != 'X') ++n;
    }
    closedir(dir);
  }
  return n;
}

std::string this_program_path() {
  char exe[4096];
  const ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (length <= 0) return {};
  return std::string(exe, static_cast<std::size_t>(length));
}

std::optional<long> oom_kills_in_this_cgroup() {
  std::ifstream cgroup("/proc/self/cgroup");
  std::string file;
  for (std::string line; std::getline(cgroup, line);) {
    if (line.rfind("0::", 0) == 0 && file.empty()) {
      file = "/sys/fs/cgroup" + line.substr(3) + "/memory.events";
    } else if (const auto at = line.find(":memory:"); at != std::string::npos) {
      file = "/sys/fs/cgroup/memory" + line.substr(at + 8) + "/memory.oom_control";
    }
  }
  std::ifstream counters(file);
  std::string key;
  long value = 0;
  while (counters >> key >> value) {
    if (key == "oom_kill") return value;
  }
  return std::nullopt;
}

void on_every_fork(void (*before)(), void (*in_parent)(), void (*in_child)()) noexcept {
  pthread_atfork(before, in_parent, in_child);
}

}  // namespace concur::platform
