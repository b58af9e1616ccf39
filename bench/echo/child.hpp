// bench/echo/child.hpp: the child processes of echo_race (servers and clients), read line by
// line. A Child never outlives its owner: going out of scope it gets SIGTERM, then SIGKILL after
// a grace period, and is reaped; and it is started with PR_SET_PDEATHSIG, so it dies with
// echo_race even if echo_race itself is killed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace concur::bench::echo {

// The path to run for `program`: itself if it contains '/', else the first match on PATH; nullopt
// if that is not an executable file.
std::optional<std::string> find_program(const std::string& program);

// SIGINT and SIGTERM only set a flag, which interrupted() reads, so that echo_race stops its
// children before it exits. Also ignores SIGPIPE (a child that stopped reading its stdin).
void install_interrupt_handlers();
bool interrupted();

class Child {
 public:
  // Starts argv. Its stdin is a pipe (send_line) if `with_stdin`, else /dev/null; its stdout and
  // stderr are read with read_lines. Throws std::runtime_error if argv[0] cannot be found or the
  // process cannot be created.
  Child(const std::vector<std::string>& argv, bool with_stdin);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Both stdout and stderr reached end of file (normally: it exited).
  bool outputs_closed() const { return out_.fd < 0 && err_.fd < 0; }
  // The last few KiB of its stderr.
  const std::string& stderr_tail() const { return err_tail_; }
  // Writes one line (a '\n' is added) to its stdin; false if it no longer reads it.
  bool send_line(const std::string& line);
  // Its exit code, or -signal if a signal ended it; nullopt while it runs. Never blocks.
  std::optional<int> exit_status();
  // Waits up to `timeout` for it to exit by itself; its status, or nullopt if it is still running.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL if it is still running after `grace`; reaps it. Returns its status;
  // sets *killed when SIGKILL was needed.
  int stop(std::chrono::milliseconds grace, bool* killed = nullptr);

  struct Line {
    Child* child;
    int stream;  // 1 stdout, 2 stderr
    std::string text;
  };
  // Waits up to `timeout` for output from any of `children` and returns the complete lines read
  // (maybe none). Returns early, with what it has, when a signal arrives.
  static std::vector<Line> read_lines(std::span<Child* const> children,
                                      std::chrono::milliseconds timeout);

 private:
  struct Stream {
    int fd = -1;
    std::string partial;
  };
  pid_t pid_ = -1;
  std::optional<int> status_;
  int stdin_fd_ = -1;
  Stream out_;
  Stream err_;
  std::string err_tail_;

  void drain(Stream& s, int stream, std::vector<Line>& lines);
  void close_fds();
};

}  // namespace concur::bench::echo
