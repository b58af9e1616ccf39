// /proc readers and a forked child that reports back (procfs.hpp).
#include "procfs.hpp"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace concur::lab::procfs {
namespace {

std::string proc_dir(pid_t pid) {
  return pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid);
}

long field_in(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  const std::string prefix = key + ":";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return std::strtol(line.c_str() + prefix.size(), nullptr, 10);
  }
  return -1;
}

}  // namespace

long status_field(pid_t pid, const std::string& key) {
  return field_in(proc_dir(pid) + "/status", key);
}

std::optional<TaskSched> task_sched(pid_t pid, pid_t tid) {
  const std::string dir = proc_dir(pid) + "/task/" + std::to_string(tid);
  TaskSched t;
  t.tid = tid;
  t.voluntary_switches = field_in(dir + "/status", "voluntary_ctxt_switches");
  t.involuntary_switches = field_in(dir + "/status", "nonvoluntary_ctxt_switches");
  if (t.voluntary_switches < 0) return std::nullopt;
  std::ifstream in(dir + "/schedstat");
  double run_ns = 0, wait_ns = 0;
  if (in >> run_ns >> wait_ns >> t.timeslices) {
    t.on_cpu_s = run_ns / 1e9;
    t.run_queue_wait_s = wait_ns / 1e9;
  }
  return t;
}

std::vector<TaskSched> all_tasks(pid_t pid) {
  std::vector<TaskSched> tasks;
  const std::string dir = proc_dir(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return tasks;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (auto t = task_sched(pid, static_cast<pid_t>(std::atoi(e->d_name)))) tasks.push_back(*t);
  }
  closedir(d);
  return tasks;
}

bool schedstat_available() {
  std::ifstream in("/proc/self/schedstat");
  double run_ns = 0;
  return static_cast<bool>(in >> run_ns);
}

ChildResult run_in_child(const std::function<std::string()>& body,
                         std::chrono::milliseconds timeout) {
  ChildResult result;
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("procfs::run_in_child: pipe() failed");
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error("procfs::run_in_child: fork() failed");
  }
  if (pid == 0) {
    close(fds[0]);
    const std::string out = body();
    for (std::size_t done = 0; done < out.size();) {
      const ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  bool eof = false;
  const auto deadline = t0 + timeout;
  while (!eof) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) {
      eof = true;
    } else {
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  close(fds[0]);
  if (!eof) {
    kill(pid, SIGKILL);
    result.timed_out = true;
  }
  while (waitpid(pid, &result.exit_status, 0) < 0 && errno == EINTR) {
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!result.timed_out && WIFEXITED(result.exit_status) && WEXITSTATUS(result.exit_status) == 0) {
    result.output = std::move(out);
  }
  return result;
}

}  // namespace concur::lab::procfs
