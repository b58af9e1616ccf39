// support/child_process.hpp: the one way the lab, the benchmarks and the tests start a helper
// program and talk to it (an echo server, a load client, a CPython script that serves, a tool
// whose output they capture).
//
// argv[0] is run (searched on PATH when it has no '/'; a program that cannot be found or run
// exits 127 with "cannot execute" on its stderr) with:
//   stdin   /dev/null, or a pipe written by send_line (Stdin::pipe);
//   stdout  a pipe, read by lines (read_line, read_lines) or whole (run_command);
//   stderr  an unlinked temporary file whose tail is kept for error messages, so a helper's
//           chatter never interleaves with the caller's output and can never fill a pipe
//           nobody reads (Stderr::file); or a pipe read like stdout (Stderr::pipe).
// The child dies with this process (PR_SET_PDEATHSIG: an interrupted run leaves no server
// behind), starts with no signal blocked and SIGPIPE at its default, and is stopped (SIGTERM,
// then SIGKILL after a grace period) and reaped on destruction. Descriptors of this process never
// leak into it: all are close-on-exec.
// Errors: std::system_error when the pipes, the temporary file or the fork fail.
// Thread safety: one thread uses a ChildProcess at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace concur::support {

// The path to run for `program`: itself if it contains '/', else the first match on PATH; nullopt
// if that is not an executable file.
std::optional<std::string> find_program(const std::string& program);

class ChildProcess {
 public:
  enum class Stdin { null, pipe };
  enum class Stderr { file, pipe };
  explicit ChildProcess(const std::vector<std::string>& argv, Stdin in = Stdin::null,
                        Stderr err = Stderr::file);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // The next line of its stdout (without the '\n'), or nullopt after `timeout` or at end of
  // output (a last line without '\n' stays unread).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  struct Line {
    ChildProcess* child;
    int stream;  // 1 stdout, 2 stderr (Stderr::pipe)
    std::string text;
  };
  // Waits up to `timeout` for output from any of `children` and returns the complete lines read
  // (maybe none; a last line without '\n' comes once its stream ends). Returns early, with what
  // it has, when a signal interrupts the wait.
  static std::vector<Line> read_lines(std::span<ChildProcess* const> children,
                                      std::chrono::milliseconds timeout);

  // stdout and the stderr pipe (if any) have both reached end of file (normally: it exited).
  bool outputs_closed() const { return out_.fd < 0 && err_.fd < 0; }

  // Writes one line (a '\n' is added) to its stdin; false if it no longer reads it or has none.
  bool send_line(const std::string& line);

  // Its exit code, or -N if signal N ended it; nullopt while it runs. Never blocks.
  std::optional<int> exit_status();
  // Waits up to `timeout` for it to exit by itself; its status, or nullopt if it still runs.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL if it still runs after `grace`; reaps it and returns its status. Sets
  // *killed when SIGKILL was needed.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(3), bool* killed = nullptr);

  // The last bytes it wrote to stderr (up to about 1,500).
  std::string stderr_tail() const;

 private:
  friend struct CommandRunner;
  struct Stream {
    int fd = -1;
    std::string buffer;  // read, not yet taken as lines
  };
  // Waits up to `timeout` for any open output of `children` and reads what is there.
  static void pump(std::span<ChildProcess* const> children, std::chrono::milliseconds timeout);
  void drain(Stream& s, int stream);
  void close_fds();

  pid_t pid_ = -1;
  std::optional<int> status_;
  int in_ = -1;
  Stream out_;
  Stream err_;            // Stderr::pipe
  int err_file_ = -1;     // Stderr::file
  std::string err_tail_;  // Stderr::pipe: the last bytes
};

}  // namespace concur::support
