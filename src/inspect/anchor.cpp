// The anchor concur-ps finds in a running program (inspect_layout.hpp): the offsets of the fields
// it follows, computed here by the compiler that built the program, and the list of live loops.
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/task.hpp"
#include "inspect/layout.hpp"
#include "platform/process.hpp"
#include "platform/remote_process.hpp"

namespace concur::asyncio::detail {

// offsetof on classes with private members (not standard-layout) is conditionally supported;
// GCC and Clang support it for classes without virtual bases, which these are.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
struct InspectOffsets {
  static constexpr std::uint32_t at(std::size_t offset) {
    return static_cast<std::uint32_t>(offset);
  }
  static constexpr InspectAnchor anchor() {
    return InspectAnchor{
        .magic = {kInspectMagic[0], kInspectMagic[1], kInspectMagic[2], kInspectMagic[3],
                  kInspectMagic[4], kInspectMagic[5], kInspectMagic[6], kInspectMagic[7],
                  kInspectMagic[8], kInspectMagic[9], kInspectMagic[10], kInspectMagic[11],
                  kInspectMagic[12], kInspectMagic[13], kInspectMagic[14], kInspectMagic[15]},
        .self = &g_inspect_anchor,
        .version = kInspectVersion,
        .size = sizeof(InspectAnchor),
        .loops = 0,
        .generation = 0,
        .loop_next = at(offsetof(LoopCore, next_loop)),
        .loop_thread = at(offsetof(LoopCore, thread_id)),
        .loop_tasks_head = at(offsetof(LoopCore, tasks_head)),
        .loop_live_tasks = at(offsetof(LoopCore, live_tasks)),
        .loop_current = at(offsetof(LoopCore, current_)),
        .task_all_next = at(offsetof(TaskBase, all_next)),
        .task_id = at(offsetof(TaskBase, id_)),
        .task_extras = at(offsetof(TaskBase, extras_)),
        .task_created_at = at(offsetof(TaskBase, created_at_)),
        .task_created_ms = at(offsetof(TaskBase, created_ms_)),
        .task_phase = at(offsetof(TaskBase, phase_)),
        .task_waiting = at(offsetof(TaskBase, waiting_)),
        .task_done_head = at(offsetof(TaskBase, done_head_)),
        .extras_name = at(offsetof(TaskBase::Extras, name)),
        .node_next = at(offsetof(DoneNode, next)),
        .node_awaiter = at(offsetof(DoneNode, awaiter)),
        .suspension_what = at(offsetof(Suspension, what)),
        .suspension_object = at(offsetof(Suspension, object)),
        .timer_when = at(offsetof(TimerNode, when_ns)),
        .timer_index = at(offsetof(TimerNode, index)),
        .timer_not_armed = TimerNode::kNotArmed,
        .phase_done = TaskBase::kDone,
        // Found at the first registration, by looking at real ones (see learn_layouts).
        .string_data = ~0u,
        .string_size = ~0u,
        .location_layout = LocationLayout::unknown,
        .location_file = 0,
        .location_function = 0,
        .location_line = 0,
        .pools = 0,
        .link_self = at(offsetof(InspectLink, self)),
        .link_next = at(offsetof(InspectLink, next)),
        .pool_name = 0,
        .pool_max_workers = 0,
        .pool_num_workers = 0,
        .pool_workers = 0,
        .pool_injector_tail = 0,
        .pool_injector_stub = 0,
        .task_next = 0,
        .worker_thread_id = 0,
        .worker_in_task = 0,
        .worker_deque_top = 0,
        .worker_deque_bottom = 0,
        .locks = 0,
        .lock_policy = 0,
        .lock_holder = 0,
        .lock_threads = 0,
        .lock_steady_clock = 0,
        .gil_thread_tid = 0,
        .gil_thread_name = 0,
        .gil_thread_waiting = 0,
        .gil_thread_wait_start = 0,
        .gil_thread_exited = 0,
        .process_pools = 0,
        .ppool_max_workers = 0,
        .ppool_queued = 0,
        .ppool_workers = 0,
        .pworker_pid = 0,
        .pworker_in_flight = 0,
        .pworker_sent = 0,
        .pworker_seq = 0,
        .pworker_running = 0,
        .pworker_running_size = 0,
    };
  }
};
#pragma GCC diagnostic pop

// Constant-initialised, so that the magic is in the program's data before any code runs.
constinit InspectAnchor g_inspect_anchor = InspectOffsets::anchor();

namespace {

std::mutex g_loops_mu;  // guards every list
LoopCore* g_loops = nullptr;

// The standard library's string and source_location keep their fields private. Their layouts are
// stable per ABI (libstdc++'s have not changed since GCC 5 and 11), but rather than assume one,
// look at a real object: where is the pointer to its characters, where its length? A layout not
// recognised stays unknown, and concur-ps then shows no names rather than wrong ones.
void learn_layouts(InspectAnchor& a) {
  static const std::string probe(40, 'x');  // longer than any short-string buffer
  const auto* words = reinterpret_cast<const std::uintptr_t*>(&probe);
  const std::size_t n = sizeof probe / sizeof(std::uintptr_t);
  for (std::size_t i = 0; i < n; ++i) {
    const auto at = static_cast<std::uint32_t>(i * sizeof(std::uintptr_t));
    if (a.string_data == ~0u && words[i] == reinterpret_cast<std::uintptr_t>(probe.data())) {
      a.string_data = at;
    } else if (a.string_size == ~0u && words[i] == probe.size()) {
      a.string_size = at;  // the first: libstdc++'s capacity, which may equal it, comes after
    }
  }
  const concur::base::source_location here = concur::base::source_location::current();
  const auto* loc = reinterpret_cast<const std::uintptr_t*>(&here);
  const auto file = reinterpret_cast<std::uintptr_t>(here.file_name());
  const auto function = reinterpret_cast<std::uintptr_t>(here.function_name());
  auto fields_at = [&](const std::uintptr_t* p) {
    std::uint32_t line = 0;
    std::memcpy(&line, p + 2, sizeof line);
    return p[0] == file && p[1] == function && line == here.line();
  };
  if (sizeof here >= 2 * sizeof(std::uintptr_t) + sizeof(std::uint32_t) && fields_at(loc)) {
    a.location_layout = LocationLayout::inline_fields;
  } else if (sizeof here == sizeof(void*) && loc[0] != 0 &&
             fields_at(reinterpret_cast<const std::uintptr_t*>(loc[0]))) {
    a.location_layout = LocationLayout::pointer_to_fields;
  }
  a.location_file = 0;
  a.location_function = sizeof(std::uintptr_t);
  a.location_line = 2 * sizeof(std::uintptr_t);
}

// A child forked while another thread held g_loops_mu would wait for it forever at its first
// registration: the child makes the mutex anew (its lists are only ever read from outside, so one
// left mid-change harms nothing but that reading). Not taken before the fork: that would order it
// against every other fork handler's locks (the interpreter lock's are taken before it).
void remake_mutex_in_child() {
  new (&g_loops_mu) std::mutex();
}

void learn_layouts_once() {
  static const bool learned =
      (learn_layouts(g_inspect_anchor),
       platform::on_every_fork(nullptr, nullptr, remake_mutex_in_child), true);
  (void)learned;
}

}  // namespace

void register_loop(LoopCore* loop) noexcept {
  loop->thread_id = platform::current_thread_id();
  std::lock_guard<std::mutex> lock(g_loops_mu);
  learn_layouts_once();
  loop->prev_loop = nullptr;
  loop->next_loop = g_loops;
  if (g_loops != nullptr) g_loops->prev_loop = loop;
  g_loops = loop;
  g_inspect_anchor.loops = reinterpret_cast<std::uint64_t>(g_loops);
  ++g_inspect_anchor.generation;
}

void unregister_loop(LoopCore* loop) noexcept {
  std::lock_guard<std::mutex> lock(g_loops_mu);
  (loop->prev_loop != nullptr ? loop->prev_loop->next_loop : g_loops) = loop->next_loop;
  if (loop->next_loop != nullptr) loop->next_loop->prev_loop = loop->prev_loop;
  loop->next_loop = loop->prev_loop = nullptr;
  g_inspect_anchor.loops = reinterpret_cast<std::uint64_t>(g_loops);
  ++g_inspect_anchor.generation;
}

namespace {

// The head of a list in the anchor, and the head it is mirrored to there.
struct ObjectList {
  InspectLink* head = nullptr;
  std::uint64_t InspectAnchor::*published;
  bool described = false;
};

ObjectList g_lists[] = {
    {nullptr, &InspectAnchor::pools, false},
    {nullptr, &InspectAnchor::locks, false},
    {nullptr, &InspectAnchor::process_pools, false},
};

void push_front(InspectLink*& head, InspectLink* link) {
  link->prev = nullptr;
  link->next = head;
  if (head != nullptr) head->prev = link;
  head = link;
}

void erase(InspectLink*& head, InspectLink* link) {
  (link->prev != nullptr ? link->prev->next : head) = link->next;
  if (link->next != nullptr) link->next->prev = link->prev;
  link->next = link->prev = nullptr;
}

}  // namespace

void register_object(InspectList which, InspectLink* link,
                     void (*describe)(InspectAnchor&)) noexcept {
  std::lock_guard<std::mutex> lock(g_loops_mu);
  learn_layouts_once();
  ObjectList& list = g_lists[static_cast<int>(which)];
  if (!list.described) {
    describe(g_inspect_anchor);
    list.described = true;
  }
  push_front(list.head, link);
  g_inspect_anchor.*list.published = reinterpret_cast<std::uint64_t>(list.head);
  ++g_inspect_anchor.generation;
}

void unregister_object(InspectList which, InspectLink* link) noexcept {
  std::lock_guard<std::mutex> lock(g_loops_mu);
  ObjectList& list = g_lists[static_cast<int>(which)];
  erase(list.head, link);
  g_inspect_anchor.*list.published = reinterpret_cast<std::uint64_t>(list.head);
  ++g_inspect_anchor.generation;
}

void link_part(InspectLink** head, InspectLink* link) noexcept {
  std::lock_guard<std::mutex> lock(g_loops_mu);
  push_front(*head, link);
  ++g_inspect_anchor.generation;
}

void unlink_part(InspectLink** head, InspectLink* link) noexcept {
  std::lock_guard<std::mutex> lock(g_loops_mu);
  erase(*head, link);
  ++g_inspect_anchor.generation;
}

}  // namespace concur::asyncio::detail
