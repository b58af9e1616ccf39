// MpiPoolExecutor on rank 0: one manager thread makes every MPI call of the pool. It sends
// queued tasks to the worker ranks (a batch per rank, up to the adaptive window; a large
// argument as a message of its own, sent from its buffer), polls for results and heartbeats,
// and completes the futures. While nothing is outstanding it sleeps on a condition variable;
// while something is, it polls with a backoff (MPI has no descriptor to wait on).
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <deque>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "concur/base/mutex.hpp"
#include "concur/errors.hpp"
#include "concur/mpi_pool.hpp"
#include "mpi/receive_buffers.hpp"
#include "mpi/runtime.hpp"
#include "multiprocessing/task_message.hpp"
#include "platform/threads.hpp"

namespace concur {

namespace mp = multiprocessing;
namespace mpd = multiprocessing::detail;
using mpi::detail::Tag;

namespace {

// Enough tasks in flight per rank to cover this much work, so a worker never waits for the next
// batch; one at a time until results say how long tasks take (as the process pool does, with a
// longer target here: a message round trip between ranks costs more than a socket write).
constexpr double kInFlightNs = 1'000'000;
constexpr std::size_t kMinInFlight = 1;

}  // namespace

namespace detail {

class MpiPoolCore {
 public:
  using Completer = remote::Completer;

  struct Pending {
    std::uint64_t id = 0;
    StateBase* state = nullptr;  // null once failed by break_pool (the result is then dropped)
    Completer completer = nullptr;
    std::string function;
    std::string signature;
    std::vector<std::string> args;
    std::vector<multiprocessing::ByteBuffer> buffers;  // out of band, shared with the caller's
    std::size_t inputs = 0;
    std::vector<MPI_Request> sends;  // payloads sent straight from `args` and `buffers`
  };

  explicit MpiPoolCore(MpiPoolOptions options);
  ~MpiPoolCore();

  void schedule(std::unique_ptr<Pending> task);
  void shutdown(bool wait, bool cancel_futures);
  std::size_t max_workers() const { return workers_.size(); }
  std::vector<int> worker_ranks() const;

 private:
  struct Worker {
    int rank = 0;
    std::unordered_map<std::uint64_t, std::unique_ptr<Pending>> in_flight{};
    Clock::time_point last_heard{};
    bool lost = false;
    std::unique_ptr<mpd::ResultMessage> partial{};  // a large result waiting for its payloads
    std::size_t partial_next = 0;
    // ... and for its out-of-band buffers: their sizes, those received, and how much of the
    // next one has arrived (it comes in pieces).
    std::vector<std::uint64_t> partial_sizes{};
    std::vector<multiprocessing::ByteBuffer> partial_buffers{};
    std::byte* partial_into = nullptr;
    std::size_t partial_at = 0;
  };
  struct Send {
    MPI_Request request = MPI_REQUEST_NULL;
    std::string buffer;
    int rank = 0;
  };

  void use_ranks(const MpiPoolOptions& options);
  void start_spawned(const MpiPoolOptions& options);
  void run();
  bool dispatch();
  void send_batch(Worker& w, std::vector<std::unique_ptr<Pending>>& batch);
  bool send_large(Worker& w, Pending& task);
  bool isend(std::string buffer, Worker& w, int tag);
  bool receive_all();
  void on_message(Worker* w, const MPI_Status& status);
  void on_result(Worker& w, mpd::ResultMessage&& message,
                 const std::vector<multiprocessing::ByteBuffer>& buffers = {});
  bool receive_result_piece(Worker& w, const MPI_Status& status);
  void finish_partial(Worker& w);
  bool reap_sends();
  void check_heartbeats();
  void lose(Worker& w, const std::string& why);
  void lose_all(const std::string& why);
  void break_pool(const std::string& why);
  bool quiescent() const;
  bool outstanding() const;
  void idle(bool progressed);
  std::size_t in_flight_limit() const;
  Worker* worker_of(int rank);

  MPI_Comm comm_ = MPI_COMM_NULL;  // MPI_COMM_WORLD's duplicate, or the spawned workers'
  bool spawned_ = false;
  const std::size_t max_in_flight_;
  const Clock::duration heartbeat_timeout_;

  // Shared between the callers (submit, shutdown) and the manager thread.
  mutable base::Mutex mu_;
  base::CondVar wake_cv_;
  bool wake_ CONCUR_GUARDED_BY(mu_) = false;
  std::deque<std::unique_ptr<Pending>> queue_ CONCUR_GUARDED_BY(mu_);
  bool shutdown_ CONCUR_GUARDED_BY(mu_) = false;
  bool broken_ CONCUR_GUARDED_BY(mu_) = false;
  std::string broken_message_ CONCUR_GUARDED_BY(mu_);
  base::CondVar stopped_cv_;
  bool stopped_ CONCUR_GUARDED_BY(mu_) = false;
  std::uint64_t next_id_ CONCUR_GUARDED_BY(mu_) = 1;

  // Manager thread only (workers_' ranks are fixed at construction).
  std::vector<Worker> workers_;
  std::deque<Send> sends_;
  const std::shared_ptr<mpi::detail::ReceiveBuffers> receive_buffers_ =
      mpi::detail::ReceiveBuffers::make();
  double avg_task_ns_ = 0;
  mpi::detail::Backoff backoff_;
  std::thread manager_;
};

MpiPoolCore::MpiPoolCore(MpiPoolOptions options)
    : max_in_flight_(options.max_in_flight), heartbeat_timeout_(options.heartbeat_timeout) {
  if (max_in_flight_ == 0) {
    throw std::invalid_argument(
        "concur::MpiPoolExecutor: max_in_flight must be at least 1 (tasks outstanding per rank)");
  }
  if (options.max_workers && *options.max_workers == 0) {
    throw std::invalid_argument(
        "concur::MpiPoolExecutor: max_workers must be greater than 0; leave it unset to use "
        "every worker rank");
  }
  if (mpi::rank() != 0) {
    throw RuntimeError("concur::MpiPoolExecutor: only rank 0 may make a pool");
  }
  comm_ = mpi::detail::pool_comm();  // throws if main_guard() has not run
  if (mpi::size() == 1) {
    start_spawned(options);
  } else {
    use_ranks(options);
  }
  manager_ = std::thread([this] { run(); });
}

// Mode (a): ranks 1..size-1 of MPI_COMM_WORLD (those not lost earlier).
void MpiPoolCore::use_ranks(const MpiPoolOptions& options) {
  const std::set<int> lost = mpi::detail::lost_ranks();
  for (int r = 1; r < mpi::size(); ++r) {
    if (lost.count(r) != 0) continue;
    if (options.max_workers && workers_.size() >= *options.max_workers) break;
    workers_.push_back(Worker{.rank = r});
  }
  if (workers_.empty()) {
    throw RuntimeError("concur::MpiPoolExecutor: every worker rank of this MPI job was lost (" +
                       std::to_string(lost.size()) + "); no pool can be made");
  }
  mpi::detail::claim_workers();
}

// Mode (b): a job of one (a program started alone) spawns its workers, ranks 0..n-1 of the
// intercommunicator's remote group.
void MpiPoolCore::start_spawned(const MpiPoolOptions& options) {
  const std::size_t n = options.max_workers.value_or(platform::usable_cpu_count());
  mpi::detail::claim_workers();
  try {
    comm_ = mpi::detail::spawn_workers(static_cast<int>(n), options.spawn_oversubscribe);
  } catch (...) {
    mpi::detail::release_workers();
    throw;
  }
  spawned_ = true;
  for (std::size_t r = 0; r < n; ++r) workers_.push_back(Worker{.rank = static_cast<int>(r)});
}

MpiPoolCore::~MpiPoolCore() {
  if (manager_.joinable()) manager_.join();
}

std::vector<int> MpiPoolCore::worker_ranks() const {
  std::vector<int> ranks;
  for (const Worker& w : workers_) ranks.push_back(w.rank);
  return ranks;
}

void MpiPoolCore::schedule(std::unique_ptr<Pending> task) {
  for (const std::string& a : task->args) {
    if (a.size() > static_cast<std::size_t>(INT_MAX)) {
      task->state->release();
      throw std::invalid_argument(
          "concur::MpiPoolExecutor::submit(): an encoded argument of " + std::to_string(a.size()) +
          " bytes is more than one MPI message carries (2 GiB); pass it in parts");
    }
  }
  {
    base::MutexLock lock(mu_);
    if (broken_) {
      task->state->release();
      throw BrokenMpiPool(broken_message_);
    }
    if (shutdown_) {
      task->state->release();
      throw RuntimeError(
          "concur::MpiPoolExecutor::submit(): cannot schedule new futures after shutdown; "
          "submit before shutdown() is called or the pool goes out of scope");
    }
    task->id = next_id_++;
    queue_.push_back(std::move(task));
    wake_ = true;
  }
  wake_cv_.notify_one();
}

void MpiPoolCore::shutdown(bool wait, bool cancel_futures) {
  std::deque<std::unique_ptr<Pending>> cancelled;
  {
    base::MutexLock lock(mu_);
    shutdown_ = true;
    wake_ = true;
    if (cancel_futures) cancelled.swap(queue_);
  }
  wake_cv_.notify_one();
  for (auto& t : cancelled) {
    t->state->cancel();
    t->state->release();
  }
  if (wait) {
    if (std::this_thread::get_id() == manager_.get_id()) {
      throw RuntimeError(
          "concur::MpiPoolExecutor::shutdown(wait=true): called from a future's callback, which "
          "runs on the pool's own thread; call shutdown(false) there");
    }
    base::MutexLock lock(mu_);
    while (!stopped_) stopped_cv_.wait(lock);
  }
}

std::size_t MpiPoolCore::in_flight_limit() const {
  if (avg_task_ns_ <= 0) return kMinInFlight;
  const auto n = static_cast<std::size_t>(kInFlightNs / avg_task_ns_);
  return std::clamp(n, kMinInFlight, max_in_flight_);
}

MpiPoolCore::Worker* MpiPoolCore::worker_of(int rank) {
  for (Worker& w : workers_) {
    if (w.rank == rank) return &w;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Sending

bool MpiPoolCore::dispatch() {
  const std::size_t limit = in_flight_limit();
  std::vector<Worker*> order;
  for (Worker& w : workers_) {
    if (!w.lost) order.push_back(&w);
  }
  // The least busy first, so that a queued task goes to an idle rank if there is one.
  std::stable_sort(order.begin(), order.end(), [](const Worker* a, const Worker* b) {
    return a->in_flight.size() < b->in_flight.size();
  });
  bool sent = false;
  for (Worker* w : order) {
    const std::size_t room = limit > w->in_flight.size() ? limit - w->in_flight.size() : 0;
    // Taken and marked running under the lock: from then on cancel_futures cannot reach them,
    // as for Python's call queue.
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
    }
    if (batch.empty()) continue;
    if (w->in_flight.empty()) w->last_heard = Clock::now();  // its silence counts from now
    send_batch(*w, batch);
    sent = true;
  }
  return sent;
}

// Every task is in flight before anything is sent, so that a failed send (which loses the rank)
// fails them all.
void MpiPoolCore::send_batch(Worker& w, std::vector<std::unique_ptr<Pending>>& batch) {
  std::vector<Pending*> large;
  std::vector<mpd::TaskMessage> small;
  for (auto& task : batch) {
    task->inputs = task->args.size();
    const bool is_large =
        !task->buffers.empty() ||
        std::any_of(task->args.begin(), task->args.end(),
                    [](const std::string& a) { return a.size() > mpi::detail::kInlineLimit; });
    if (is_large) {
      large.push_back(task.get());
    } else {
      small.push_back(
          mpd::TaskMessage{task->id, task->function, task->signature, std::move(task->args), {}});
      task->args.clear();
    }
    const std::uint64_t id = task->id;
    w.in_flight.emplace(id, std::move(task));
  }
  if (!small.empty() && !isend(mp::serialize(small), w, mpi::detail::kTasks)) return;
  for (Pending* task : large) {
    if (!send_large(w, *task)) return;
  }
}

// A head naming the task, then each argument tuple from where it was encoded, then each
// out-of-band buffer from where the caller's ByteBuffer holds it: no batch copy, no encoding.
bool MpiPoolCore::send_large(Worker& w, Pending& task) {
  mpi::detail::TaskHead head{{task.id, task.function, task.signature, {}, {}}, {}};
  head.task.args.resize(task.args.size());
  for (const auto& b : task.buffers) head.buffers.push_back(b.size());
  if (!isend(mp::serialize(head), w, mpi::detail::kTaskHead)) return false;
  auto send_raw = [&](const void* data, std::size_t size, int tag) {
    MPI_Request request = MPI_REQUEST_NULL;
    const int rc = MPI_Isend(data, static_cast<int>(size), MPI_BYTE, w.rank, tag, comm_, &request);
    if (rc != MPI_SUCCESS) {
      lose(w, "concur::MpiPoolExecutor: sending to rank " + std::to_string(w.rank) + " failed (" +
                  mpi::detail::error_text("MPI_Isend", rc) + "); the pool is broken");
      return false;
    }
    task.sends.push_back(request);
    return true;
  };
  for (std::string& a : task.args) {
    if (!send_raw(a.data(), a.size(), mpi::detail::kTaskPayload)) return false;
  }
  for (const auto& b : task.buffers) {
    const bool sent = mpi::detail::for_each_piece(b.size(), [&](std::size_t at, std::size_t n) {
      return send_raw(b.data() + at, n, mpi::detail::kTaskBuffer);
    });
    if (!sent) return false;
  }
  return true;
}

bool MpiPoolCore::isend(std::string buffer, Worker& w, int tag) {
  sends_.push_back(Send{MPI_REQUEST_NULL, std::move(buffer), w.rank});
  Send& s = sends_.back();
  const int rc = MPI_Isend(s.buffer.data(), static_cast<int>(s.buffer.size()), MPI_BYTE, w.rank,
                           tag, comm_, &s.request);
  if (rc != MPI_SUCCESS) {
    sends_.pop_back();
    lose(w, "concur::MpiPoolExecutor: sending to rank " + std::to_string(w.rank) + " failed (" +
                mpi::detail::error_text("MPI_Isend", rc) + "); the pool is broken");
    return false;
  }
  return true;
}

bool MpiPoolCore::reap_sends() {
  bool any = false;
  while (!sends_.empty()) {
    int done = 0;
    MPI_Test(&sends_.front().request, &done, MPI_STATUS_IGNORE);
    if (!done) break;
    sends_.pop_front();
    any = true;
  }
  return any;
}

// ---------------------------------------------------------------------------------------------
// Receiving

bool MpiPoolCore::receive_all() {
  bool any = false;
  for (;;) {
    int flag = 0;
    MPI_Status status;
    const int rc = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &status);
    if (rc != MPI_SUCCESS) {
      lose_all("concur::MpiPoolExecutor: " + mpi::detail::error_text("MPI_Iprobe", rc) +
               "; the pool is broken");
      return any;
    }
    if (!flag) return any;
    any = true;
    on_message(worker_of(status.MPI_SOURCE), status);
  }
}

void MpiPoolCore::on_message(Worker* w, const MPI_Status& status) {
  const int tag = status.MPI_TAG;
  if (w && tag == mpi::detail::kResultBuffer && w->partial) {
    if (receive_result_piece(*w, status)) {
      finish_partial(*w);
    } else {  // the pool broke over it: what else comes of this result is dropped
      w->partial.reset();
      w->partial_sizes.clear();
      w->partial_buffers.clear();
      w->partial_into = nullptr;
    }
    return;
  }
  std::string bytes;
  std::string* into = &bytes;
  // A large result's payload lands in the very string the completer decodes.
  if (w && tag == mpi::detail::kResultPayload && w->partial &&
      w->partial_next < w->partial->results.size()) {
    into = &w->partial->results[w->partial_next];
  }
  const int rc = mpi::detail::receive_bytes(comm_, status.MPI_SOURCE, tag, *into, nullptr);
  if (rc != MPI_SUCCESS) {
    lose_all("concur::MpiPoolExecutor: " + mpi::detail::error_text("MPI_Recv", rc) +
             "; the pool is broken");
    return;
  }
  if (!w) return;  // a rank outside this pool: nothing of ours
  w->last_heard = Clock::now();
  try {
    if (tag == mpi::detail::kResults) {
      for (auto& m : mp::deserialize<std::vector<mpd::ResultMessage>>(bytes)) {
        on_result(*w, std::move(m));
      }
    } else if (tag == mpi::detail::kResultHead) {
      auto head = mp::deserialize<mpi::detail::ResultHead>(bytes);
      w->partial = std::make_unique<mpd::ResultMessage>(std::move(head.result));
      w->partial_next = 0;
      w->partial_sizes = std::move(head.buffers);
      w->partial_buffers.clear();
      w->partial_into = nullptr;
      w->partial_at = 0;
      finish_partial(*w);  // a head with nothing to follow
    } else if (tag == mpi::detail::kResultPayload && into != &bytes) {
      ++w->partial_next;
      finish_partial(*w);
    }
  } catch (const ProtocolError& e) {
    break_pool(std::string("concur::MpiPoolExecutor: rank ") + std::to_string(w->rank) +
               " sent a corrupt message (" + e.what() + ")");
  }
}

// One piece of a result's out-of-band buffer, straight into the buffer the completer's ByteBuffer
// will share (made when its first piece arrives). False when the pool broke over it.
bool MpiPoolCore::receive_result_piece(Worker& w, const MPI_Status& status) {
  const std::size_t index = w.partial_buffers.size() - (w.partial_into ? 1 : 0);
  if (w.partial_next < w.partial->results.size() || index >= w.partial_sizes.size()) {
    // Not where the worker's protocol puts a buffer: receive it to keep the order, then break.
    std::string dropped;
    (void)mpi::detail::receive_bytes(comm_, status.MPI_SOURCE, status.MPI_TAG, dropped, nullptr);
    break_pool("concur::MpiPoolExecutor: rank " + std::to_string(w.rank) +
               " sent a buffer its result did not announce");
    return false;
  }
  const auto size = static_cast<std::size_t>(w.partial_sizes[index]);
  if (!w.partial_into) {
    try {
      auto [buffer, into] = receive_buffers_->acquire(size);
      w.partial_buffers.push_back(std::move(buffer));
      w.partial_into = into;
    } catch (const std::bad_alloc&) {
      std::string dropped;
      (void)mpi::detail::receive_bytes(comm_, status.MPI_SOURCE, status.MPI_TAG, dropped, nullptr);
      break_pool("concur::MpiPoolExecutor: no memory for a result buffer of " +
                 std::to_string(size) + " bytes from rank " + std::to_string(w.rank));
      return false;
    }
    w.partial_at = 0;
  }
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  const std::size_t piece = std::min(size - w.partial_at, mpi::detail::kPieceMax);
  if (count < 0 || static_cast<std::size_t>(count) != piece) {
    std::string dropped;
    (void)mpi::detail::receive_bytes(comm_, status.MPI_SOURCE, status.MPI_TAG, dropped, nullptr);
    break_pool("concur::MpiPoolExecutor: rank " + std::to_string(w.rank) +
               " sent a piece of a buffer of the wrong size");
    return false;
  }
  const int rc = MPI_Recv(w.partial_into + w.partial_at, count, MPI_BYTE, status.MPI_SOURCE,
                          status.MPI_TAG, comm_, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) {
    lose_all("concur::MpiPoolExecutor: " + mpi::detail::error_text("MPI_Recv", rc) +
             "; the pool is broken");
    return false;
  }
  w.last_heard = Clock::now();
  w.partial_at += piece;
  if (w.partial_at == size) {
    w.partial_into = nullptr;  // the next piece starts the next buffer
    w.partial_at = 0;
  }
  return true;
}

// Completes a large result once every payload and every buffer has arrived.
void MpiPoolCore::finish_partial(Worker& w) {
  if (!w.partial || w.partial_next < w.partial->results.size() ||
      w.partial_buffers.size() < w.partial_sizes.size() || w.partial_into) {
    return;
  }
  mpd::ResultMessage done = std::move(*w.partial);
  w.partial.reset();
  std::vector<multiprocessing::ByteBuffer> buffers = std::move(w.partial_buffers);
  w.partial_buffers.clear();
  w.partial_sizes.clear();
  on_result(w, std::move(done), buffers);
}

void MpiPoolCore::on_result(Worker& w, mpd::ResultMessage&& message,
                            const std::vector<multiprocessing::ByteBuffer>& buffers) {
  auto it = w.in_flight.find(message.id);
  if (it == w.in_flight.end()) return;  // not this pool's
  // Before the task leaves in_flight, so that break_pool() still fails its future.
  mpd::check_answer(message, it->second->inputs);
  std::unique_ptr<Pending> task = std::move(it->second);
  w.in_flight.erase(it);
  // The worker has every payload, so these sends are complete; this frees MPI's requests.
  MPI_Waitall(static_cast<int>(task->sends.size()), task->sends.data(), MPI_STATUSES_IGNORE);
  const double per_task = static_cast<double>(message.busy_ns) /
                          static_cast<double>(std::max<std::size_t>(1, task->inputs));
  avg_task_ns_ = avg_task_ns_ <= 0 ? per_task : 0.9 * avg_task_ns_ + 0.1 * per_task;
  if (!task->state) return;  // already failed when the pool broke
  if (message.status == mpd::ResultMessage::kOk) {
    // The result's ByteBuffers decode as views of the buffers received for it.
    const multiprocessing::detail::BufferInbox inbox(buffers);
    const std::vector<std::string_view> results(message.results.begin(), message.results.end());
    task->completer(task->state, results);
  } else {
    task->state->fail(std::make_exception_ptr(
        RemoteError(message.error_type, message.error_message, message.pid)));
  }
  task->state->release();
}

// ---------------------------------------------------------------------------------------------
// Faults

void MpiPoolCore::check_heartbeats() {
  const auto now = Clock::now();
  for (Worker& w : workers_) {
    if (w.lost || w.in_flight.empty()) continue;
    if (now - w.last_heard <= heartbeat_timeout_) continue;
    const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - w.last_heard);
    lose(w, "concur::MpiPoolExecutor: worker rank " + std::to_string(w.rank) +
                " sent nothing for " + std::to_string(silent.count()) + " ms with " +
                std::to_string(w.in_flight.size()) +
                " task(s) outstanding (heartbeat_timeout); it is taken as dead, so the pool is "
                "broken and runs no more tasks");
  }
}

// A lost rank is never heard from again: its tasks fail, and the buffers MPI may still be
// reading for it are kept until the program ends (a send to a dead rank may never complete).
void MpiPoolCore::lose(Worker& w, const std::string& why) {
  w.lost = true;
  // A spawned worker is no rank of the job; its loss is recorded (as a negative number) so that
  // MPI is not finalised at exit either.
  mpi::detail::mark_lost(spawned_ ? -1 - w.rank : w.rank);
  break_pool(why);
  static auto* kept_for_lost_ranks = new std::vector<std::unique_ptr<Pending>>();
  for (auto& [id, task] : w.in_flight) kept_for_lost_ranks->push_back(std::move(task));
  w.in_flight.clear();
  w.partial.reset();
  w.partial_sizes.clear();
  w.partial_buffers.clear();
  w.partial_into = nullptr;
  static auto* sends_to_lost_ranks = new std::deque<Send>();
  for (auto it = sends_.begin(); it != sends_.end();) {
    if (it->rank == w.rank) {
      sends_to_lost_ranks->push_back(std::move(*it));
      it = sends_.erase(it);
    } else {
      ++it;
    }
  }
}

void MpiPoolCore::lose_all(const std::string& why) {
  for (Worker& w : workers_) {
    if (!w.lost) lose(w, why);
  }
}

// As Python's: every pending future fails at once and later submits throw. The live ranks'
// results are still received (and dropped), so none arrives after the pool is gone.
void MpiPoolCore::break_pool(const std::string& why) {
  std::deque<std::unique_ptr<Pending>> queued;
  {
    base::MutexLock lock(mu_);
    if (broken_) return;
    broken_ = true;
    broken_message_ = why;
    queued.swap(queue_);
  }
  auto error = std::make_exception_ptr(BrokenMpiPool(why));
  for (auto& t : queued) {
    t->state->fail(error);
    t->state->release();
  }
  for (Worker& w : workers_) {
    for (auto& [id, task] : w.in_flight) {
      if (!task->state) continue;
      task->state->fail(error);
      task->state->release();
      task->state = nullptr;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The manager loop

bool MpiPoolCore::outstanding() const {
  if (!sends_.empty()) return true;
  return std::any_of(workers_.begin(), workers_.end(),
                     [](const Worker& w) { return !w.lost && !w.in_flight.empty(); });
}

bool MpiPoolCore::quiescent() const {
  {
    base::MutexLock lock(mu_);
    if (!queue_.empty()) return false;
  }
  return !outstanding();
}

void MpiPoolCore::idle(bool progressed) {
  if (progressed) {
    backoff_.reset();
    return;
  }
  {
    base::MutexLock lock(mu_);
    if (wake_) {
      wake_ = false;
      return;
    }
    if (!outstanding()) {  // nothing to poll for: sleep until a submit or shutdown
      while (!wake_) wake_cv_.wait(lock);
      wake_ = false;
      backoff_.reset();
      return;
    }
    // A send in progress needs MPI's progress engine turned (a large one over TCP above all).
    const auto pause = sends_.empty() ? backoff_.next() : std::chrono::microseconds(0);
    if (pause.count() != 0) {
      wake_cv_.wait_for(lock, pause);  // a poll's pause: an early return only polls sooner
      wake_ = false;
      return;
    }
  }
  std::this_thread::yield();
}

void MpiPoolCore::run() {
  for (;;) {
    bool broken = false;
    bool shutting_down = false;
    {
      base::MutexLock lock(mu_);
      broken = broken_;
      shutting_down = shutdown_ || broken_;
    }
    bool progressed = broken ? false : dispatch();
    progressed = receive_all() || progressed;
    progressed = reap_sends() || progressed;
    check_heartbeats();
    if (shutting_down && quiescent()) break;
    idle(progressed);
  }
  if (spawned_) {
    const bool any_lost =
        std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.lost; });
    mpi::detail::release_spawned(comm_, static_cast<int>(workers_.size()), any_lost);
  }
  mpi::detail::release_workers();
  base::MutexLock lock(mu_);
  stopped_ = true;
  stopped_cv_.notify_all();
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// MpiPoolExecutor

MpiPoolExecutor::MpiPoolExecutor(MpiPoolOptions options)
    : core_(std::make_unique<detail::MpiPoolCore>(std::move(options))) {}

MpiPoolExecutor::~MpiPoolExecutor() {
  try {
    core_->shutdown(true, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur: %s\n", e.what());
    std::terminate();
  }
}

void MpiPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  core_->shutdown(wait, cancel_futures);
}

std::size_t MpiPoolExecutor::max_workers() const noexcept {
  return core_->max_workers();
}

std::vector<int> MpiPoolExecutor::worker_ranks() const {
  return core_->worker_ranks();
}

void MpiPoolExecutor::schedule(detail::StateBase* state, Completer completer, std::string function,
                               std::string signature, std::vector<std::string> args,
                               std::vector<multiprocessing::ByteBuffer> buffers) {
  auto task = std::make_unique<detail::MpiPoolCore::Pending>();
  task->state = state;
  task->completer = completer;
  task->function = std::move(function);
  task->signature = std::move(signature);
  task->args = std::move(args);
  task->buffers = std::move(buffers);
  core_->schedule(std::move(task));
}

}  // namespace concur
