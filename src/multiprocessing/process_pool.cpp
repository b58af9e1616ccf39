// ProcessPoolExecutor, the parent's side: one manager thread (epoll over the workers' sockets and
// exit watches) that batches tasks to the workers and completes futures from their answers. The
// worker's side is pool_worker.cpp; the control messages between them pool_protocol.hpp.
//
// Batching: the manager appends task frames for a worker to one buffer and writes it when it
// drains events; a worker runs every task that has arrived before it writes their results back in
// one write. How many tasks a worker may have in flight adapts to how long tasks take (the workers
// report their busy time), so tiny tasks stream and long ones still spread over the workers.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "concur/base/mutex.hpp"
#include "concur/errors.hpp"
#include "concur/process_pool.hpp"
#include "inspect/layout.hpp"
#include "multiprocessing/launcher.hpp"
#include "multiprocessing/pool_protocol.hpp"
#include "multiprocessing/shared_ring.hpp"
#include "multiprocessing/task_message.hpp"
#include "platform/poller.hpp"
#include "platform/process.hpp"
#include "platform/threads.hpp"

namespace concur {

namespace mp = multiprocessing;
namespace mpd = multiprocessing::detail;

namespace {

using multiprocessing::detail::kExit;
using multiprocessing::detail::kInitFailed;
using multiprocessing::detail::kReady;
using multiprocessing::detail::ResultMessage;
using multiprocessing::detail::TaskMessage;

// Enough tasks in flight per worker to cover this much work, so that its socket never runs dry.
// Until the first results say how long tasks take, one each: a second long task queued behind a
// first on one worker would wait while another worker idles.
constexpr double kInFlightNs = 200'000;
constexpr std::size_t kMinInFlight = 1;
constexpr std::size_t kMaxInFlight = 256;

// Python's rule: with max_tasks_per_child and no context given, the pool uses spawn (replacement
// workers cannot be forked safely from a process with threads); otherwise the program's default.
mp::StartMethod pool_start_method(const ProcessPoolOptions& options) {
  if (options.start_method) return *options.start_method;
  return options.max_tasks_per_child != 0 ? mp::StartMethod::spawn : mp::get_start_method();
}

// Python 3.13's rule: one worker per CPU this process may use.
std::size_t default_workers() {
  return platform::usable_cpu_count();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The parent side

namespace detail {

class ProcessPoolCore {
 public:
  explicit ProcessPoolCore(ProcessPoolOptions options);
  ~ProcessPoolCore();

  struct Pending {
    std::uint64_t id = 0;
    StateBase* state = nullptr;
    void (*completer)(StateBase*, const std::vector<std::string_view>&) = nullptr;
    std::string function;
    std::string signature;
    std::vector<std::string> args;
    std::vector<int> fds;
    std::size_t inputs = 0;      // how many calls the message carries (chunks carry several)
    std::uint64_t ring_end = 0;  // the end of its arguments in its worker's ring (0: none there)
    ~Pending() {
      for (int fd : fds) ::close(fd);
    }
  };

  void schedule(std::unique_ptr<Pending> task);
  void shutdown(bool wait, bool cancel_futures);
  void force_shutdown(int sig);
  std::size_t max_workers() const { return max_workers_; }
  std::size_t processes_started() const { return started_.load(); }
  std::vector<int> worker_pids() const;

 private:
  struct Worker {
    mpd::Launched launched;
    mpd::FrameDecoder decoder;
    std::string out;
    std::vector<int> out_fds;  // descriptors to attach at the start of `out` (one frame's)
    std::deque<std::unique_ptr<Pending>> in_flight;
    // The shared-memory rings of large values (shared_ring.hpp), made on first need: arguments
    // (written here), results (written by the worker, which sends its descriptor).
    std::unique_ptr<mpd::SharedRing> args_ring;
    std::unique_ptr<mpd::SharedRing> results_ring;
    bool args_ring_failed = false;  // memfd or mmap failed once: the socket carries everything
    std::uint64_t sent = 0;
    bool ready = false;
    bool exit_sent = false;
    bool exited = false;
    std::string init_failure;
    std::optional<long> oom_kills_at_start;  // the cgroup's oom_kill count when it started

    // For concur-ps, which reads these from another process; nothing here reads them. Its pid,
    // how many tasks it holds (sent, not answered), and the function of the oldest of them (the
    // one it runs), copied under a sequence count that is odd while the copy is written.
    int pid = 0;
    std::uint64_t holding = 0;
    std::atomic<std::uint32_t> running_seq{0};
    char running[64] = {};
    const Pending* published_front = nullptr;
    asyncio::detail::InspectLink inspect_link;
    // After in_flight changed.
    void publish() {
      holding = in_flight.size();
      const Pending* front = in_flight.empty() ? nullptr : in_flight.front().get();
      if (front == published_front) return;
      published_front = front;
      const std::uint32_t seq = running_seq.load(std::memory_order_relaxed);
      running_seq.store(seq + 1, std::memory_order_relaxed);
      // The odd count must be visible before any byte of the name: a seqlock's write barrier.
      // GCC's ThreadSanitizer refuses fences (-Wtsan); it has nothing to check here anyway, as
      // only another process reads these.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif
      std::atomic_thread_fence(std::memory_order_release);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
      const std::string_view name = front != nullptr ? std::string_view(front->function) : "";
      const std::size_t n = std::min(name.size(), sizeof running - 1);
      std::memcpy(running, name.data(), n);
      running[n] = '\0';
      running_seq.store(seq + 2, std::memory_order_release);
    }
  };
  friend struct ProcessPoolInspection;
  // After queue_ changed.
  void publish_queue() CONCUR_REQUIRES(mu_) {
    queued_count_ = queue_.size();
  }

  void run();
  void wake();
  bool handle_events(int timeout_ms);
  void on_readable(Worker& w);
  void on_result(Worker& w, const mpd::Frame& frame);
  void on_exit(Worker& w);
  void dispatch();
  void flush(Worker& w);
  void share_large_arguments(Worker& w, TaskMessage& message, Pending& task);
  void start_worker();
  void break_pool(std::string why);
  bool quiescent() const;
  void stop_workers();
  std::size_t in_flight_limit() const;
  void fail_all(std::deque<std::unique_ptr<Pending>>& tasks, const std::exception_ptr& error);
  std::exception_ptr worker_died(const Worker& w, int code) const;

  const std::size_t max_workers_;
  const mp::StartMethod method_;
  const std::optional<mp::Call> initializer_;
  const std::uint64_t max_tasks_per_child_;
  const bool replace_dead_workers_;
  const std::uint64_t shared_threshold_;
  std::atomic<std::size_t> started_{0};

  // Shared between the callers (submit, shutdown, worker_pids) and the manager thread.
  mutable base::Mutex mu_;
  // submitted, not yet sent to a worker
  std::deque<std::unique_ptr<Pending>> queue_ CONCUR_GUARDED_BY(mu_);
  bool shutdown_ CONCUR_GUARDED_BY(mu_) = false;
  bool broken_ CONCUR_GUARDED_BY(mu_) = false;
  std::string broken_message_ CONCUR_GUARDED_BY(mu_);
  base::CondVar stopped_cv_;
  bool stopped_ CONCUR_GUARDED_BY(mu_) = false;
  std::vector<int> pids_ CONCUR_GUARDED_BY(mu_);  // for worker_pids()
  // terminate_workers()/kill_workers(): for the manager to send, and whether it has sent it.
  int force_signal_ CONCUR_GUARDED_BY(mu_) = 0;
  bool forced_ CONCUR_GUARDED_BY(mu_) = false;

  platform::Poller poller_;  // the manager sleeps here; wake() from any thread
  std::thread manager_;
  std::atomic<std::uint64_t> next_id_{1};

  // Manager thread only.
  std::vector<std::unique_ptr<Worker>> workers_;
  double avg_task_ns_ = 0;
  unsigned worker_counter_ = 0;
  const bool spin_ = platform::usable_cpu_count() >= 2;  // see mpd::kAnswerSpin
  std::chrono::steady_clock::time_point last_event_{};

  // This pool in the process's list that concur-ps reads (src/inspect/layout.hpp): how many
  // tasks wait in queue_ (its size, published), and the head of the list of live workers.
  std::uint64_t queued_count_ CONCUR_GUARDED_BY(mu_) = 0;
  asyncio::detail::InspectLink inspect_link_;
  asyncio::detail::InspectLink* inspect_workers_ = nullptr;
};

// The offsets concur-ps follows from a pool to its workers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
struct ProcessPoolInspection {
  static std::uint32_t at(std::size_t offset) { return static_cast<std::uint32_t>(offset); }
  static void describe(asyncio::detail::InspectAnchor& a) {
    using Core = ProcessPoolCore;
    using Worker = ProcessPoolCore::Worker;
    a.ppool_max_workers = at(offsetof(Core, max_workers_));
    a.ppool_queued = at(offsetof(Core, queued_count_));
    a.ppool_workers = at(offsetof(Core, inspect_workers_));
    a.pworker_pid = at(offsetof(Worker, pid));
    a.pworker_in_flight = at(offsetof(Worker, holding));
    a.pworker_sent = at(offsetof(Worker, sent));
    a.pworker_seq = at(offsetof(Worker, running_seq));
    a.pworker_running = at(offsetof(Worker, running));
    a.pworker_running_size = at(sizeof(Worker::running));
  }
};
#pragma GCC diagnostic pop

ProcessPoolCore::ProcessPoolCore(ProcessPoolOptions options)
    : max_workers_(options.max_workers.value_or(default_workers())),
      method_(pool_start_method(options)),
      initializer_(std::move(options.initializer)),
      max_tasks_per_child_(options.max_tasks_per_child),
      replace_dead_workers_(options.on_worker_death == WorkerDeath::replace),
      shared_threshold_(options.shared_memory_threshold) {
  if (options.max_workers && *options.max_workers == 0) {
    throw std::invalid_argument(
        "concur::ProcessPoolExecutor: max_workers must be greater than 0; leave it unset for one "
        "worker per core");
  }
  mpd::refuse_if_guard_missing();
  if (method_ == mp::StartMethod::fork && max_tasks_per_child_ != 0) {
    throw std::invalid_argument(
        "concur::ProcessPoolExecutor: max_tasks_per_child is incompatible with the fork start "
        "method (replacement workers would be forked from a process with threads); leave "
        "start_method unset (the pool then uses spawn, as Python does) or pass spawn or "
        "forkserver");
  }
  if (method_ == mp::StartMethod::fork && replace_dead_workers_) {
    throw std::invalid_argument(
        "concur::ProcessPoolExecutor: on_worker_death = replace is incompatible with the fork "
        "start method (a replacement would be forked from a process with threads); use "
        "forkserver (the default) or spawn");
  }
  if (method_ == mp::StartMethod::fork) {
    // All now, from this thread, before the pool's own thread exists.
    const std::size_t threads = mpd::thread_count();
    if (threads > 1 && !options.allow_fork_with_threads) {
      throw RuntimeError(
          "concur::ProcessPoolExecutor: the fork start method with " + std::to_string(threads) +
          " threads running can deadlock the workers (a lock another thread holds stays locked "
          "in them); use forkserver (the default) or spawn, or set allow_fork_with_threads");
    }
    for (std::size_t i = 0; i < max_workers_; ++i) start_worker();
  }
  inspect_link_.self = this;
  asyncio::detail::register_object(asyncio::detail::InspectList::process_pools, &inspect_link_,
                                   &ProcessPoolInspection::describe);
  manager_ = std::thread([this] { run(); });
}

ProcessPoolCore::~ProcessPoolCore() {
  asyncio::detail::unregister_object(asyncio::detail::InspectList::process_pools, &inspect_link_);
  if (manager_.joinable()) manager_.join();
  for (auto& w : workers_) asyncio::detail::unlink_part(&inspect_workers_, &w->inspect_link);
}

void ProcessPoolCore::wake() {
  poller_.wake();
}

void ProcessPoolCore::schedule(std::unique_ptr<Pending> task) {
  task->id = next_id_.fetch_add(1);
  {
    base::MutexLock lock(mu_);
    if (broken_) {
      task->state->release();
      throw BrokenProcessPool(broken_message_);
    }
    if (shutdown_) {
      task->state->release();
      throw RuntimeError(
          "concur::ProcessPoolExecutor::submit(): cannot schedule new futures after shutdown; "
          "submit before shutdown() is called or the pool goes out of scope");
    }
    queue_.push_back(std::move(task));
    publish_queue();
  }
  wake();
}

void ProcessPoolCore::shutdown(bool wait, bool cancel_futures) {
  std::deque<std::unique_ptr<Pending>> cancelled;
  {
    base::MutexLock lock(mu_);
    shutdown_ = true;
    if (cancel_futures) cancelled.swap(queue_);
    publish_queue();
  }
  for (auto& t : cancelled) {
    t->state->cancel();
    t->state->release();
  }
  wake();
  if (wait) {
    if (std::this_thread::get_id() == manager_.get_id()) {
      throw RuntimeError(
          "concur::ProcessPoolExecutor::shutdown(wait=true): called from a future's callback, "
          "which runs on the pool's own thread; call shutdown(false) there");
    }
    base::MutexLock lock(mu_);
    while (!stopped_) stopped_cv_.wait(lock);
  }
}

void ProcessPoolCore::force_shutdown(int sig) {
  shutdown(false, true);
  {
    base::MutexLock lock(mu_);
    force_signal_ = sig;
  }
  wake();
  // The manager thread owns the workers (only it knows which are unreaped, so a signal never
  // reaches a recycled pid); as Python's, this returns once every live worker is signalled.
  if (std::this_thread::get_id() == manager_.get_id()) return;
  base::MutexLock lock(mu_);
  while (!forced_ && !stopped_) stopped_cv_.wait(lock);
}

std::vector<int> ProcessPoolCore::worker_pids() const {
  base::MutexLock lock(mu_);
  return pids_;
}

std::size_t ProcessPoolCore::in_flight_limit() const {
  if (avg_task_ns_ <= 0) return kMinInFlight;
  const auto n = static_cast<std::size_t>(kInFlightNs / avg_task_ns_);
  return std::clamp(n, kMinInFlight, kMaxInFlight);
}

void ProcessPoolCore::start_worker() {
  mpd::Bootstrap bootstrap;
  bootstrap.mode = mpd::Bootstrap::kPoolWorker;
  bootstrap.process_name = "ProcessPoolExecutor-worker-" + std::to_string(++worker_counter_);
  if (initializer_) bootstrap.call = *initializer_;
  bootstrap.max_tasks = max_tasks_per_child_;
  bootstrap.shared_memory_threshold = shared_threshold_;
  auto w = std::make_unique<Worker>();
  if (method_ == mp::StartMethod::fork) {
    w->launched = mpd::launch_fork(
        [bootstrap](int channel) {
          mpd::FrameDecoder decoder;
          return mpd::run_pool_worker(channel, decoder, bootstrap);
        },
        /*allow_threads=*/true, /*keep_channel=*/true);
  } else {
    w->launched = mpd::launch(method_, bootstrap, {}, /*keep_channel=*/true);
  }
  fcntl(w->launched.channel, F_SETFL, fcntl(w->launched.channel, F_GETFL) | O_NONBLOCK);
  const auto token = reinterpret_cast<std::uintptr_t>(w.get());
  bool watched = poller_.watch(w->launched.channel, token);
  if (watched && w->launched.watch.fd() >= 0) {
    // The low bit marks "this worker's exit watch" (Worker objects are at least 2-aligned).
    if (!poller_.watch(w->launched.watch.fd(), token | 1)) {
      const int error = errno;
      poller_.unwatch(w->launched.channel);
      errno = error;
      watched = false;
    }
  }
  if (!watched) {
    // A worker the pool cannot hear from would hold its tasks forever (found by tests/faults/):
    // stop it and say why, as for a worker that could not start.
    const int error = errno;
    w->launched.watch.signal(SIGKILL);
    w->launched.watch.wait(std::nullopt);
    ::close(w->launched.channel);
    throw OSError(error,
                  "concur::ProcessPoolExecutor: could not watch a worker process (epoll_ctl); "
                  "free some memory or descriptors");
  }
  ++started_;
  if (replace_dead_workers_) w->oom_kills_at_start = platform::oom_kills_in_this_cgroup();
  {
    base::MutexLock lock(mu_);
    pids_.push_back(w->launched.watch.pid());
  }
  w->pid = w->launched.watch.pid();
  w->inspect_link.self = w.get();
  asyncio::detail::link_part(&inspect_workers_, &w->inspect_link);
  workers_.push_back(std::move(w));
}

void ProcessPoolCore::dispatch() {
  const std::size_t limit = in_flight_limit();
  // The least busy first, so that a queued task goes to an idle worker if there is one.
  std::vector<Worker*> order;
  for (auto& w : workers_) order.push_back(w.get());
  std::stable_sort(order.begin(), order.end(), [](const Worker* a, const Worker* b) {
    return a->in_flight.size() < b->in_flight.size();
  });
  for (Worker* w : order) {
    if (w->exit_sent) continue;
    std::size_t room = limit > w->in_flight.size() ? limit - w->in_flight.size() : 0;
    if (max_tasks_per_child_ != 0) {
      room = std::min<std::size_t>(room,
                                   max_tasks_per_child_ - std::min(w->sent, max_tasks_per_child_));
    }
    // Take the tasks under the lock and mark them running there: from then on shutdown's
    // cancel_futures cannot reach them, exactly as for Python's call queue.
    std::vector<std::unique_ptr<Pending>> batch;
    {
      base::MutexLock lock(mu_);
      while (batch.size() < room && !queue_.empty()) {
        std::unique_ptr<Pending> task = std::move(queue_.front());
        queue_.pop_front();
        if (task->state->try_start()) {
          batch.push_back(std::move(task));
        } else {
          task->state->release();  // cancelled while queued
        }
      }
      publish_queue();
    }
    for (auto& task : batch) {
      if (!task->fds.empty()) flush(*w);  // a frame with descriptors starts a write of its own
      task->inputs = task->args.size();
      TaskMessage message{task->id, task->function, task->signature, std::move(task->args), {}};
      share_large_arguments(*w, message, *task);
      const std::size_t at =
          mpd::begin_frame(w->out, mpd::kTask, 0, static_cast<std::uint16_t>(task->fds.size()));
      mp::serialize_into(w->out, message);
      mpd::end_frame(w->out, at);
      w->out_fds = std::move(task->fds);
      task->fds.clear();
      if (!w->out_fds.empty()) flush(*w);
      ++w->sent;
      w->in_flight.push_back(std::move(task));
    }
    if (!batch.empty()) w->publish();
  }
  // Start another worker while there is work that the current ones cannot take yet.
  std::size_t live = 0;
  bool all_busy = true;
  for (auto& w : workers_) {
    if (w->exit_sent) continue;
    ++live;
    if (w->in_flight.empty()) all_busy = false;
  }
  bool queued = false;
  {
    base::MutexLock lock(mu_);
    queued = !queue_.empty();
  }
  if (queued && all_busy && live < max_workers_ && method_ != mp::StartMethod::fork) {
    try {
      start_worker();
    } catch (const std::exception& e) {
      if (live == 0) {
        break_pool(std::string("concur::ProcessPoolExecutor: could not start a worker process (") +
                   e.what() + ")");
      }
    }
  }
}

void ProcessPoolCore::flush(Worker& w) {
  if (w.out.empty()) return;
  try {
    mpd::send_all(w.launched.channel, w.out, w.out_fds, std::nullopt);
  } catch (const EOFError&) {
    // The worker is gone; its exit is handled when the watch fires.
  }
  for (int fd : w.out_fds) ::close(fd);
  w.out_fds.clear();
  w.out.clear();
}

// Moves each argument of at least shared_threshold_ bytes into w's ring (made and announced the
// first time), leaving a span in its place: the copy into the ring replaces the copy into the
// outgoing buffer, and the worker decodes it where it lies. One that does not fit goes as before.
void ProcessPoolCore::share_large_arguments(Worker& w, TaskMessage& message, Pending& task) {
  if (shared_threshold_ == 0) return;
  for (std::size_t i = 0; i < message.args.size(); ++i) {
    std::string& arg = message.args[i];
    if (arg.size() < shared_threshold_) continue;
    if (!w.args_ring) {
      if (w.args_ring_failed) return;
      try {
        w.args_ring = mpd::SharedRing::create();
        flush(w);  // what is queued goes first: the announcement must precede its first use
        std::string frame;
        mpd::append_frame(frame, mpd::kControl, 0, mpd::kRing, 1);
        mpd::send_all(w.launched.channel, frame, {w.args_ring->fd()}, std::nullopt);
      } catch (const OSError&) {
        w.args_ring.reset();
        w.args_ring_failed = true;
        return;
      } catch (const EOFError&) {
        return;  // the worker is gone; its exit is handled when the watch fires
      }
    }
    const std::optional<std::uint64_t> position = w.args_ring->allocate(arg.size());
    if (!position) continue;
    std::memcpy(w.args_ring->data(*position), arg.data(), arg.size());
    message.shared.push_back({static_cast<std::uint32_t>(i), *position, arg.size()});
    task.ring_end = message.shared.back().end();
    std::string().swap(arg);
  }
}

void ProcessPoolCore::on_result(Worker& w, const mpd::Frame& frame) {
  const auto message = mp::deserialize<ResultMessage>(frame.payload);
  if (w.in_flight.empty() || w.in_flight.front()->id != message.id) {
    break_pool("concur::ProcessPoolExecutor: a worker answered a task it was not given");
    return;
  }
  // A known status and one result per call sent: a short map chunk would lose values silently.
  // (Throws ProtocolError while the task is still in flight, so break_pool() fails its future.)
  mpd::check_answer(message, w.in_flight.front()->inputs);
  // Large results lie in the worker's ring; a span outside it is as corrupt as a bad header.
  const std::vector<std::string_view> results =
      mpd::resolve_shared(message.results, message.shared, w.results_ring.get());
  std::unique_ptr<Pending> task = std::move(w.in_flight.front());
  w.in_flight.pop_front();
  w.publish();
  const double per_task = static_cast<double>(message.busy_ns) /
                          static_cast<double>(std::max<std::size_t>(1, task->inputs));
  avg_task_ns_ = avg_task_ns_ <= 0 ? per_task : 0.9 * avg_task_ns_ + 0.1 * per_task;
  if (message.status == ResultMessage::kOk) {
    task->completer(task->state, results);
  } else {
    task->state->fail(std::make_exception_ptr(
        RemoteError(message.error_type, message.error_message, message.pid)));
  }
  task->state->release();
  // Both rings are given back in order: the worker answers its tasks in the order it got them,
  // and it is done with a task's arguments once it has answered.
  if (!message.shared.empty()) w.results_ring->release_through(message.shared.back().end());
  if (task->ring_end != 0) w.args_ring->release_through(task->ring_end);
}

void ProcessPoolCore::on_readable(Worker& w) {
  const bool open = w.decoder.read_available(w.launched.channel);
  try {
    while (auto frame = w.decoder.next()) {
      if (frame->kind == mpd::kResult) {
        on_result(w, *frame);
      } else if (frame->kind == mpd::kControl) {
        if (frame->payload == kReady) {
          w.ready = true;
        } else if (frame->payload.rfind(kInitFailed, 0) == 0) {
          w.init_failure = frame->payload.substr(kInitFailed.size() + 1);
        } else if (frame->payload == mpd::kRing && frame->fds.size() == 1) {
          const int fd = frame->fds[0];
          frame->fds.clear();
          w.results_ring = mpd::SharedRing::attach(fd);  // takes the descriptor
        }
      }
      for (int fd : frame->fds) ::close(fd);
    }
  } catch (const ProtocolError& e) {
    break_pool(std::string("concur::ProcessPoolExecutor: a worker sent a corrupt message (") +
               e.what() + ")");
  } catch (const OSError& e) {
    break_pool(std::string("concur::ProcessPoolExecutor: could not read a worker's results (") +
               e.what() + "); free some memory or descriptors");
  }
  if (!open && !w.exited) {
    poller_.unwatch(w.launched.channel);
    if (w.launched.watch.fd() < 0) on_exit(w);  // no exit watch: the end of the socket tells
  }
}

void ProcessPoolCore::on_exit(Worker& w) {
  w.exited = true;
  w.launched.watch.wait(std::nullopt);
  if (w.launched.channel >= 0) {
    on_readable(w);  // results it wrote before exiting
  }
  const int code = w.launched.watch.exitcode().value_or(255);
  bool forced = false;
  bool broken = false;
  {
    base::MutexLock lock(mu_);
    forced = forced_;
    broken = broken_;
  }
  const bool expected = w.exit_sent || (max_tasks_per_child_ != 0 && code == 0 &&
                                        w.sent >= max_tasks_per_child_ && w.in_flight.empty());
  const bool replaceable = replace_dead_workers_ && w.init_failure.empty() &&
                           code != mp::kMainGuardMissingExitCode && !forced;
  if (!expected && !broken && replaceable) {
    // on_worker_death = replace: only what this worker held fails; the pool goes on, and
    // dispatch() starts a new worker when there is work for it.
    fail_all(w.in_flight, worker_died(w, code));
  } else if (!expected && !broken) {
    std::string why;
    if (!w.init_failure.empty()) {
      const auto nl = w.init_failure.find('\n');
      why = "concur::ProcessPoolExecutor: a worker's initializer threw (" +
            w.init_failure.substr(0, nl) + ": " + w.init_failure.substr(nl + 1) +
            "), so the pool is broken; fix the initializer or catch inside it";
    } else if (code == mp::kMainGuardMissingExitCode) {
      why =
          "concur::ProcessPoolExecutor: a worker exited before running anything because this "
          "program's main() does not call concur::multiprocessing::main_guard(argc, argv) "
          "first; add that line";
    } else if (forced) {
      why =
          "concur::ProcessPoolExecutor: terminate_workers() or kill_workers() stopped the pool's "
          "workers while the future was running (worker pid " +
          std::to_string(w.launched.watch.pid()) + ", signal " + std::to_string(-code) +
          "); the pool runs no more tasks";
    } else {
      why =
          "concur::ProcessPoolExecutor: a process in the pool was terminated abruptly while the "
          "future was running or pending (worker pid " +
          std::to_string(w.launched.watch.pid()) +
          (code < 0 ? ", killed by signal " + std::to_string(-code)
                    : ", exit code " + std::to_string(code)) +
          "); the pool is broken and runs no more tasks";
    }
    break_pool(why);
  }
  if (w.launched.channel >= 0) {
    poller_.unwatch(w.launched.channel);
    ::close(w.launched.channel);
    w.launched.channel = -1;
  }
  const pid_t pid = w.launched.watch.pid();
  std::string message;
  {
    base::MutexLock lock(mu_);
    message = broken_message_;
  }
  auto exception = std::make_exception_ptr(BrokenProcessPool(
      message.empty() ? "concur::ProcessPoolExecutor: a worker exited with tasks in flight"
                      : message));
  fail_all(w.in_flight, exception);
  {
    base::MutexLock lock(mu_);
    std::erase(pids_, pid);
  }
  asyncio::detail::unlink_part(&inspect_workers_, &w.inspect_link);
  std::erase_if(workers_, [&](const auto& p) { return p.get() == &w; });
}

// The error of the futures a dead worker held (on_worker_death = replace): how it ended, and
// whether the out-of-memory killer of the cgroup acted since it started (only a SIGKILL can be
// that; another process of the cgroup may have been its victim, which the message says).
std::exception_ptr ProcessPoolCore::worker_died(const Worker& w, int code) const {
  const int pid = w.launched.watch.pid();
  const int sig = code < 0 ? -code : 0;
  std::optional<bool> oom;
  std::string how;
  if (sig != 0) {
    const char* abbrev = sigabbrev_np(sig);
    how = "killed by signal " + std::to_string(sig) +
          (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
    if (sig == SIGKILL) {
      const std::optional<long> now = platform::oom_kills_in_this_cgroup();
      if (now && w.oom_kills_at_start) {
        oom = *now > *w.oom_kills_at_start;
        how += *oom
                   ? "; the out-of-memory killer of this cgroup acted meanwhile (oom_kill " +
                         std::to_string(*w.oom_kills_at_start) + " -> " + std::to_string(*now) +
                         "), most likely on this worker"
                   : "; not by the out-of-memory killer (the cgroup's oom_kill count is unchanged)";
      } else {
        how +=
            "; whether by the out-of-memory killer is not known (the cgroup's oom_kill count is "
            "unreadable)";
      }
    }
  } else {
    how = "exit code " + std::to_string(code);
  }
  const std::string what =
      "concur::ProcessPoolExecutor: the worker process running or holding this task died (pid " +
      std::to_string(pid) + ", " + how +
      "); the pool replaced it and goes on (on_worker_death = replace)";
  return std::make_exception_ptr(WorkerDied(what, pid, sig, sig != 0 ? 0 : code, oom));
}

void ProcessPoolCore::fail_all(std::deque<std::unique_ptr<Pending>>& tasks,
                               const std::exception_ptr& error) {
  for (auto& t : tasks) {
    t->state->fail(error);
    t->state->release();
  }
  tasks.clear();
}

void ProcessPoolCore::break_pool(std::string why) {
  std::deque<std::unique_ptr<Pending>> queued;
  {
    base::MutexLock lock(mu_);
    if (broken_) return;
    broken_ = true;
    broken_message_ = why;
    queued.swap(queue_);
    publish_queue();
  }
  auto error = std::make_exception_ptr(BrokenProcessPool(why));
  fail_all(queued, error);
  for (auto& w : workers_) {
    fail_all(w->in_flight, error);
    w->publish();
    w->launched.watch.signal(SIGKILL);  // as Python: a broken pool stops every worker
    w->exit_sent = true;
  }
}

bool ProcessPoolCore::quiescent() const {
  {
    base::MutexLock lock(mu_);
    if (!queue_.empty()) return false;
  }
  for (const auto& w : workers_) {
    if (!w->in_flight.empty()) return false;
  }
  return true;
}

void ProcessPoolCore::stop_workers() {
  for (auto& w : workers_) {
    if (!w->exit_sent && w->launched.channel >= 0) {
      mpd::append_frame(w->out, mpd::kControl, 0, kExit);
      flush(*w);
      w->exit_sent = true;
    }
  }
}

bool ProcessPoolCore::handle_events(int timeout_ms) {
  std::uint64_t tokens[64];
  const platform::Poller::Ready ready = poller_.wait(timeout_ms, tokens);
  for (std::size_t i = 0; i < ready.count; ++i) {
    const std::uint64_t tag = tokens[i];
    auto* w = reinterpret_cast<Worker*>(tag & ~std::uint64_t{1});
    const bool alive =
        std::any_of(workers_.begin(), workers_.end(), [&](const auto& p) { return p.get() == w; });
    if (!alive) continue;
    if (tag & 1) {
      poller_.unwatch(w->launched.watch.fd());
      on_exit(*w);
    } else {
      on_readable(*w);
    }
  }
  return ready.count > 0 || ready.woken;
}

void ProcessPoolCore::run() {
  for (;;) {
    int sig = 0;
    {
      base::MutexLock lock(mu_);
      sig = std::exchange(force_signal_, 0);
    }
    if (sig != 0) {
      for (auto& w : workers_) w->launched.watch.signal(sig);
      base::MutexLock lock(mu_);
      forced_ = true;
      stopped_cv_.notify_all();
    }
    bool broken = false;
    {
      base::MutexLock lock(mu_);
      broken = broken_;
    }
    if (!broken) dispatch();
    for (auto& w : workers_) flush(*w);
    bool shutting_down = false;
    {
      base::MutexLock lock(mu_);
      shutting_down = shutdown_ || broken_;
    }
    if (shutting_down && quiescent()) {
      stop_workers();
      if (workers_.empty()) break;
    }
    // A few answers due (a caller waiting on one result, not a stream of them, where polling
    // would take a core from the workers): poll without sleeping for a while after the last
    // event (mpd::kAnswerSpin).
    std::size_t due = 0;
    for (const auto& w : workers_) due += w->in_flight.size();
    const bool spin = spin_ && due != 0 && due <= workers_.size() &&
                      std::chrono::steady_clock::now() - last_event_ < mpd::kAnswerSpin;
    if (handle_events(spin ? 0 : -1)) last_event_ = std::chrono::steady_clock::now();
  }
  base::MutexLock lock(mu_);
  stopped_ = true;
  stopped_cv_.notify_all();
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// ProcessPoolExecutor

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options)
    : core_(std::make_unique<detail::ProcessPoolCore>(std::move(options))) {}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  try {
    core_->shutdown(true, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur: %s\n", e.what());
    std::terminate();
  }
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  core_->shutdown(wait, cancel_futures);
}

void ProcessPoolExecutor::terminate_workers() {
  core_->force_shutdown(SIGTERM);
}

void ProcessPoolExecutor::kill_workers() {
  core_->force_shutdown(SIGKILL);
}

std::size_t ProcessPoolExecutor::max_workers() const noexcept {
  return core_->max_workers();
}
std::size_t ProcessPoolExecutor::processes_started() const noexcept {
  return core_->processes_started();
}
std::vector<int> ProcessPoolExecutor::worker_pids() const {
  return core_->worker_pids();
}

std::vector<int> ProcessPoolExecutor::take_fds(multiprocessing::detail::FdOutbox& outbox) {
  std::vector<int> fds;
  for (int fd : outbox.fds()) fds.push_back(fcntl(fd, F_DUPFD_CLOEXEC, 3));
  return fds;
}

void ProcessPoolExecutor::schedule(detail::StateBase* state, Completer completer,
                                   std::string function, std::string signature,
                                   std::vector<std::string> args, std::vector<int> fds) {
  auto task = std::make_unique<detail::ProcessPoolCore::Pending>();
  task->state = state;
  task->completer = completer;
  task->function = std::move(function);
  task->signature = std::move(signature);
  task->args = std::move(args);
  task->fds = std::move(fds);
  core_->schedule(std::move(task));
}

}  // namespace concur
