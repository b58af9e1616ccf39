// Internal: the anchor a program using concur publishes so that concur-ps can read its
// tasks from another process (inspect.hpp), as CPython 3.14 publishes _Py_DebugOffsets for
// `python -m asyncio ps`. The anchor is one global of plain data: a magic that the reader finds by
// scanning the target's writable data, its own address (a copy of the magic elsewhere is not
// it), the lists of live event loops and thread pools, and the offsets of every field the reader
// follows. The running program never reads it: keeping it costs a loop's, a pool's, a lock's or
// a worker's creation and destruction one mutex each, a thread pool's worker two stores of its own
// per task, a process pool a few stores per task sent (its pool thread, beside a system call),
// an interpreter lock one store per wait, and nothing at all while no one looks.
#pragma once

#include <cstdint>

namespace concur::asyncio::detail {

class LoopCore;

// A link in one of the anchor's lists of things other than loops (thread pools, process pools,
// interpreter locks) or in a list one of them keeps (a lock's threads, a process pool's workers):
// the object's address and the next link.
struct InspectLink {
  const void* self = nullptr;
  InspectLink* next = nullptr;
  InspectLink* prev = nullptr;
};

inline constexpr char kInspectMagic[16] = {'c', 'o', 'n', 'c', 'u', 'r', '-', 'p',
                                           's', ' ', 'a', 'n', 'c', 'h', 'o', 'r'};
inline constexpr std::uint32_t kInspectVersion = 2;

// How a std::source_location keeps its data (checked at start-up on a real one).
enum class LocationLayout : std::uint32_t {
  unknown = 0,
  pointer_to_fields = 1,  // libstdc++: one pointer to {file, function, line, ...}
  inline_fields = 2,      // concur/base/source_location.hpp's own: {file, function, line}
};

struct InspectAnchor {
  char magic[16];
  const void* self;  // the anchor's own address
  std::uint32_t version;
  std::uint32_t size;
  // The first live loop (LoopCore*), 0 when none; loops link through loop_next. Written under the
  // registry's mutex; read by the other process without it (it retries on a torn read).
  std::uint64_t loops;
  std::uint64_t generation;  // bumped by every change to the list

  // Byte offsets of the fields followed, within their structs.
  std::uint32_t loop_next, loop_thread, loop_tasks_head, loop_live_tasks, loop_current;
  std::uint32_t task_all_next, task_id, task_extras, task_created_at, task_created_ms, task_phase,
      task_waiting, task_done_head;
  std::uint32_t extras_name;
  std::uint32_t node_next, node_awaiter;
  std::uint32_t suspension_what, suspension_object;
  std::uint32_t timer_when, timer_index;
  std::uint32_t timer_not_armed;
  std::uint32_t phase_done;
  // std::string: where the pointer to its characters and its length are (0xffffffff: unknown).
  std::uint32_t string_data, string_size;
  // std::source_location (the type of TaskBase::created_at()).
  LocationLayout location_layout;
  std::uint32_t location_file, location_function, location_line;

  // The first live thread pool's InspectLink (0 when none), and the fields followed from there;
  // the layout of a pool is filled in by the first pool (only the pool's code knows its workers).
  std::uint64_t pools;
  std::uint32_t link_self, link_next;
  std::uint32_t pool_name, pool_max_workers, pool_num_workers, pool_workers;
  std::uint32_t pool_injector_tail, pool_injector_stub, task_next;
  std::uint32_t worker_thread_id, worker_in_task, worker_deque_top, worker_deque_bottom;

  // The first live InterpreterLock's link (its GilCore), and the fields followed from there: its
  // policy (0 cpython, 1 fifo, 2 io_priority), its holder (a GilThread, 0 when free), the head of
  // its list of threads (InspectLink*), whether its clock is the steady clock (then a wait's
  // start is comparable with this machine's CLOCK_MONOTONIC); per thread: its kernel id, its
  // name (std::string), whether it waits, since when, and whether it has exited.
  std::uint64_t locks;
  std::uint32_t lock_policy, lock_holder, lock_threads, lock_steady_clock;
  std::uint32_t gil_thread_tid, gil_thread_name, gil_thread_waiting, gil_thread_wait_start,
      gil_thread_exited;

  // The first live ProcessPoolExecutor's link, and from there: its worker limit, how many tasks
  // wait in its queue, the head of its list of live workers (InspectLink*); per worker: its pid,
  // how many tasks it has been sent and not answered, how many it was sent in all, and the name
  // of the function of the oldest unanswered one (a char array, NUL-terminated, written under a
  // sequence count: odd while being written).
  std::uint64_t process_pools;
  std::uint32_t ppool_max_workers, ppool_queued, ppool_workers;
  std::uint32_t pworker_pid, pworker_in_flight, pworker_sent, pworker_seq, pworker_running,
      pworker_running_size;
};

// The anchor (defined in inspect_anchor.cpp, constant-initialised: in the program's data from its
// first instruction) and the list of loops it publishes.
extern InspectAnchor g_inspect_anchor;
void register_loop(LoopCore* loop) noexcept;
void unregister_loop(LoopCore* loop) noexcept;
// The anchor's lists of objects other than loops.
enum class InspectList { thread_pools, interpreter_locks, process_pools };
// Adds an object to its list: `describe` fills in the offsets of its kind (called once per kind).
void register_object(InspectList list, InspectLink* link,
                     void (*describe)(InspectAnchor&)) noexcept;
void unregister_object(InspectList list, InspectLink* link) noexcept;
// A list an object keeps of its parts (a lock's threads, a pool's workers), which the reader
// follows from `*head`: linked and unlinked under the anchor's mutex, which also tells the reader
// (through the generation count) that it changed.
void link_part(InspectLink** head, InspectLink* link) noexcept;
void unlink_part(InspectLink** head, InspectLink* link) noexcept;

}  // namespace concur::asyncio::detail
