// lab/experiments/procfs.hpp: what the kernel says about a process and its threads (/proc), and
// a forked child that reports back, for the experiments that measure threads themselves
// (thread-memory, preemption, fork-with-lock).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace concur::lab::procfs {

// A "Key:   value kB" field of /proc/<pid>/status (VmRSS, VmSize, Threads, ...): its number, or
// -1 if absent. pid 0 means this process.
long status_field(pid_t pid, const std::string& key);

// One thread (task) of a process, as the scheduler accounts it.
struct TaskSched {
  pid_t tid = 0;
  long voluntary_switches = 0;    // status: voluntary_ctxt_switches (it blocked or yielded)
  long involuntary_switches = 0;  // status: nonvoluntary_ctxt_switches (it was preempted)
  double on_cpu_s = 0;            // schedstat field 1: time spent running
  double run_queue_wait_s = 0;    // schedstat field 2: time runnable but waiting for a CPU
  long timeslices = 0;            // schedstat field 3: times it was put on a CPU
};
std::optional<TaskSched> task_sched(pid_t pid, pid_t tid);  // nullopt if the task is gone
std::vector<TaskSched> all_tasks(pid_t pid);                // pid 0: this process

// Whether the kernel keeps schedstat figures (CONFIG_SCHED_INFO; off on some kernels).
bool schedstat_available();

// Runs `body` in a forked child and returns what it printed (its return value), or nullopt when
// the child did not finish within `timeout` (then it is killed with SIGKILL and reaped) or died.
// Only async-signal-safe work is safe in the child of a multi-threaded parent, except where the
// body knows which locks exist (as here: the lab's own threads are joined before each call).
struct ChildResult {
  std::optional<std::string> output;  // the body's return value, when it returned
  bool timed_out = false;             // killed after `timeout`
  int exit_status = 0;                // waitpid's status
  double seconds = 0;                 // from fork to exit or kill
};
ChildResult run_in_child(const std::function<std::string()>& body,
                         std::chrono::milliseconds timeout);

}  // namespace concur::lab::procfs
