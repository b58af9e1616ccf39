// Internal: the parts of the event loop that every awaitable touches, kept inline because they are
// the hot path of a coroutine switch: the ready queue, the timer heap, the task being run, the
// record of where a suspended task waits, and the recycling allocator of coroutine frames.
//
// Nothing here is thread-safe: a loop and everything attached to it belong to the thread that
// runs it (call_soon_threadsafe in loop.hpp is the one door in from other threads).
#pragma once

#include <cassert>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "concur/errors.hpp"

namespace concur::asyncio {

// The loop's clock: monotonic (Python's loop.time()).
using Clock = std::chrono::steady_clock;

class EventLoop;

namespace detail {

class TaskBase;
class LoopCore;
struct InspectOffsets;

// ---------------------------------------------------------------------------------------------
// Coroutine frames come from per-thread free lists of 32-byte size classes (up to 1 KiB); a task
// that finishes gives its frame to the next one created, so create-and-gather costs no malloc in
// the steady state. Larger frames use operator new. New blocks are carved from 2 MiB chunks mapped
// for frames (a pointer bump, not a malloc call, per new frame); up to 64 MiB of chunks stay
// mapped for the life of the process, and past that blocks come from operator new (core.cpp says
// what is kept and why).
void* allocate_frame(std::size_t size);
void deallocate_frame(void* p, std::size_t size) noexcept;
// Coroutine frames allocated and not yet freed, process-wide (for leak tests).
std::int64_t live_frames() noexcept;
struct FrameStats {
  std::int64_t live_frames;  // frames allocated and not freed
  std::int64_t live_bytes;   // their size-class bytes
  std::int64_t heap_bytes;   // bytes the allocator holds from the heap (live + cached)
  std::int64_t chunk_bytes;  // bytes of chunks mapped for frames (not in the heap's figures)
};
FrameStats frame_stats() noexcept;

// ---------------------------------------------------------------------------------------------
// Where a suspended task waits. The awaitable that suspends a task fills one in (it lives in the
// awaitable, inside the coroutine frame: nothing is allocated) and sets it as the task's
// `waiting`. Whoever completes the wait wakes it; Task::cancel() calls `cancel`, which detaches
// the awaitable from what it waits on and wakes the task so that its co_await throws
// CancelledError (or, for a wait on another task, passes the cancellation on to that task).
struct Suspension {
  TaskBase* task = nullptr;
  std::coroutine_handle<> handle;  // the innermost coroutine of the task, the one to resume
  void (*cancel)(Suspension*) = nullptr;
  // What the task waits on, for call graphs (call_graph.hpp) and concur-ps: static text ("Lock",
  // "Queue.get", "task", "sleep"...; null: not said) and the object, for identity, except that
  // for a timed wait (kSleep, kWait) it is the TimerNode that ends it, or null if none is armed.
  // Plain data, set at suspension, so that another process can read it too (concur-ps).
  const char* what = nullptr;
  const void* object = nullptr;
};
// The waits whose object is their TimerNode.
inline constexpr char kSleep[] = "sleep";
inline constexpr char kWait[] = "wait";
// A WaitNode's `what` once a wake-up took it off its list (WaitNode::woken()).
inline constexpr char kWokenMark[] = "woken";

// An intrusive doubly linked list of waiters (Lock, Event, Queue getters...). A node unlinks
// itself when destroyed; a list detaches its nodes when destroyed, so destruction order between
// a primitive and the frames waiting on it does not matter.
struct WaitNode {
  WaitNode* prev = nullptr;
  WaitNode* next = nullptr;
  Suspension suspension;
  // Taken off by a wake-up (not by a cancellation). Kept in suspension.what, which says nothing
  // once the node is off its list: a flag of its own cost a parked task's frame 8 bytes more.
  bool woken() const { return suspension.what == kWokenMark; }
  void mark_woken() { suspension.what = kWokenMark; }
  WaitNode() = default;
  WaitNode(const WaitNode&) = delete;
  WaitNode& operator=(const WaitNode&) = delete;
  inline ~WaitNode();
  // The list it is on, or null. Kept in suspension.object (which a call graph reads as what the
  // task waits on): a parked task's frame holds its node, and one pointer fewer kept the frame
  // of a task parked on an Event in the 224-byte size class.
  struct WaitList* list() const {
    return static_cast<struct WaitList*>(const_cast<void*>(suspension.object));
  }
  bool linked() const { return suspension.object != nullptr; }
};

struct WaitList {
  WaitNode* head = nullptr;
  WaitNode* tail = nullptr;
  std::size_t size = 0;
  // What its waiters wait on, as a call graph names it ("Lock", "Queue.get"): static text.
  const char* what = "a wait list";
  WaitList() = default;
  explicit WaitList(const char* waited_on) : what(waited_on) {}
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList() {
    while (head) remove(head);
  }
  bool empty() const { return head == nullptr; }
  void push_back(WaitNode* n) {
    assert(!n->linked());
    n->suspension.object = this;
    n->suspension.what = what;
    n->prev = tail;
    n->next = nullptr;
    (tail ? tail->next : head) = n;
    tail = n;
    ++size;
  }
  void remove(WaitNode* n) {
    assert(n->list() == this);
    (n->prev ? n->prev->next : head) = n->next;
    (n->next ? n->next->prev : tail) = n->prev;
    n->prev = n->next = nullptr;
    n->suspension.object = nullptr;
    --size;
  }
};

inline WaitNode::~WaitNode() {
  if (WaitList* on = list()) on->remove(this);
}

// ---------------------------------------------------------------------------------------------
// A timer: a node of the loop's min-heap, ordered by deadline then by arming order (so that two
// timers with the same deadline fire in the order they were set, as asyncio's call_at does).
struct TimerNode {
  std::int64_t when_ns = 0;
  std::uint64_t seq = 0;
  std::uint32_t index = kNotArmed;
  void (*fire)(TimerNode*) = nullptr;
  static constexpr std::uint32_t kNotArmed = ~std::uint32_t{0};
  bool armed() const { return index != kNotArmed; }
};

// Monotonic nanoseconds (steady_clock), the loop's time base.
inline std::int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Seconds since `created_ms` (TaskBase::created_ms(), on the same clock as monotonic_ns()), at
// `now_ns`: the difference is taken in 32 bits, as the stamp wraps.
inline double age_in_seconds(std::uint32_t created_ms, std::int64_t now_ns) {
  const auto now_ms = static_cast<std::uint32_t>(now_ns / 1'000'000);
  return static_cast<double>(static_cast<std::uint32_t>(now_ms - created_ms)) / 1e3;
}

// ---------------------------------------------------------------------------------------------
// Something with libuv handles that may outlive the tasks using it (a stream, a server, a socket
// whose handle is kept outside): EventLoop::close() calls `close` on each one still attached, so
// that its handles close through its own callbacks and its memory is freed, not leaked.
struct LoopResource {
  LoopResource* prev_resource = nullptr;
  LoopResource* next_resource = nullptr;
  void (*close_resource)(LoopResource*) = nullptr;
  bool attached = false;
};

// ---------------------------------------------------------------------------------------------
class LoopCore {
 public:
  struct ReadyItem {
    void (*run)(void*);
    void* arg;
  };

  LoopCore();
  ~LoopCore();
  LoopCore(const LoopCore&) = delete;
  LoopCore& operator=(const LoopCore&) = delete;

  // The ready queue: a ring buffer that doubles when full; a push allocates nothing once it has
  // grown to the program's peak.
  void push_ready(void (*run)(void*), void* arg) {
    if (ready_size_ == ready_.size()) grow_ready();
    ready_[(ready_head_ + ready_size_) & (ready_.size() - 1)] = ReadyItem{run, arg};
    ++ready_size_;
  }
  bool has_ready() const { return ready_size_ != 0; }
  // Runs what is ready, and what that makes ready, up to kReadyBudget items beyond those ready at
  // the start, then returns so that the loop polls for I/O. asyncio runs only the items ready at
  // the start of a turn and polls between every two; draining the chain in one turn is what makes
  // a switch between coroutines cost nanoseconds instead of a system call, and the budget keeps
  // I/O from starving behind a ping-pong that never ends.
  void run_ready();
  static constexpr std::size_t kReadyBudget = 4096;

  // Makes a suspended task runnable: it resumes at its suspension point in this turn or the next.
  void wake(Suspension* s) {
    if (s->task) clear_waiting(s);
    push_ready(&resume_suspension, s);
  }
  // Resumes it now (from a libuv callback, at the top of the stack, where no task runs).
  void resume_now(Suspension* s);

  TaskBase* current_task() const { return current_; }
  void set_current_task(TaskBase* t) { current_ = t; }

  // Timers: arm at an absolute monotonic time; disarm is a no-op for an unarmed node.
  void arm(TimerNode* t, std::int64_t when_ns);
  void disarm(TimerNode* t);
  std::int64_t next_deadline() const { return heap_.empty() ? -1 : heap_.front()->when_ns; }
  // Fires the timers due at `now`; returns how many fired.
  std::size_t fire_due(std::int64_t now_ns);
  std::size_t armed_timers() const { return heap_.size(); }

  void attach(LoopResource* r) {
    r->prev_resource = nullptr;
    r->next_resource = resources_;
    if (resources_) resources_->prev_resource = r;
    resources_ = r;
    r->attached = true;
  }
  void detach(LoopResource* r) {
    if (!r->attached) return;
    (r->prev_resource ? r->prev_resource->next_resource : resources_) = r->next_resource;
    if (r->next_resource) r->next_resource->prev_resource = r->prev_resource;
    r->prev_resource = r->next_resource = nullptr;
    r->attached = false;
  }
  // Closes every attached resource (EventLoop::close()).
  void close_resources() {
    while (LoopResource* r = resources_) {
      detach(r);
      r->close_resource(r);
    }
  }
  TimerNode* first_timer() const { return heap_.empty() ? nullptr : heap_.front(); }
  // Drops everything queued (the loop is closing); frees the done callbacks it owns.
  void clear_ready();

  EventLoop* loop = nullptr;  // the public face (set by EventLoop)
  bool debug = false;
  std::int64_t slow_callback_ns = 100'000'000;

  // The spawned tasks that have not finished (asyncio.all_tasks()), linked through the tasks.
  TaskBase* tasks_head = nullptr;
  std::size_t live_tasks = 0;
  bool eager_tasks = false;  // EventLoop::set_eager_tasks (Python's eager_task_factory)
  std::uint32_t next_task_id = 0;
  // The loop's clock at the start of its current turn: libuv's uv_now(), the milliseconds of
  // CLOCK_MONOTONIC (or of its coarse twin, which lags it by at most a tick), cut to 32 bits.
  // A task's creation time is this, not a clock read of its own, which would cost as much as
  // creating and awaiting the task does; the price is that a task created late in a long turn
  // (a callback that blocks) looks older by as much.
  std::uint32_t turn_ms = 0;
  // Reports an error nobody could catch (a callback threw, a task's exception was never
  // retrieved) through the loop's exception handler; to stderr when the loop has none.
  void report(const std::string& message, std::exception_ptr error = nullptr);

  // Debug mode names the ready item that blocked the loop; the loop's call_soon callbacks are
  // described by the loop (they carry their source location).
  void (*callback_runner)(void*) = nullptr;
  std::string (*describe_callback)(void*) = nullptr;
  void (*drop_callback)(void*) = nullptr;  // frees a queued callback without running it

  // The live loops of the process, for concur-ps (inspect_anchor.cpp), and the thread (its
  // kernel id) that created this one.
  LoopCore* next_loop = nullptr;
  LoopCore* prev_loop = nullptr;
  std::int32_t thread_id = 0;

 private:
  friend struct InspectOffsets;
  static void resume_suspension(void* p);
  static inline void clear_waiting(Suspension* s);
  void grow_ready();
  struct SpareReady;
  static SpareReady& spare_ready();
  void sift_up(std::uint32_t i);
  void sift_down(std::uint32_t i);
  bool before(const TimerNode* a, const TimerNode* b) const {
    return a->when_ns != b->when_ns ? a->when_ns < b->when_ns : a->seq < b->seq;
  }
  void place(std::uint32_t i, TimerNode* t) {
    heap_[i] = t;
    t->index = i;
  }
  void report_slow(const char* what, std::int64_t ns);
  std::string describe_ready(const ReadyItem& item) const;

  std::vector<ReadyItem> ready_;
  std::size_t ready_head_ = 0;
  std::size_t ready_size_ = 0;
  TaskBase* current_ = nullptr;
  std::vector<TimerNode*> heap_;
  std::uint64_t timer_seq_ = 0;
  LoopResource* resources_ = nullptr;
};

// The loop running on this thread, or nullptr.
LoopCore* running_core() noexcept;
// The same, or a RuntimeError that names `who` and the fix when none runs.
LoopCore& require_core(const char* who);

}  // namespace detail
}  // namespace concur::asyncio
