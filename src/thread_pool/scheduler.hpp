// Internal: the work-stealing scheduler behind concur::ThreadPoolExecutor.
//
// Queues. Each worker owns a Chase-Lev deque: a task submitted from inside a task goes to the
// submitting worker's own deque (no shared write at all), and idle workers steal from the other
// end. Tasks from outside threads go through one InjectionQueue (an atomic exchange per push; the
// workers take them in batches). Cancelling a queued task is O(1): it stays queued, already done,
// and the worker that reaches it drops it.
//
// Sleeping and waking (the protocol of Go's scheduler). A worker that finds nothing becomes a
// "searcher" and spins for a while (at most `max_searchers_` at once: half the cores, at least
// two); then it parks.
// A submit wakes a parked worker only when there is no searcher, so when every worker is busy or
// one is already looking, submitting makes no system call. A searcher that finds work stops
// searching and, if it was the last one and more work is visible, wakes the next worker: a burst
// of work wakes workers one at a time, each by the previous one, not all by the submitter.
// A submitter pushes with a seq_cst store and then reads `sleep_word_` with a seq_cst load; a
// parking worker updates `sleep_word_` with a seq_cst read-modify-write and then reads the queues
// with seq_cst loads. One of the two comes first in the single order of seq_cst operations, so
// one always sees the other: no wake-up is lost, and a submit pays no read-modify-write for it.
//
// Helping. A worker that blocks on a future (result(), wait(), as_completed()) runs other tasks of
// this pool instead, and parks only when there is nothing to run; it is then both a sleeper that a
// submit can wake and a waiter that the future's completion wakes. Nested waits therefore never
// deadlock the pool, whatever its size.
//
// Starting threads (Python's rule: a submit starts one thread unless a worker is idle). A worker
// counts as idle while it searches or is parked, and also from the moment its task's callable has
// returned (flagged before the future completes, so `submit(f).result()` in a loop reuses one
// thread) until it takes work; a submit that finds no other idle worker claims such a one, so each
// finished worker answers for one submit, as each release of Python's idle semaphore does. That
// check runs only when a thread would otherwise start, never when a worker is searching or parked.
//
// Shutdown. `gate_` counts submits in progress and carries the shutdown and broken bits; a worker
// exits only when shutdown is set, no submit is in progress and no queue holds a task, so a task
// whose submit() returned is always run or cancelled.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "blocking.hpp"
#include "concur/base/mutex.hpp"
#include "concur/detail/future_state.hpp"
#include "inspect/layout.hpp"
#include "platform/parker.hpp"
#include "thread_pool/injection_queue.hpp"
#include "thread_pool/work_stealing_deque.hpp"

namespace concur::detail {

struct SchedulerOptions {
  std::size_t max_workers = 1;
  std::string thread_name_prefix;
  std::function<void()> initializer;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `task`, adopting one reference. On refusal (shut down, broken, no thread could start)
  // it abandons the task and throws.
  void submit(StateBase* task);

  void shutdown(bool wait, bool cancel_futures);

  std::size_t max_workers() const noexcept { return max_workers_; }
  std::size_t thread_count() const noexcept { return num_workers_.load(std::memory_order_acquire); }

  // True if the calling thread is one of this scheduler's workers.
  bool on_worker_thread() const noexcept;
  // The full name of the calling worker thread (of any pool), or nullptr on other threads.
  static const std::string* current_worker_name() noexcept;

 private:
  friend struct SchedulerInspection;  // concur-ps reads queues and workers from outside

  struct Worker;

  // gate_ bits: the low two flags, then the count of submits in progress.
  static constexpr std::uint64_t kShutdown = 1;
  static constexpr std::uint64_t kBroken = 2;
  static constexpr std::uint64_t kSubmitUnit = 4;
  static std::uint64_t submits_of(std::uint64_t gate) { return gate / kSubmitUnit; }
  // disposal_ bits.
  static constexpr std::uint32_t kCancelQueued = 4;

  // sleep_word_: searching workers in the low half, parked ones in the high half.
  static constexpr std::uint64_t kIdleUnit = std::uint64_t{1} << 32;
  static std::uint32_t searching_of(std::uint64_t word) { return static_cast<std::uint32_t>(word); }
  static std::uint32_t idle_of(std::uint64_t word) {
    return static_cast<std::uint32_t>(word >> 32);
  }

  void worker_main(Worker& worker);
  bool help_until(Worker& worker, Condition& condition, const Deadline& deadline);
  StateBase* next_task(Worker& worker, Condition* awaited, const Deadline& deadline);
  StateBase* find_task(Worker& worker);
  StateBase* take_from_injector(Worker& worker);
  StateBase* steal(Worker& worker);
  void run_task(Worker& worker, StateBase* task) noexcept;
  bool work_visible() const noexcept;
  bool may_exit() const noexcept;

  void notify(bool may_spawn = true) noexcept;
  void stop_searching(Worker& worker) noexcept;
  bool try_start_searching(Worker& worker) noexcept;
  void park(Worker& worker, Condition* awaited, const Deadline& deadline);
  void leave_idle(Worker& worker) noexcept;
  void wake_all() noexcept;

  void refuse_if_closed(std::uint64_t gate, StateBase* task);
  bool maybe_spawn();
  bool claim_finished_worker() noexcept;
  void spawn_if_room() noexcept;
  bool spawn_worker() CONCUR_REQUIRES(spawn_mu_);
  void break_pool(std::exception_ptr error) noexcept;
  void drain(const std::function<void(StateBase*)>& dispose) noexcept;
  void join_all();

  const std::size_t max_workers_;
  const std::string name_prefix_;
  const std::function<void()> initializer_;
  const std::uint32_t max_searchers_;

  std::unique_ptr<std::unique_ptr<Worker>[]> workers_;
  std::atomic<std::size_t> num_workers_{0};
  // Workers started and not yet looking for work (still in their initializer, say).
  std::atomic<std::uint32_t> starting_{0};

  alignas(64) std::atomic<std::uint64_t> gate_{0};
  alignas(64) std::atomic<std::uint64_t> sleep_word_{0};
  // Read by workers before each task; written once or twice in the pool's life, so it sits apart
  // from gate_, which every submit writes.
  alignas(64) std::atomic<std::uint32_t> disposal_{0};  // kBroken, kCancelQueued
  InjectionQueue injector_;

  base::Mutex idle_mu_;
  std::vector<Worker*> idle_ CONCUR_GUARDED_BY(idle_mu_);

  // This pool in the process's list that concur-ps reads (src/inspect/layout.hpp).
  asyncio::detail::InspectLink inspect_link_;

  base::Mutex spawn_mu_;
  bool spawning_closed_ CONCUR_GUARDED_BY(spawn_mu_) = false;
  base::Mutex join_mu_;
  std::once_flag broken_once_;
  std::string broken_message_;       // written once, before kBroken is published
  std::exception_ptr broken_error_;  // likewise

  static thread_local Worker* current_;
};

}  // namespace concur::detail
