// concur/asyncio/subprocess.hpp: child processes with pipes, Python's
// asyncio.create_subprocess_exec and asyncio.subprocess.Process, on libuv (uv_spawn).
//
//   Process p = co_await asyncio::create_subprocess_exec(
//       "/bin/cat", {}, {.stdin_mode = Stdio::PIPE, .stdout_mode = Stdio::PIPE});
//   CommunicateResult r = co_await p.communicate("some data");   // r.out == "some data"
//   int code = *p.returncode();                                    // 0
//
//   std::vector<std::string> args{"-c", "echo $PWD"};               // GCC 12: see below
//   SubprocessOptions options{.stdout_mode = Stdio::PIPE, .cwd = "/tmp"};
//   Process sh = co_await asyncio::create_subprocess_exec("/bin/sh", args, options);
//
// GCC 12 and co_await: a braced list of arguments inside the co_await expression does not compile
// ("array used as initializer", see the README), and SubprocessOptions that set cwd or env must not
// be a temporary inside it either: GCC 12 copies such an aggregate temporary bitwise, so that its
// strings are freed wrongly (memory corruption). Build both in variables first, as above; options
// that set only the modes, limit and start_new_session are safe inline.
//
// Spawning: program is run with argv = {program, args...}; a program without a '/' is looked up
// in PATH (execvp), as Python does. The child starts with the default action for every standard
// signal (1-31) and an empty signal mask. Its stdin, stdout and stderr are as SubprocessOptions
// chooses; other descriptors are inherited unless they are close-on-exec (libuv's and concur's are;
// libuv has no close_fds as Python's: open yours with O_CLOEXEC):
//   Stdio::INHERIT  this process's own descriptor (Python's None)
//   Stdio::PIPE     a pipe: stdin_pipe() (a StreamWriter), stdout_pipe() / stderr_pipe() (a
//                   StreamReader, with SubprocessOptions::limit) are its ends, read continuously
//                   as TCP streams are (see streams.hpp)
//   Stdio::DEVNULL  /dev/null
//   Stdio::STDOUT   (stderr only) the same as the child's stdout, whatever that is
// A program that cannot be run (not found, not executable, a cwd that does not exist) is an
// OSError thrown by create_subprocess_exec (errno ENOENT for a missing program, as Python's
// FileNotFoundError); no child is left behind and every pipe is closed.
//
// The exit: the child is reaped by libuv (its SIGCHLD handling, waitpid of that pid only) as soon
// as it exits, whether anyone waits or not, and even if every Process handle is gone: no zombie
// is left while the loop runs. returncode() is then its exit status, or -N when signal N killed
// it (Python's convention). wait() waits for that; it returns once the child exited, even if a
// grandchild still holds its pipes open. Like Python's, wait() can deadlock when the child
// writes more to a PIPE than the pipe and the reader's buffer hold (2 x limit) and nobody reads
// it: read the pipes, or use communicate().
// communicate(input) is Python's: writes input to stdin (if a PIPE) and closes it, reads stdout
// and stderr (if PIPEs) to EOF concurrently, then waits for the exit. BrokenPipeError and
// ConnectionResetError while writing are ignored (the child did not want all of its input).
//
// Cancellation: cancelling wait() or communicate() raises CancelledError and does not touch the
// child (as Python): it keeps running and is still reaped when it exits; the output communicate()
// had read is lost, stdin may be left open.
// Signals: send_signal() / terminate() (SIGTERM) / kill() (SIGKILL) signal the child while it
// runs; once its exit was seen they throw OSError with errno ESRCH (Python's ProcessLookupError),
// never signalling a pid the system may have reused. Creating a process with stdin = PIPE sets
// SIGPIPE to SIG_IGN if it has the default action (Python does so at startup), so that writing to
// a child that exited throws BrokenPipeError instead of killing this program; a SIGPIPE handler
// of the program's own is left alone.
// Do not reap children elsewhere (waitpid(-1, ...), SIGCHLD set to SIG_IGN): libuv would never
// see the exit and wait() would never return.
//
// Handles: Process is a reference-counted handle. Dropping the last one does not kill the child
// (as Python); it releases the Process's references to the pipes (the child then reads EOF on a
// stdin nobody else holds), and the child is reaped when it exits.
// The loop closing while the child runs (EventLoop::close(), the end of asyncio::run): the child
// is left running, detached; close() does not wait for it. Nobody reaps it any more through
// libuv: a Process handle that outlives the loop still gives pid(), polls the exit with
// waitpid(WNOHANG) in returncode() (reaping it when it is over) and can send_signal(); wait() and
// communicate() throw RuntimeError. A detached child that nobody polls stays a zombie after it
// exits, until this program exits (its pipes, if a handle still holds them, are not freed either).
// Wait for children, or kill them, before the loop closes.
// Thread safety: none; a Process belongs to the thread of the loop that created it.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "concur/asyncio/streams.hpp"
#include "concur/asyncio/task.hpp"

namespace concur::asyncio {

namespace detail {
struct ProcessState;
void add_ref(ProcessState* s) noexcept;
void release(ProcessState* s) noexcept;
}  // namespace detail

// Where a child's stdin, stdout or stderr goes (Python's None, PIPE, DEVNULL, STDOUT).
enum class Stdio { INHERIT, PIPE, DEVNULL, STDOUT };

struct SubprocessOptions {
  Stdio stdin_mode = Stdio::INHERIT;
  Stdio stdout_mode = Stdio::INHERIT;
  Stdio stderr_mode = Stdio::INHERIT;  // may be Stdio::STDOUT
  // The child's working directory (default: this process's).
  std::optional<std::string> cwd = std::nullopt;
  // The child's whole environment (default: this process's). PATH is looked up in it.
  std::optional<std::map<std::string, std::string>> env = std::nullopt;
  // The StreamReaders' limit (see streams.hpp); 0 is refused with std::invalid_argument.
  std::size_t limit = kDefaultStreamLimit;
  // setsid(): the child leads a new session and process group (Python's start_new_session).
  bool start_new_session = false;
};

// What communicate() returns: the output of stdout and stderr ("" for one that is not a PIPE)
// and the exit code.
struct CommunicateResult {
  std::string out;
  std::string err;
  int returncode = 0;
};

class Process {
 public:
  Process() = default;
  Process(const Process& other) noexcept : s_(other.s_) {
    if (s_) detail::add_ref(s_);
  }
  Process(Process&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
  Process& operator=(Process other) noexcept {
    std::swap(s_, other.s_);
    return *this;
  }
  ~Process() {
    if (s_) detail::release(s_);
  }

  int pid() const;
  // The pipes' ends (another handle to the same stream); empty handles when not Stdio::PIPE.
  StreamWriter stdin_pipe() const;
  StreamReader stdout_pipe() const;
  StreamReader stderr_pipe() const;

  // The exit code once the child's exit was seen (see the header comment); std::nullopt before.
  std::optional<int> returncode() const;
  // Waits for the exit and returns the exit code (at once if it is known). Cancellable; does not
  // kill the child. RuntimeError, while the exit is not known, from another loop than the
  // creator's, or once the creator's loop has closed (see the header comment).
  Task<int> wait() const;
  // Sends signal `sig` (OSError ESRCH once the exit was seen; OSError for an invalid signal).
  void send_signal(int sig);
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  // See the header comment. std::invalid_argument for non-empty input without a stdin PIPE;
  // RuntimeError if another read is already waiting on stdout or stderr.
  Task<CommunicateResult> communicate(std::string input = {});

  bool valid() const { return s_ != nullptr; }

  explicit Process(detail::ProcessState* s) noexcept : s_(s) {}  // adopts a reference
  detail::ProcessState* state() const noexcept { return s_; }    // internal

 private:
  detail::ProcessState* require(const char* who) const;
  detail::ProcessState* s_ = nullptr;
};

// Starts `program` with `args` (argv[1]...) as SubprocessOptions says (see the header comment).
// Errors: OSError (ENOENT: no such program; EACCES...), std::invalid_argument for
// Stdio::STDOUT given as stdin or stdout.
Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args = {},
                                     SubprocessOptions options = {});

}  // namespace concur::asyncio
