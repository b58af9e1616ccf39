// support/child_process.hpp: a helper process the lab and the benchmarks start and talk to by
// lines (an echo server, a load client, a CPython script that serves).
//
// argv[0] is run (searched on PATH when it has no '/') with stdout on a pipe read by lines,
// stdin on a pipe (Stdin::pipe) or /dev/null, and stderr in an unlinked temporary file whose tail
// is kept for error messages (so a helper's own chatter never interleaves with the caller's
// output). The child dies with this process (PR_SET_PDEATHSIG, so an interrupted run leaves no
// server behind) and is stopped (SIGTERM, then SIGKILL after a grace period) and reaped on
// destruction.
// Errors: std::system_error when the pipes, the file or the fork fail; a program that cannot be
// executed exits 127 (seen as end of output and exit).
// Thread safety: one thread uses a ChildProcess at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace concur::support {

class ChildProcess {
 public:
  enum class Stdin { null, pipe };
  explicit ChildProcess(const std::vector<std::string>& argv, Stdin in = Stdin::null);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The next line of its stdout, or nullopt after `timeout` or at end of output.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Writes a line to its stdin (Stdin::pipe); false if that is impossible (it exited).
  bool send_line(const std::string& line);
  // Waits up to `timeout` for it to exit; true if it did (it is then reaped).
  bool wait_exit(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL if it is still there after `grace`; reaped.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(3));
  // The last bytes it wrote to stderr (up to about 1,500).
  std::string stderr_tail() const;

 private:
  void close_fds();
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  int err_ = -1;
  bool reaped_ = false;
  std::string buffer_;
};

}  // namespace concur::support
