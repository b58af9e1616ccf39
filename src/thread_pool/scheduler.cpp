#include "thread_pool/scheduler.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>

#include "concur/errors.hpp"
#include "describe_exception.hpp"
#include "platform/remote_process.hpp"
#include "platform/threads.hpp"

namespace concur::detail {

namespace {

// A helper that keeps nesting waits inside waits would eventually overflow its stack; past this
// depth it waits without running other tasks.
constexpr unsigned kMaxHelpDepth = 256;
// How many tasks a worker takes from the injection queue at once.
constexpr std::size_t kBatch = 16;
// How long a searching worker spins before it parks. Waking a parked thread costs 50-150 us on a
// virtual machine (measured here), so a worker that parks sooner than that loses more to the next
// burst than its spinning costs; spinning yields the core now and then, so a thread that shares
// it still runs.
constexpr std::chrono::microseconds kSearchSpin{200};
// Every this many looks, a worker serves the injection queue before its own deque, so tasks from
// outside are not starved by tasks that keep spawning tasks (61, as Go's scheduler uses).
constexpr std::uint32_t kInjectorFairness = 61;

}  // namespace

struct Scheduler::Worker final : HelpingContext {
  Worker(Scheduler& owner, std::size_t i, std::string thread_name)
      : pool(owner), index(i), name(std::move(thread_name)), rng(0x9E3779B97F4A7C15ull * (i + 1)) {}

  bool help_until(Condition& condition, const Deadline& deadline) override {
    return pool.help_until(*this, condition, deadline);
  }

  Scheduler& pool;
  const std::size_t index;
  const std::string name;
  WorkStealingDeque<StateBase*> deque;
  platform::Parker parker;
  std::thread thread;

  // The worker's own thread only.
  bool searching = false;
  unsigned help_depth = 0;
  std::uint32_t tick = 0;
  std::uint64_t rng;

  // Guarded by pool.idle_mu_ (not annotated: the analysis cannot name another object's mutex).
  bool in_idle = false;

  // True from the moment this worker's top-level task returned until it takes another task or a
  // submit counts on it to take one (claim_finished_worker()): a worker about to look for work,
  // which Python's rule counts as idle. A new worker is not idle until it has finished a task, as
  // in Python, whose thread releases the idle semaphore only once it has found no work.
  std::atomic<bool> finished_task{false};

  // For concur-ps, which reads them from another process; nothing here reads them.
  int thread_id = 0;                 // the kernel's id of this worker's thread
  std::atomic<bool> in_task{false};  // running a task it took (not one it helps with)
};

// The offsets concur-ps follows from a pool to its queue and its workers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
struct SchedulerInspection {
  static std::uint32_t at(std::size_t offset) { return static_cast<std::uint32_t>(offset); }
  static void describe(asyncio::detail::InspectAnchor& a) {
    a.pool_name = at(offsetof(Scheduler, name_prefix_));
    a.pool_max_workers = at(offsetof(Scheduler, max_workers_));
    a.pool_num_workers = at(offsetof(Scheduler, num_workers_));
    a.pool_workers = at(offsetof(Scheduler, workers_));
    a.pool_injector_tail = at(offsetof(Scheduler, injector_) + offsetof(InjectionQueue, tail_));
    a.pool_injector_stub = at(offsetof(Scheduler, injector_) + offsetof(InjectionQueue, stub_));
    a.task_next = at(offsetof(StateBase, next_task));
    a.worker_thread_id = at(offsetof(Scheduler::Worker, thread_id));
    a.worker_in_task = at(offsetof(Scheduler::Worker, in_task));
    using Deque = WorkStealingDeque<StateBase*>;
    a.worker_deque_top = at(offsetof(Scheduler::Worker, deque) + offsetof(Deque, top_));
    a.worker_deque_bottom = at(offsetof(Scheduler::Worker, deque) + offsetof(Deque, bottom_));
  }
};
#pragma GCC diagnostic pop

thread_local Scheduler::Worker* Scheduler::current_ = nullptr;

Scheduler::Scheduler(SchedulerOptions options)
    : max_workers_(options.max_workers),
      name_prefix_(std::move(options.thread_name_prefix)),
      initializer_(std::move(options.initializer)),
      max_searchers_(static_cast<std::uint32_t>(std::max<std::size_t>(
          2, std::min<std::size_t>(max_workers_, platform::usable_cpu_count()) / 2))),
      workers_(std::make_unique<std::unique_ptr<Worker>[]>(max_workers_)) {
  inspect_link_.self = this;
  asyncio::detail::register_object(asyncio::detail::InspectList::thread_pools, &inspect_link_,
                                   &SchedulerInspection::describe);
}

Scheduler::~Scheduler() {
  asyncio::detail::unregister_object(asyncio::detail::InspectList::thread_pools, &inspect_link_);
  const std::size_t n = num_workers_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    if (workers_[i]->thread.joinable()) {
      std::fputs("concur: internal error: a thread pool was destroyed with running workers\n",
                 stderr);
      std::terminate();
    }
  }
}

const std::string* Scheduler::current_worker_name() noexcept {
  return current_ ? &current_->name : nullptr;
}

bool Scheduler::on_worker_thread() const noexcept {
  return current_ != nullptr && &current_->pool == this;
}

// ---------------------------------------------------------------------------------------------
// Submitting

void Scheduler::submit(StateBase* task) {
  if (on_worker_thread()) {
    // A task submitting a task: it goes on this worker's own deque, which this worker empties
    // before it may exit, so it cannot be lost and needs no place in the gate's count.
    refuse_if_closed(gate_.load(std::memory_order_acquire), task);
    current_->deque.push(task);
    notify();
    return;
  }
  const std::uint64_t gate = gate_.fetch_add(kSubmitUnit, std::memory_order_acquire);
  struct Leave {
    Scheduler& scheduler;
    ~Leave() {
      const std::uint64_t before =
          scheduler.gate_.fetch_sub(kSubmitUnit, std::memory_order_acq_rel);
      // The last submit to finish after shutdown lets the workers re-check whether they may exit.
      if ((before & kShutdown) && submits_of(before) == 1) scheduler.wake_all();
    }
  } leave{*this};
  refuse_if_closed(gate, task);
  bool provided_for = false;
  try {
    provided_for = maybe_spawn();
  } catch (...) {
    task->abandon();
    throw;
  }
  injector_.push(task);
  // One submit starts at most one thread: a worker just started, or one that has just finished
  // its task, takes this task without anyone waking it.
  notify(/*may_spawn=*/!provided_for);
}

void Scheduler::refuse_if_closed(std::uint64_t gate, StateBase* task) {
  if (gate & kBroken) {
    task->abandon();
    throw BrokenThreadPool(broken_message_);
  }
  if (gate & kShutdown) {
    task->abandon();
    throw RuntimeError(
        "concur::ThreadPoolExecutor::submit(): cannot schedule new futures after shutdown; "
        "submit before shutdown() is called or the pool goes out of scope");
  }
}

bool Scheduler::claim_finished_worker() noexcept {
  // Only reached when a thread would otherwise start, so the scan costs nothing on the paths
  // where a worker is searching or parked. The exchange makes each finished worker count for one
  // submit only, as each release of Python's idle semaphore does.
  const std::size_t n = num_workers_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    Worker* worker = workers_[i].get();
    if (worker == current_ || !worker->finished_task.load(std::memory_order_relaxed)) continue;
    if (worker->finished_task.exchange(false, std::memory_order_relaxed)) return true;
  }
  return false;
}

void Scheduler::spawn_if_room() noexcept {
  if (num_workers_.load(std::memory_order_acquire) >= max_workers_) return;
  // A worker still starting will look at every queue before it sleeps: no thread is needed for
  // the work in sight, and Python never starts more threads than submits.
  if (starting_.load(std::memory_order_acquire) != 0 || claim_finished_worker()) return;
  try {
    base::MutexLock lock(spawn_mu_);
    if (num_workers_.load(std::memory_order_relaxed) < max_workers_ && !spawning_closed_) {
      spawn_worker();
    }
  } catch (...) {
    // A worker exists (this runs after a task was queued by a worker or a submit that started
    // one); it will run the task, only later.
  }
}

bool Scheduler::maybe_spawn() {
  // As Python's ThreadPoolExecutor, which starts a thread per submit unless an idle one takes
  // the task: start one while fewer than max_workers exist and either no worker is idle (parked,
  // searching, or just finished with its task) or tasks are already waiting that the idle ones
  // have not taken. True if a worker was started or claimed for this submit.
  if (num_workers_.load(std::memory_order_acquire) >= max_workers_) return false;
  const std::uint64_t word = sleep_word_.load(std::memory_order_acquire);
  if ((searching_of(word) != 0 || idle_of(word) != 0) && !work_visible()) return false;
  if (claim_finished_worker()) return true;
  base::MutexLock lock(spawn_mu_);
  if (num_workers_.load(std::memory_order_relaxed) >= max_workers_ || spawning_closed_) {
    return false;
  }
  return spawn_worker();
}

bool Scheduler::spawn_worker() {
  const std::size_t i = num_workers_.load(std::memory_order_relaxed);
  auto worker = std::make_unique<Worker>(*this, i, name_prefix_ + "_" + std::to_string(i));
  Worker* raw = worker.get();
  starting_.fetch_add(1, std::memory_order_acq_rel);  // before the thread can count itself out
  try {
    raw->thread = std::thread([this, raw] { worker_main(*raw); });
  } catch (const std::system_error& e) {
    starting_.fetch_sub(1, std::memory_order_acq_rel);
    // Python raises from submit() too; with other workers alive we carry on with them.
    if (i > 0) return false;
    throw RuntimeError(std::string("concur::ThreadPoolExecutor::submit(): could not start a worker "
                                   "thread (") +
                       e.what() + "); lower max_workers or raise the process's thread limit");
  }
  workers_[i] = std::move(worker);
  num_workers_.store(i + 1, std::memory_order_release);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Waking and sleeping

void Scheduler::notify(bool may_spawn) noexcept {
  // The push before this was a seq_cst store or exchange, and this is a seq_cst load; a parking
  // worker does a seq_cst read-modify-write here and then seq_cst loads of the queues. In the
  // single total order of those operations one side comes first, so either we see the sleeper or
  // the sleeper sees our task: the wake-up cannot be lost.
  std::uint64_t word = sleep_word_.load(std::memory_order_seq_cst);
  while (searching_of(word) == 0) {
    if (idle_of(word) == 0) {
      // Every worker is busy. A searcher that took the last visible task just before a submit
      // checked (so the submit saw a searcher and started no thread) ends up here too. So does
      // one that took this very submit's task after the submit checked: then nothing waits, and
      // starting a thread would break Python's rule that a worker about to look for work takes
      // the next task (two threads where one was enough). Hence the second look at the queues.
      if (may_spawn && work_visible()) spawn_if_room();
      return;
    }
    Worker* sleeper = nullptr;
    {
      base::MutexLock lock(idle_mu_);
      word = sleep_word_.load(std::memory_order_relaxed);
      if (searching_of(word) != 0 || idle_of(word) == 0) return;
      // Claim: one sleeper fewer, one searcher more (the one we wake starts as a searcher).
      if (!sleep_word_.compare_exchange_strong(word, word + 1 - kIdleUnit,
                                               std::memory_order_seq_cst)) {
        continue;
      }
      sleeper = idle_.back();
      idle_.pop_back();
      sleeper->in_idle = false;
    }
    sleeper->parker.unpark();
    return;
  }
}

bool Scheduler::try_start_searching(Worker& worker) noexcept {
  std::uint64_t word = sleep_word_.load(std::memory_order_relaxed);
  do {
    if (searching_of(word) >= max_searchers_) return false;
  } while (!sleep_word_.compare_exchange_weak(word, word + 1, std::memory_order_seq_cst,
                                              std::memory_order_relaxed));
  worker.searching = true;
  return true;
}

void Scheduler::stop_searching(Worker& worker) noexcept {
  worker.searching = false;
  const std::uint64_t before = sleep_word_.fetch_sub(1, std::memory_order_seq_cst);
  // The last searcher leaving while work is left hands the search to a sleeper.
  if (searching_of(before) == 1 && work_visible()) notify();
}

void Scheduler::park(Worker& worker, Condition* awaited, const Deadline& deadline) {
  {
    base::MutexLock lock(idle_mu_);
    idle_.push_back(&worker);
    worker.in_idle = true;
    sleep_word_.fetch_add(kIdleUnit - (worker.searching ? 1 : 0), std::memory_order_seq_cst);
  }
  worker.searching = false;
  // Re-check after announcing ourselves asleep: a submit that did not see us has pushed by now.
  bool stay_awake = work_visible() || (awaited ? awaited->ready() : may_exit());
  bool subscribed = false;
  if (!stay_awake && awaited != nullptr) {
    subscribed = awaited->subscribe(worker.parker);
    stay_awake = !subscribed;
  }
  if (!stay_awake) worker.parker.park(deadline);
  if (subscribed) awaited->unsubscribe();
  leave_idle(worker);
}

void Scheduler::leave_idle(Worker& worker) noexcept {
  base::MutexLock lock(idle_mu_);
  if (worker.in_idle) {
    idle_.erase(std::find(idle_.begin(), idle_.end(), &worker));
    worker.in_idle = false;
    sleep_word_.fetch_sub(kIdleUnit, std::memory_order_seq_cst);
  } else {
    worker.searching = true;  // whoever woke us counted us as a searcher
  }
}

void Scheduler::wake_all() noexcept {
  std::vector<Worker*> sleepers;
  {
    base::MutexLock lock(idle_mu_);
    const std::uint64_t n = idle_.size();
    for (Worker* w : idle_) w->in_idle = false;
    sleepers.swap(idle_);
    sleep_word_.fetch_add(n - n * kIdleUnit, std::memory_order_seq_cst);
  }
  for (Worker* w : sleepers) w->parker.unpark();
}

// ---------------------------------------------------------------------------------------------
// Finding work

bool Scheduler::work_visible() const noexcept {
  if (injector_.maybe_nonempty()) return true;
  const std::size_t n = num_workers_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    if (!workers_[i]->deque.empty()) return true;
  }
  return false;
}

bool Scheduler::may_exit() const noexcept {
  const std::uint64_t gate = gate_.load(std::memory_order_seq_cst);
  return (gate & kShutdown) && submits_of(gate) == 0 && !work_visible();
}

StateBase* Scheduler::take_from_injector(Worker& worker) {
  if (!injector_.maybe_nonempty() || !injector_.try_lock()) return nullptr;
  StateBase* batch[kBatch];
  std::size_t n = 0;
  while (n < kBatch && (batch[n] = injector_.pop()) != nullptr) ++n;
  injector_.unlock();
  if (n == 0) return nullptr;
  // Pushed newest first, so that popping them back returns them in submission order.
  for (std::size_t i = n; i-- > 1;) worker.deque.push(batch[i]);
  if (n > 1) notify();
  return batch[0];
}

StateBase* Scheduler::steal(Worker& worker) {
  const std::size_t n = num_workers_.load(std::memory_order_acquire);
  if (n < 2) return nullptr;
  worker.rng ^= worker.rng << 13;
  worker.rng ^= worker.rng >> 7;
  worker.rng ^= worker.rng << 17;
  const std::size_t start = worker.rng % n;
  for (std::size_t k = 0; k < n; ++k) {
    Worker* victim = workers_[(start + k) % n].get();
    if (victim == &worker) continue;
    if (StateBase* task = victim->deque.steal()) return task;
  }
  return nullptr;
}

StateBase* Scheduler::find_task(Worker& worker) {
  if (++worker.tick % kInjectorFairness == 0) {
    if (StateBase* task = take_from_injector(worker)) return task;
  }
  if (StateBase* task = worker.deque.pop()) return task;
  if (StateBase* task = take_from_injector(worker)) return task;
  return steal(worker);
}

StateBase* Scheduler::next_task(Worker& worker, Condition* awaited, const Deadline& deadline) {
  Clock::time_point spin_end{};
  for (std::uint32_t round = 1;; ++round) {
    StateBase* task = nullptr;
    const bool stop = (awaited != nullptr && awaited->ready()) ||
                      (task = find_task(worker)) != nullptr || (awaited == nullptr && may_exit()) ||
                      (deadline && Clock::now() >= *deadline);
    if (stop) {
      if (task != nullptr) worker.finished_task.store(false, std::memory_order_relaxed);
      if (worker.searching) stop_searching(worker);
      return task;
    }
    if (!worker.searching && try_start_searching(worker)) {
      spin_end = Clock::now() + kSearchSpin;
    }
    if (worker.searching && (round % 16 != 0 || Clock::now() < spin_end)) {
      // Pause, and from time to time yield: if the thread that will hand us work shares our
      // core, pure spinning would keep it from running for our whole spin.
      if (round > 128 && round % 16 == 0) {
        std::this_thread::yield();
      } else {
        platform::cpu_relax();
      }
      continue;
    }
    park(worker, awaited, deadline);
    if (worker.searching) spin_end = Clock::now() + kSearchSpin;  // a submit woke us to search
  }
}

// ---------------------------------------------------------------------------------------------
// Running

void Scheduler::run_task(Worker&, StateBase* task) noexcept {
  const std::uint32_t disposal = disposal_.load(std::memory_order_acquire);
  if (disposal & kBroken) {
    task->fail(broken_error_);
    task->abandon();
  } else if (disposal & kCancelQueued) {
    task->cancel();
    task->abandon();
  } else {
    task->run();
  }
}

void Scheduler::worker_main(Worker& worker) {
  current_ = &worker;
  current_helping_context() = &worker;
  platform::set_current_thread_name(worker.name);
  if (initializer_) {
    try {
      initializer_();
    } catch (...) {
      const std::string line = "concur: exception in initializer of " + worker.name + ": " +
                               describe_exception(std::current_exception()) + "\n";
      std::fputs(line.c_str(), stderr);
      break_pool(std::current_exception());
    }
  }
  // A worker whose initializer failed stays, failing tasks instead of running them, so that even
  // a pool whose every initializer failed completes every future it accepted.
  callable_returned_flag = &worker.finished_task;
  worker.thread_id = platform::current_thread_id();
  starting_.fetch_sub(1, std::memory_order_acq_rel);
  while (StateBase* task = next_task(worker, nullptr, std::nullopt)) {
    worker.in_task.store(true, std::memory_order_relaxed);
    run_task(worker, task);
    worker.in_task.store(false, std::memory_order_relaxed);
    worker.finished_task.store(true, std::memory_order_relaxed);  // also after a cancelled task
  }
  callable_returned_flag = nullptr;
  current_helping_context() = nullptr;
  current_ = nullptr;
}

bool Scheduler::help_until(Worker& worker, Condition& condition, const Deadline& deadline) {
  if (worker.help_depth >= kMaxHelpDepth) return park_until(condition, deadline);
  ++worker.help_depth;
  // A task run while helping returns into the task that waits, which is still running: it must not
  // mark the worker as finished.
  struct Unnest {
    unsigned& depth;
    std::atomic<bool>* flag = std::exchange(callable_returned_flag, nullptr);
    ~Unnest() {
      --depth;
      callable_returned_flag = flag;
    }
  } unnest{worker.help_depth};
  while (StateBase* task = next_task(worker, &condition, deadline)) run_task(worker, task);
  return condition.ready();
}

// ---------------------------------------------------------------------------------------------
// Shutting down and breaking

void Scheduler::drain(const std::function<void(StateBase*)>& dispose) noexcept {
  while (!injector_.try_lock()) std::this_thread::yield();
  while (StateBase* task = injector_.pop()) dispose(task);
  injector_.unlock();
  const std::size_t n = num_workers_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    WorkStealingDeque<StateBase*>& deque = workers_[i]->deque;
    while (!deque.empty()) {
      if (StateBase* task = deque.steal()) dispose(task);
    }
  }
}

void Scheduler::break_pool(std::exception_ptr error) noexcept {
  std::call_once(broken_once_, [&] {
    broken_message_ =
        "concur::ThreadPoolExecutor: a worker's initializer threw (" + describe_exception(error) +
        "), so the pool is broken and runs no more tasks; fix the initializer or catch inside it";
    broken_error_ = std::make_exception_ptr(BrokenThreadPool(broken_message_));
    disposal_.fetch_or(kBroken, std::memory_order_release);
    gate_.fetch_or(kBroken, std::memory_order_release);
  });
  drain([this](StateBase* task) {
    task->fail(broken_error_);
    task->abandon();
  });
}

void Scheduler::shutdown(bool wait, bool cancel_futures) {
  // Refused before anything changes, so the mistaken call leaves the pool as it was.
  if (wait && on_worker_thread()) {
    throw RuntimeError(
        "concur::ThreadPoolExecutor::shutdown(wait=true): called from one of the pool's own "
        "workers, it would wait for itself; call shutdown(false) from inside a task");
  }
  if (cancel_futures) disposal_.fetch_or(kCancelQueued, std::memory_order_release);
  gate_.fetch_or(kShutdown, std::memory_order_seq_cst);
  if (cancel_futures) {
    drain([](StateBase* task) {
      task->cancel();
      task->abandon();
    });
  }
  wake_all();
  if (wait) join_all();
}

void Scheduler::join_all() {
  // Submits that passed the gate before shutdown may still be pushing (or starting a worker).
  while (submits_of(gate_.load(std::memory_order_acquire)) != 0) std::this_thread::yield();
  base::MutexLock lock(join_mu_);
  std::size_t n = 0;
  {
    // No worker starts after this: the ones counted here are all there will be to join.
    base::MutexLock spawn_lock(spawn_mu_);
    spawning_closed_ = true;
    n = num_workers_.load(std::memory_order_acquire);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (workers_[i]->thread.joinable()) workers_[i]->thread.join();
  }
  // Only a task accepted while no worker existed can be left; nobody will run it now.
  drain([](StateBase* task) {
    task->cancel();
    task->abandon();
  });
}

}  // namespace concur::detail
