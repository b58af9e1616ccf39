// concur/asyncio/call_graph.hpp: what the tasks of a program are waiting on, and who waits for
// them -- Python 3.14's asyncio.capture_call_graph / format_call_graph / print_call_graph, and
// the table and await tree of `python -m asyncio ps` / `pstree`, taken in process.
//
//   asyncio::print_call_graph();                  // inside a task: this task and who awaits it
//   std::optional<CallGraph> g = asyncio::capture_call_graph(task);
//   std::vector<TaskInfo> tasks = asyncio::snapshot_tasks();    // every live task of this loop
//   std::fputs(asyncio::format_task_table(tasks).c_str(), stdout);  // as `asyncio ps`
//   std::fputs(asyncio::format_task_tree(tasks).c_str(), stdout);   // as `asyncio pstree`
//
// What a task says (TaskInfo): its id and name, where create_task() was called, its state
// (running, ready to run, waiting, done) and, while it waits, on what: another task (co_await of
// a task), several (gather, wait, the end of a TaskGroup's body), a Lock, Event, Condition,
// Semaphore, Queue.get or Queue.put, a sleep or wait with its deadline, a StreamReader read, a
// drain, a concurrent future (to_thread, run_in_executor, wrap_future), a connect or
// getaddrinfo, a subprocess's exit, a datagram. Two tasks waiting on the same primitive show the
// same object address. Whom a task waits for is read from the other tasks' lists of waiters, so
// it covers every way of waiting for a task (co_await, gather, wait); as in Python 3.14, a
// TaskGroup's parent awaits each child from its creation on, whatever its body awaits meanwhile.
//
// Unlike Python: no coroutine call stack. A C++ coroutine frame does not carry its function's
// name, so a task's creation site stands for its stack; a coroutine awaited inline (co_await f())
// is part of its task, as in Python, and its wait is the task's. A cycle of tasks awaiting each
// other (a deadlock) is shown once and marked "(cycle)", where Python would recurse without end.
//
// Cost: nothing until called (each suspension carries one pointer that says what it is); a
// snapshot walks the loop's live tasks once: O(tasks + edges), allocating its result.
// Thread safety: none: call on the loop's thread, from a task or a callback. Outside a running
// loop, snapshot_tasks() is empty and capture_call_graph() has nothing to capture.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "concur/asyncio/task.hpp"

namespace concur::asyncio {

// One task, as a snapshot saw it.
struct TaskInfo {
  enum class State : std::uint8_t {
    running,  // the task executing now (the one that took the snapshot, or none)
    ready,    // scheduled or woken: runs at the loop's next turn
    waiting,  // suspended at a co_await: see awaiting
    done,
  };
  std::uint32_t id = 0;  // as in the default name Task-<id>
  std::string name;
  std::string created_file;  // where create_task() was called
  std::uint32_t created_line = 0;
  std::string created_function;
  State state = State::ready;
  // While waiting: what on ("task", "gather", "wait", "TaskGroup", "Lock", "Queue.get", "sleep",
  // "StreamReader read", "concurrent future", "connect"...), the object's address (0 when it
  // names none, and for a timed wait), and the seconds left before its deadline (a sleep,
  // a wait with a timeout). awaiting_tasks: the ids of the tasks it waits for, in any state.
  std::string awaiting;
  std::uintptr_t object = 0;
  std::vector<std::uint32_t> awaiting_tasks;
  std::optional<double> deadline_in_seconds;
  // How long ago it was created, to the start of the loop turn that created it (a task created
  // late in a long callback looks older by as much; see LoopCore::turn_ms).
  double age_in_seconds = 0;

  // "Task-3 (id 3)" or "worker (id 3)".
  std::string label() const;
  // "running", "ready", "done", or the wait: "waiting on Lock 0x55d0c2a8", "waiting on sleep,
  // 0.95 s left", "waiting on task 4", "waiting on gather of tasks 4, 5, 6".
  std::string state_text() const;
  // "file.cpp:12" (the file's last path component).
  std::string creation_site() const;
};

// Every live (spawned, not finished) task of the running loop, by id (creation order).
std::vector<TaskInfo> snapshot_tasks();

// A task and, recursively, the tasks awaiting it: the chain from a leaf up to the roots
// (Python's FutureCallGraph without call_stack).
struct CallGraph {
  TaskInfo task;
  std::vector<CallGraph> awaited_by;
  bool cycle = false;  // this task already appears on the path below it: not expanded again
};

// The graph of `task` (pending or done) on the running loop; the current task's when none is
// given; nullopt when there is no current task (Python returns None).
std::optional<CallGraph> capture_call_graph();
std::optional<CallGraph> capture_call_graph(const detail::TaskBase& task);
template <class T>
std::optional<CallGraph> capture_call_graph(const Task<T>& task) {
  return capture_call_graph(task.base());
}

// Python's layout: "* Task(...)" lines, then "+ Awaited by:" with the awaiting tasks indented.
std::string format_call_graph(const CallGraph& graph);
// Of the current task; "" when there is none.
std::string format_call_graph();
// Writes format_call_graph() of the current task (or of `task`) to out.
void print_call_graph(std::FILE* out = stdout);
template <class T>
void print_call_graph(const Task<T>& task, std::FILE* out = stdout) {
  if (auto g = capture_call_graph(task)) std::fputs(format_call_graph(*g).c_str(), out);
}

// A table with a row per task: id, name, state or wait, creation site (`asyncio ps`).
std::string format_task_table(const std::vector<TaskInfo>& tasks);
// The await tree (`asyncio pstree`): each task that no task awaits is a root, and under each task
// the tasks it awaits, the wait itself on the task's line. A task awaited by several appears
// under each; a cycle is cut and marked.
std::string format_task_tree(const std::vector<TaskInfo>& tasks);

}  // namespace concur::asyncio
