// concur/multiprocessing/process.hpp: Process, Python's multiprocessing.Process.
//
// A Process runs target(args...) in a child process. Start methods, as Python's:
//   fork        the child is a copy of this process (copy-on-write); target may be any callable.
//               Forking while other threads run is refused (a lock one of them holds would stay
//               locked forever in the child; Python 3.12 warns about it) unless
//               ProcessOptions::allow_fork_with_threads says you accept the risk.
//   spawn       the child is a fresh start of this program (as on Windows and macOS); target
//               must be a registered function (concur/multiprocessing/registry.hpp).
//   forkserver  (the default, as in Python 3.14) the child is forked from a single-threaded
//               server process started once per program, so it is safe with threads and fast to
//               start; target must be registered.
// Spawn and forkserver re-run this program's main(): main() must call
// concur::multiprocessing::main_guard(argc, argv) first (concur/multiprocessing/main_guard.hpp),
// C++'s `if __name__ == '__main__':`. A program that forgets it does not fork-bomb: the child
// stops at its first attempt to start a process, with a message naming the fix, and exits with
// kMainGuardMissingExitCode.
//
// Arguments are copied at start(): by fork's copy, or encoded (with connections, queues, locks
// and shared memory passed as descriptors) for spawn and forkserver.
//
// States: created -> start() -> running -> exited (exitcode() is set: 0 for a normal return, 1 if
// target threw (its type and message are printed on the child's stderr), -N if killed by signal
// N, as Python) -> closed (close(): its resources are freed). start() twice, or join() before
// start(), is concur::AssertionError (a std::logic_error), as Python. After close(), every call but
// name(), daemon(), start_method() and close() throws std::invalid_argument (Python's ValueError
// "process object is closed"). A child's get_start_method() is the method that started it, as in
// Python. Blocking: join() blocks until the child exits (or the timeout; then it returns false).
// Lifetime: the destructor of a started Process joins a non-daemon child (Python joins them at
// exit) and terminates then joins a daemon one, so no child is left unreaped.
// Thread safety: a Process object is used from one thread at a time.
//
// Example:
//   void work(int n);                 // in some .cpp:  CONCUR_REGISTER(work);
//   int main(int argc, char** argv) {
//     concur::multiprocessing::main_guard(argc, argv);
//     concur::multiprocessing::Process p(work, 42);
//     p.start();
//     p.join();                       // p.exitcode() == 0
//   }
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "concur/futures.hpp"
#include "concur/multiprocessing/registry.hpp"

namespace concur::multiprocessing {

enum class StartMethod { fork, spawn, forkserver };
const char* to_string(StartMethod method);

// The start method used when none is given (initially forkserver).
void set_start_method(StartMethod method);
StartMethod get_start_method();

// The exit code of a spawned child whose main() did not call main_guard() first.
inline constexpr int kMainGuardMissingExitCode = 87;

struct ProcessOptions {
  std::string name = {};  // default "Process-<n>"
  bool daemon = false;
  std::optional<StartMethod> start_method = std::nullopt;
  bool allow_fork_with_threads = false;
};

namespace detail {

class ChildWatch;

// What a started child needs: either a local body (fork only) or a registered call.
struct ProcessTarget {
  std::function<void()> local;   // runs in a forked child
  std::function<Call()> encode;  // the call for a spawned child (empty: not registered)
};

template <class F, class... Args>
ProcessTarget make_target(F&& fn, Args&&... args) {
  ProcessTarget target;
  auto stored = std::make_shared<std::tuple<std::decay_t<F>, std::decay_t<Args>...>>(
      std::forward<F>(fn), std::forward<Args>(args)...);
  // Runs once, in the child's own copy of memory: the arguments may be moved into the call.
  target.local = [stored] {
    std::apply([](auto& f, auto&... a) { std::invoke(std::move(f), std::move(a)...); }, *stored);
  };
  if constexpr (std::is_pointer_v<std::decay_t<F>> &&
                std::is_function_v<std::remove_pointer_t<std::decay_t<F>>>) {
    if (is_registered(std::get<0>(*stored))) {
      target.encode = [stored] {
        return std::apply([](auto& f, auto&... a) { return make_call(f, a...); }, *stored);
      };
    }
  }
  return target;
}

}  // namespace detail

class Process {
 public:
  template <class F, class... Args>
  requires std::invocable<std::decay_t<F>, std::decay_t<Args>...>
  explicit Process(F&& target, Args&&... args)
      : Process(ProcessOptions{}, std::forward<F>(target), std::forward<Args>(args)...) {}

  template <class F, class... Args>
  requires std::invocable<std::decay_t<F>, std::decay_t<Args>...> Process(ProcessOptions options,
                                                                          F&& target,
                                                                          Args&&... args)
      : Process(std::move(options),
                detail::make_target(std::forward<F>(target), std::forward<Args>(args)...)) {}

  ~Process();
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void start();
  void join();
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(concur::detail::deadline_after(timeout));
  }
  bool is_alive();
  // nullopt until the child has exited (and then 0, 1, an exit code, or -signal).
  std::optional<int> exitcode();
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  // Python 3.14's Process.interrupt(): SIGINT. A Python child raises KeyboardInterrupt and exits
  // with 1; C++ has no such exception, so a concur child dies of the signal (exitcode() == -2, as
  // Python's child without a SIGINT handler) unless it handles SIGINT itself.
  void interrupt();

  // Python's Process.sentinel: a descriptor that becomes readable when the child exits (and stays
  // so), for poll/epoll or connection::wait() (connection.hpp). Owned by the Process: valid until
  // close() or destruction. std::invalid_argument before start().
  int sentinel() const;
  // Python's Process.close(): frees what the Process holds (its sentinel, its watch on the child).
  // std::invalid_argument while the child is running (join() or terminate() first); a second
  // close() does nothing.
  void close();

  pid_t pid() const;  // 0 before start()
  const std::string& name() const;
  bool daemon() const;
  StartMethod start_method() const;

 private:
  Process(ProcessOptions options, detail::ProcessTarget target);
  bool join_until(const concur::detail::Deadline& deadline);
  struct State;
  std::unique_ptr<State> state_;
};

// The number of this process's children started by Process that are still running (Python's
// len(active_children())).
std::size_t active_children();

// Python's parent_process() result: the process that started this one (for a forkserver child,
// the one that asked, not the server). It cannot be joined as a child is; join() waits for it to
// exit.
class ParentProcess {
 public:
  ParentProcess(pid_t pid, std::string name, int sentinel)
      : pid_(pid), name_(std::move(name)), sentinel_(sentinel) {}
  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }  // "MainProcess" for the program's first
  // Readable once the parent has exited; owned by this process (do not close it). -1 if the
  // kernel has no pidfd_open.
  int sentinel() const { return sentinel_; }
  bool is_alive() const;
  void join() const { join_until(std::nullopt); }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) const {
    return join_until(concur::detail::deadline_after(timeout));
  }

 private:
  bool join_until(const concur::detail::Deadline& deadline) const;
  pid_t pid_;
  std::string name_;
  int sentinel_;
};

// Python's multiprocessing.parent_process(): the parent, or nullopt in the program's main process.
std::optional<ParentProcess> parent_process();

}  // namespace concur::multiprocessing
