// bench/echo/child.cpp: see child.hpp.
#include "child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace concur::bench::echo {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
constexpr std::size_t kTailBytes = 4096;

extern "C" void on_interrupt(int) {
  g_interrupted = 1;
}

// Both ends close-on-exec: a child gets only the ends dup2'ed onto its 0, 1 and 2, so that one
// child never holds another's pipe open.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (pipe2(fds, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  }
  ~Pipe() {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  int take(int end) {
    const int fd = fds[end];
    fds[end] = -1;
    return fd;
  }
};

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(const char* path, char* const* args, pid_t parent, int in, int out,
                             int err) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the parent died before prctl
  // Ignored signals stay ignored across exec: give the program the defaults back.
  std::signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (in < 0) in = open("/dev/null", O_RDONLY);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
  execv(path, args);
  const char msg[] = "cannot execute the program\n";
  [[maybe_unused]] const ssize_t ignored = write(2, msg, sizeof msg - 1);
  _exit(127);
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

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() must return so that the flag is seen
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() {
  return g_interrupted != 0;
}

Child::Child(const std::vector<std::string>& argv, bool with_stdin) {
  if (argv.empty()) throw std::invalid_argument("Child: empty argv");
  const auto path = find_program(argv[0]);
  if (!path) throw std::runtime_error("cannot find the program " + argv[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Pipe out;
  Pipe err;
  std::optional<Pipe> in;
  if (with_stdin) in.emplace();
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + strerror(errno));
  if (pid_ == 0)
    exec_child(path->c_str(), args.data(), parent, in ? in->fds[0] : -1, out.fds[1], err.fds[1]);
  out_.fd = out.take(0);
  err_.fd = err.take(0);
  if (in) stdin_fd_ = in->take(1);
  for (int fd : {out_.fd, err_.fd}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

Child::~Child() {
  stop(std::chrono::seconds(2));
  close_fds();
}

void Child::close_fds() {
  for (int* fd : {&out_.fd, &err_.fd, &stdin_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

bool Child::send_line(const std::string& line) {
  if (stdin_fd_ < 0) return false;
  const std::string text = line + "\n";
  return write(stdin_fd_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

std::optional<int> Child::exit_status() {
  if (status_) return status_;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) status_ = decode_status(status);
  return status_;
}

std::optional<int> Child::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exit_status() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

int Child::stop(std::chrono::milliseconds grace, bool* killed) {
  if (killed) *killed = false;
  if (exit_status()) return *status_;
  kill(pid_, SIGTERM);
  if (wait_for(grace)) return *status_;
  kill(pid_, SIGKILL);
  if (killed) *killed = true;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = decode_status(status);
  return *status_;
}

void Child::drain(Stream& s, int stream, std::vector<Line>& lines) {
  char buffer[16384];
  for (;;) {
    const ssize_t n = read(s.fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  // end of file (or an error): what is left is a last line
      if (!s.partial.empty()) lines.push_back({this, stream, std::move(s.partial)});
      s.partial.clear();
      close(s.fd);
      s.fd = -1;
      return;
    }
    const std::string_view chunk(buffer, static_cast<std::size_t>(n));
    if (stream == 2) {
      err_tail_.append(chunk);
      if (err_tail_.size() > kTailBytes) err_tail_.erase(0, err_tail_.size() - kTailBytes);
    }
    s.partial.append(chunk);
    for (std::size_t nl; (nl = s.partial.find('\n')) != std::string::npos;) {
      lines.push_back({this, stream, s.partial.substr(0, nl)});
      s.partial.erase(0, nl + 1);
    }
  }
}

std::vector<Child::Line> Child::read_lines(std::span<Child* const> children,
                                           std::chrono::milliseconds timeout) {
  std::vector<pollfd> fds;
  std::vector<std::pair<Child*, int>> owners;
  for (Child* c : children) {
    if (c->out_.fd >= 0) {
      fds.push_back({c->out_.fd, POLLIN, 0});
      owners.emplace_back(c, 1);
    }
    if (c->err_.fd >= 0) {
      fds.push_back({c->err_.fd, POLLIN, 0});
      owners.emplace_back(c, 2);
    }
  }
  std::vector<Line> lines;
  if (fds.empty()) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(50)));
    return lines;
  }
  if (poll(fds.data(), fds.size(), static_cast<int>(timeout.count())) <= 0) return lines;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents == 0) continue;
    auto [child, stream] = owners[i];
    child->drain(stream == 1 ? child->out_ : child->err_, stream, lines);
  }
  return lines;
}

}  // namespace concur::bench::echo
