// concur/asyncio/inspect.hpp: the tasks of ANOTHER running program, read from outside -- what
// `concur-ps PID` prints (Python 3.14's `python -m asyncio ps PID` / `pstree PID`).
//
//   for (const asyncio::LoopReport& loop : asyncio::inspect_process(pid).loops) {
//     std::fputs(asyncio::format_task_table(loop.tasks).c_str(), stdout);
//   }
//
// How: every program linked with concur's asyncio carries an anchor, a small global of plain
// data (the offsets of the fields below and the list of live event loops); the reader finds it by
// its magic in the target's writable data and follows the loops, their live tasks, what each
// waits on and who waits for it, with process_vm_readv(2), as py-spy reads CPython. The target
// does nothing and is not stopped, so this answers while its loop thread is stuck in a blocking
// callback, which is when it is needed; and it costs the program nothing while nobody looks.
//
// Thread pools: each ThreadPoolExecutor's workers (running a task or not, and what the kernel says
// its thread is doing) and how many tasks wait in its queues. Process pools: each
// ProcessPoolExecutor's worker processes (pid, the tasks sent to each and not yet answered, the
// function of the one it runs, and what the kernel says the process is doing) and how many tasks
// wait to be sent. Interpreter locks: each InterpreterLock's threads, which one holds it, which
// wait for it and for how long.
//
// What you get per task is what snapshot_tasks() gives in process (call_graph.hpp): id, name,
// creation site, state, what it waits on (with the deadline of a sleep or timed wait) and the
// tasks it waits for. Per loop: its thread, and what that thread is doing by the kernel's account
// (/proc/PID/task/TID/syscall): polling for I/O (idle, or between turns), running, or blocked in
// another system call -- then a callback or task is holding the loop, and the "running" task (if
// any) is the one doing it.
//
// Permissions: the kernel's, as for a debugger (ptrace access mode): the same user, and where
// /proc/sys/kernel/yama/ptrace_scope is 1, only a parent or CAP_SYS_PTRACE (root). Another
// user's process cannot be read; the error says which rule refused.
//
// Consistency: the target keeps running, so a list can change under the reader; it re-reads up
// to a few times when what it read does not hold together (a pointer into nowhere, a list longer
// than the loop's count), then reports the last reading with `torn` set.
//
// Errors: ProcessLookupError (no such process), PermissionError (see above), RuntimeError (the
// process has no concur anchor: not linked with concur's asyncio, or a different layout version).
// Thread safety: the functions are reentrant; they share nothing.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "concur/asyncio/call_graph.hpp"

namespace concur::asyncio {

struct LoopReport {
  std::uintptr_t address = 0;  // the loop's identity in the target
  int thread_id = 0;           // the kernel thread id of the thread that created it
  // What that thread is doing: "polling for I/O", "running", "blocked in <syscall>", or "gone"
  // (the thread has exited) / "unknown" (the kernel would not say).
  std::string thread_state;
  bool holding_the_loop = false;  // running or blocked outside the loop's poll
  std::vector<TaskInfo> tasks;    // its live tasks, by id; "running": the one executing now
  bool torn = false;              // the lists kept changing while read: this is the last reading
};

// A worker thread of a ThreadPoolExecutor.
struct WorkerReport {
  int thread_id = 0;
  bool in_task = false;      // running a task it took (else looking for one, or parked)
  std::size_t queued = 0;    // tasks in its own deque (taken in a batch, or submitted by its
                             // tasks); other workers may steal them
  std::string thread_state;  // by the kernel's account, as LoopReport::thread_state
};

// A ThreadPoolExecutor (or the pool behind an asyncio loop's to_thread).
struct ThreadPoolReport {
  std::uintptr_t address = 0;
  std::string name;  // its thread_name_prefix
  std::size_t max_workers = 0;
  std::vector<WorkerReport> workers;  // those started
  std::size_t queued = 0;             // waiting: submitted from outside and in workers' deques
  bool torn = false;
};

// A worker process of a ProcessPoolExecutor.
struct ProcessWorkerReport {
  int pid = 0;
  std::size_t holding = 0;    // tasks sent to it and not yet answered (it runs them in order)
  std::uint64_t sent = 0;     // tasks sent to it since it started
  std::string running;        // the registered name of the function of the oldest it holds
  std::string process_state;  // by the kernel's account, as LoopReport::thread_state
};

// A ProcessPoolExecutor.
struct ProcessPoolReport {
  std::uintptr_t address = 0;
  std::size_t max_workers = 0;
  std::vector<ProcessWorkerReport> workers;  // those alive
  std::size_t queued = 0;                    // submitted, not yet sent to a worker
  bool torn = false;
};

// A thread that has used an InterpreterLock (and not exited).
struct LockThreadReport {
  int thread_id = 0;
  std::string name;  // InterpreterLock::name_current_thread(), or "thread <n>"
  bool holding = false;
  bool waiting = false;
  // How long it has waited so far; negative when unknown (a lock on an injected clock).
  double waited_seconds = -1;
  std::string thread_state;  // by the kernel's account, as LoopReport::thread_state
};

// An InterpreterLock.
struct InterpreterLockReport {
  std::uintptr_t address = 0;  // of its internal state
  std::string policy;          // "cpython", "fifo" or "io_priority"
  std::vector<LockThreadReport> threads;
  bool torn = false;
};

struct ProcessReport {
  pid_t pid = 0;
  std::vector<LoopReport> loops;
  std::vector<ThreadPoolReport> thread_pools;
  std::vector<ProcessPoolReport> process_pools;
  std::vector<InterpreterLockReport> interpreter_locks;
};

// The event loops, pools and interpreter locks of process `pid` (see above). Empty lists when it
// has none.
ProcessReport inspect_process(pid_t pid);

// A text report: for each loop, a line on its thread, then the table (or the await tree); then
// each thread pool and process pool: its workers, what each is doing, and how many tasks wait;
// then each interpreter lock: who holds it, who waits and for how long.
std::string format_process_report(const ProcessReport& report, bool tree);

}  // namespace concur::asyncio
