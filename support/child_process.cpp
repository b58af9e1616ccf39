// The helper process of support/child_process.hpp.
#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <thread>

namespace concur::support {

using Clock = std::chrono::steady_clock;

ChildProcess::ChildProcess(const std::vector<std::string>& argv, Stdin in_mode) {
  const bool with_stdin = in_mode == Stdin::pipe;
  int out[2] = {-1, -1};
  int in[2] = {-1, -1};
  char err_path[] = "/tmp/concur-child-stderr-XXXXXX";
  err_ = mkostemp(err_path, O_CLOEXEC);
  if (err_ < 0 || pipe2(out, O_CLOEXEC) != 0 || (with_stdin && pipe2(in, O_CLOEXEC) != 0)) {
    const int e = errno;
    for (int fd : {out[0], out[1], in[0], in[1], err_}) {
      if (fd >= 0) close(fd);
    }
    if (err_ >= 0) unlink(err_path);
    err_ = -1;
    throw std::system_error(e, std::generic_category(), "ChildProcess: pipe or temporary file");
  }
  unlink(err_path);
  const int null_fd = with_stdin ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Only async-signal-safe calls from here to exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(with_stdin ? in[0] : null_fd, 0);
    dup2(out[1], 1);
    dup2(err_, 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  const int fork_errno = errno;
  if (null_fd >= 0) close(null_fd);
  close(out[1]);
  out_ = out[0];
  if (with_stdin) {
    close(in[0]);
    in_ = in[1];
  }
  if (pid_ < 0) {
    close_fds();
    throw std::system_error(fork_errno, std::generic_category(), "ChildProcess: fork");
  }
}

ChildProcess::~ChildProcess() {
  stop();
  close_fds();
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const std::size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (out_ < 0) return std::nullopt;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{out_, POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(std::max<long>(0, left)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t got = read(out_, buf, sizeof buf);
    if (got <= 0) {
      close(out_);
      out_ = -1;
      continue;
    }
    buffer_.append(buf, static_cast<std::size_t>(got));
  }
}

bool ChildProcess::send_line(const std::string& line) {
  const std::string text = line + "\n";
  return in_ >= 0 && write(in_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

bool ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (reaped_ || pid_ <= 0) return true;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      reaped_ = true;
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void ChildProcess::stop(std::chrono::milliseconds grace) {
  if (reaped_ || pid_ <= 0) return;
  kill(pid_, SIGTERM);
  if (!wait_exit(grace)) {
    kill(pid_, SIGKILL);
    wait_exit(std::chrono::seconds(30));
  }
}

std::string ChildProcess::stderr_tail() const {
  struct stat st {};
  if (err_ < 0 || fstat(err_, &st) != 0) return {};
  const off_t from = std::max<off_t>(0, st.st_size - 1500);
  std::string text(static_cast<std::size_t>(st.st_size - from), '\0');
  const ssize_t n = pread(err_, text.data(), text.size(), from);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return text;
}

void ChildProcess::close_fds() {
  for (int* fd : {&out_, &in_, &err_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

}  // namespace concur::support
