// Internal: the anchor a program using concur publishes so that concur-ps can read its
// tasks from another process (inspect.hpp), as CPython 3.14 publishes _Py_DebugOffsets for
// `python -m asyncio ps`. The anchor is one global of plain data: a magic that the reader finds by
// scanning the target's writable data, its own address (a copy of the magic elsewhere is not
// it), the lists of live event loops and thread pools, and the offsets of every field the reader
// follows. The running program never reads it: keeping it costs a loop's or a pool's creation and
// destruction one mutex each, a pool's worker two stores of its own per task, and nothing at all
// while no one looks.
#pragma once

#include <cstdint>

namespace concur::asyncio::detail {

class LoopCore;

// A link in one of the anchor's lists of things other than loops (thread pools): the object's
// address and the next link.
struct InspectLink {
  const void* self = nullptr;
  InspectLink* next = nullptr;
  InspectLink* prev = nullptr;
};

inline constexpr char kInspectMagic[16] = {'c', 'o', 'n', 'c', 'u', 'r', '-', 'p',
                                           's', ' ', 'a', 'n', 'c', 'h', 'o', 'r'};
inline constexpr std::uint32_t kInspectVersion = 1;

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
  std::uint32_t task_all_next, task_id, task_extras, task_created_at, task_phase, task_waiting,
      task_done_head;
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
};

// The anchor (defined in inspect_anchor.cpp, constant-initialised: in the program's data from its
// first instruction) and the list of loops it publishes.
extern InspectAnchor g_inspect_anchor;
void register_loop(LoopCore* loop) noexcept;
void unregister_loop(LoopCore* loop) noexcept;
// A thread pool: `describe` fills in the pool_* and worker_* offsets (called once).
void register_pool(InspectLink* link, void (*describe)(InspectAnchor&)) noexcept;
void unregister_pool(InspectLink* link) noexcept;

}  // namespace concur::asyncio::detail
