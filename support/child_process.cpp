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
#include <cstdlib>
#include <system_error>
#include <thread>

namespace concur::support {

using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kTailBytes = 1500;

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(const char* path, char* const* args, pid_t parent, int in, int out,
                             int err) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
  // Ignored signals stay ignored across exec, and the mask is inherited: give the defaults back.
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
  if (path) execv(path, args);
  const char msg[] = "cannot execute the program\n";
  [[maybe_unused]] const ssize_t ignored = write(2, msg, sizeof msg - 1);
  _exit(127);
}

void close_all(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace

std::optional<std::string> find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    if (access(program.c_str(), X_OK) == 0) return program;
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, Stdin in_mode, Stderr err_mode) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  // Resolved before the fork: the child may only make async-signal-safe calls.
  const std::optional<std::string> path = find_program(argv[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int out[2] = {-1, -1};
  int in[2] = {-1, -1};
  int err[2] = {-1, -1};
  bool ok = pipe2(out, O_CLOEXEC) == 0;
  if (ok && in_mode == Stdin::pipe) {
    ok = pipe2(in, O_CLOEXEC) == 0;
  } else if (ok) {
    ok = (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;
  }
  if (ok && err_mode == Stderr::pipe) {
    ok = pipe2(err, O_CLOEXEC) == 0;
  } else if (ok) {
    char err_path[] = "/tmp/concur-child-stderr-XXXXXX";
    err[1] = mkostemp(err_path, O_CLOEXEC);
    ok = err[1] >= 0;
    if (ok) unlink(err_path);
  }
  if (!ok) {
    const int e = errno;
    close_all({out[0], out[1], in[0], in[1], err[0], err[1]});
    throw std::system_error(e, std::generic_category(), "ChildProcess: pipe or temporary file");
  }
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0)
    exec_child(path ? path->c_str() : nullptr, args.data(), parent, in[0], out[1], err[1]);
  const int fork_errno = errno;
  close_all({out[1], in[0]});
  out_.fd = out[0];
  in_ = in[1];
  if (err_mode == Stderr::pipe) {
    close(err[1]);
    err_.fd = err[0];
  } else {
    err_file_ = err[1];  // the child writes at its end; we read it with pread
  }
  if (pid_ < 0) {
    close_fds();
    throw std::system_error(fork_errno, std::generic_category(), "ChildProcess: fork");
  }
  for (int fd : {out_.fd, err_.fd}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) stop();
  close_fds();
}

void ChildProcess::close_fds() {
  for (int* fd : {&out_.fd, &err_.fd, &in_, &err_file_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void ChildProcess::drain(Stream& s, int stream) {
  char buffer[16384];
  for (;;) {
    const ssize_t n = read(s.fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {  // end of file, or an error: nothing more will come
      close(s.fd);
      s.fd = -1;
      return;
    }
    s.buffer.append(buffer, static_cast<std::size_t>(n));
    if (stream == 2) {
      err_tail_.append(buffer, static_cast<std::size_t>(n));
      if (err_tail_.size() > kTailBytes) err_tail_.erase(0, err_tail_.size() - kTailBytes);
    }
  }
}

void ChildProcess::pump(std::span<ChildProcess* const> children,
                        std::chrono::milliseconds timeout) {
  std::vector<pollfd> fds;
  std::vector<std::pair<ChildProcess*, int>> owners;
  for (ChildProcess* c : children) {
    if (c->out_.fd >= 0) {
      fds.push_back({c->out_.fd, POLLIN, 0});
      owners.emplace_back(c, 1);
    }
    if (c->err_.fd >= 0) {
      fds.push_back({c->err_.fd, POLLIN, 0});
      owners.emplace_back(c, 2);
    }
  }
  if (fds.empty()) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(50)));
    return;
  }
  if (poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(0, timeout.count()))) <= 0) {
    return;
  }
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents == 0) continue;
    auto [child, stream] = owners[i];
    child->drain(stream == 1 ? child->out_ : child->err_, stream);
  }
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  ChildProcess* const self[] = {this};
  for (;;) {
    const std::size_t nl = out_.buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = out_.buffer.substr(0, nl);
      out_.buffer.erase(0, nl + 1);
      return line;
    }
    if (out_.fd < 0) return std::nullopt;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pump(self, left);
  }
}

std::vector<ChildProcess::Line> ChildProcess::read_lines(std::span<ChildProcess* const> children,
                                                         std::chrono::milliseconds timeout) {
  pump(children, timeout);
  std::vector<Line> lines;
  for (ChildProcess* c : children) {
    for (auto [s, stream] : {std::pair{&c->out_, 1}, std::pair{&c->err_, 2}}) {
      for (std::size_t nl; (nl = s->buffer.find('\n')) != std::string::npos;) {
        lines.push_back({c, stream, s->buffer.substr(0, nl)});
        s->buffer.erase(0, nl + 1);
      }
      if (s->fd < 0 && !s->buffer.empty()) {  // ended without a '\n'
        lines.push_back({c, stream, std::move(s->buffer)});
        s->buffer.clear();
      }
    }
  }
  return lines;
}

bool ChildProcess::send_line(const std::string& line) {
  const std::string text = line + "\n";
  return in_ >= 0 && write(in_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

std::optional<int> ChildProcess::exit_status() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = decode_status(status);
  if (r < 0) status_ = 255;  // not ours to wait for any more: nothing will change
  return status_;
}

std::optional<int> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!exit_status() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

int ChildProcess::stop(std::chrono::milliseconds grace, bool* killed) {
  if (killed) *killed = false;
  if (exit_status()) return *status_;
  kill(pid_, SIGTERM);
  if (wait_for(grace)) return *status_;
  kill(pid_, SIGKILL);
  if (killed) *killed = true;
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  status_ = r == pid_ ? decode_status(status) : 255;
  return *status_;
}

std::string ChildProcess::stderr_tail() const {
  if (err_file_ < 0) return err_tail_;
  struct stat st {};
  if (fstat(err_file_, &st) != 0) return {};
  const off_t from = std::max<off_t>(0, st.st_size - static_cast<off_t>(kTailBytes));
  std::string text(static_cast<std::size_t>(st.st_size - from), '\0');
  const ssize_t n = pread(err_file_, text.data(), text.size(), from);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return text;
}

}  // namespace concur::support
