// Internal: starting child processes (fork, spawn, forkserver), watching them exit, and what a
// child does first. Process and ProcessPoolExecutor are built on this.
//
// Every child, whatever the start method, learns what to do from a Bootstrap frame on a socket
// to its parent (a forked child may instead run a local function). Spawn and forkserver children
// are fresh runs of this program that reach main_guard(), which reads the frame and runs it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "concur/multiprocessing/process.hpp"
#include "concur/multiprocessing/registry.hpp"
#include "multiprocessing/frames.hpp"

namespace concur::multiprocessing::detail {

struct Bootstrap {
  enum Mode : std::uint8_t { kRunCall = 1, kPoolWorker = 2 };
  std::uint8_t mode = kRunCall;
  std::string process_name;
  Call call;                    // kRunCall: the target; kPoolWorker: the initializer (may be empty)
  std::uint64_t max_tasks = 0;  // kPoolWorker: exit after this many tasks (0: never)
  // kPoolWorker: results of at least this many bytes go through a shared-memory ring (0: never).
  std::uint64_t shared_memory_threshold = 0;
  // The StartMethod that started the child, which its get_start_method() then reports, as
  // Python's child does (set by launch()).
  std::uint8_t start_method = 0;
  // The process that asked for this child (not the forkserver that forked it): parent_process().
  std::int32_t parent_pid = 0;
  std::string parent_name;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(mode, process_name, call, max_tasks, shared_memory_threshold, start_method, parent_pid,
            parent_name);
  }
};

// Who this process is, for parent_process(): its own name ("MainProcess" in the program's first
// process) and, in a child, its parent's pid, name and a pidfd on it (-1 if none could be opened).
struct Lineage {
  std::string own_name = "MainProcess";
  pid_t parent_pid = 0;
  std::string parent_name;
  int parent_fd = -1;
};
Lineage& lineage();
// In a new child: records its parent (opening a pidfd on it) and its own name.
void became_child(pid_t parent_pid, std::string parent_name, std::string own_name);

// How the parent learns that a child has exited, and how.
class ChildWatch {
 public:
  ChildWatch() = default;                               // watches nothing
  static ChildWatch direct(pid_t pid);                  // our own child (fork, spawn)
  static ChildWatch relayed(pid_t pid, int status_fd);  // a forkserver's child
  ChildWatch(ChildWatch&& other) noexcept;
  ChildWatch& operator=(ChildWatch&& other) noexcept;
  ChildWatch(const ChildWatch&) = delete;
  ChildWatch& operator=(const ChildWatch&) = delete;
  ~ChildWatch();

  pid_t pid() const { return pid_; }
  // Readable once the child has exited (for poll/epoll); -1 when already reaped.
  int fd() const { return fd_; }
  // Waits for the exit (reaping it); false at the deadline.
  bool wait(const Deadline& deadline);
  bool exited() { return wait(Clock::now()); }
  // Python's convention: the exit code, or -signal; nullopt while running.
  std::optional<int> exitcode() const { return exitcode_; }
  void signal(int sig) const;

 private:
  pid_t pid_ = 0;
  int fd_ = -1;
  bool direct_ = true;
  std::optional<int> exitcode_;
};

struct Launched {
  ChildWatch watch;
  int channel = -1;  // the parent's end of the socket to the child, if asked to keep it
};

// Spawn or forkserver: a new run of this program that follows `bootstrap` (whose start_method
// this sets); `fds` travel with it.
Launched launch(StartMethod method, Bootstrap& bootstrap, const std::vector<int>& fds,
                bool keep_channel);

// Fork: the child runs `body(channel)` (channel -1 unless keep_channel) and exits with what it
// returns. Refused while other threads run unless allow_threads.
Launched launch_fork(const std::function<int(int channel)>& body, bool allow_threads,
                     bool keep_channel);

// In a child: follows the Bootstrap frame read from `channel`; never returns.
[[noreturn]] void run_child(int channel, bool forked);
// Runs a registered call: 0, or 1 after printing why it failed.
int run_call(const std::string& process_name, Call&& call);

// The process-pool worker loop (process_pool.cpp): serves tasks on `channel`. `decoder` may
// already hold the first tasks (they can arrive in the same read as the bootstrap).
int run_pool_worker(int channel, FrameDecoder& decoder, const Bootstrap& bootstrap);

// Stops this process with a message if it is a spawned child whose main() skipped main_guard().
void refuse_if_guard_missing();

std::size_t thread_count();

}  // namespace concur::multiprocessing::detail
