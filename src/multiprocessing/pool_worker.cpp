// ProcessPoolExecutor, the worker's side: the loop a pool worker process runs (decode a task,
// run it, answer), and the outbox that batches its answers, with a second thread that sends the
// answers already waiting while a long task runs. The parent's side is process_pool.cpp.
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "concur/base/mutex.hpp"
#include "concur/errors.hpp"
#include "multiprocessing/launcher.hpp"
#include "multiprocessing/pool_protocol.hpp"
#include "multiprocessing/shared_ring.hpp"
#include "multiprocessing/task_message.hpp"
#include "platform/threads.hpp"

namespace concur {

namespace {
// Freed memory a worker keeps for the next message instead of returning it to the kernel.
constexpr std::size_t kKeptHeapBytes = 32u << 20;

}  // namespace

// ---------------------------------------------------------------------------------------------
// The worker process

namespace multiprocessing::detail {
namespace {

// Waits until the channel is readable: polling for kAnswerSpin first (pool_protocol.hpp) when
// `spin`, then sleeping in poll().
bool wait_for_next(int channel, bool spin) {
  if (spin) {
    const auto until = Clock::now() + kAnswerSpin;
    do {
      if (wait_readable(channel, Clock::now())) return true;
    } while (Clock::now() < until);
  }
  return wait_readable(channel, std::nullopt);
}

void send_control(int channel, std::string_view what) {
  std::string frame;
  append_frame(frame, kControl, 0, what);
  send_all(channel, frame, {}, std::nullopt);
}

// The worker's outgoing results. Tiny tasks are batched: a result is appended here and the whole
// buffer goes out in one write when the input runs dry. Alone, that would hold a result finished
// just before a long task until the long task ends too (and a map's timeout would see it late),
// so a flusher thread polls while tasks run: if the same task is still running at two polls
// kFlushPoll apart and results are waiting, it sends them. Tiny tasks never look "the same" to
// it, so they stay batched. The thread is started only when a task starts with results waiting,
// so a worker that is sent one task at a time never has a second thread.
//
// A result of at least `shared_threshold` bytes is written into the worker's shared-memory ring
// (shared_ring.hpp; made, and its descriptor sent, the first time) and only its span goes in the
// message; the pool gives the space back once it has decoded the result.
class ResultOutbox {
 public:
  ResultOutbox(int channel, std::uint64_t shared_threshold)
      : channel_(channel), shared_threshold_(shared_threshold) {}
  ResultOutbox(const ResultOutbox&) = delete;
  ResultOutbox& operator=(const ResultOutbox&) = delete;
  ~ResultOutbox() {
    if (flusher_.joinable()) {
      {
        base::MutexLock lock(mu_);
        stop_ = true;
      }
      cv_.notify_one();
      flusher_.join();
    }
  }

  void task_started() {
    bool wake = false;
    {
      base::MutexLock lock(mu_);
      ++seq_;
      running_ = true;
      if (out_.empty()) return;
      if (!flusher_.joinable()) {
        flusher_ = std::thread([this] { run_flusher(); });
        return;
      }
      wake = flusher_idle_;
    }
    if (wake) cv_.notify_one();
  }

  void task_finished(ResultMessage&& result) {
    base::MutexLock lock(mu_);
    running_ = false;
    share_large_results(result);
    const std::size_t at = begin_frame(out_, kResult, 0);
    serialize_into(out_, result);
    end_frame(out_, at);
  }

  void flush() {
    base::MutexLock lock(mu_);
    flush_locked();
  }

  bool empty() const {
    base::MutexLock lock(mu_);
    return out_.empty();
  }

 private:
  static constexpr auto kFlushPoll = std::chrono::milliseconds(1);

  void flush_locked() CONCUR_REQUIRES(mu_) {
    if (out_.empty()) return;
    send_all(channel_, out_, {}, std::nullopt);
    out_.clear();
  }

  void share_large_results(ResultMessage& result) CONCUR_REQUIRES(mu_) {
    if (shared_threshold_ == 0 || result.status != ResultMessage::kOk) return;
    for (std::size_t i = 0; i < result.results.size(); ++i) {
      std::string& value = result.results[i];
      if (value.size() < shared_threshold_) continue;
      if (!ring_) {
        if (ring_failed_) return;
        try {
          ring_ = SharedRing::create();
        } catch (const OSError&) {
          ring_failed_ = true;  // the socket carries everything, as before
          return;
        }
        flush_locked();  // results already waiting go first, then the announcement
        std::string frame;
        append_frame(frame, kControl, 0, kRing, 1);
        send_all(channel_, frame, {ring_->fd()}, std::nullopt);
      }
      const std::optional<std::uint64_t> position = ring_->allocate(value.size());
      if (!position) continue;
      std::memcpy(ring_->data(*position), value.data(), value.size());
      result.shared.push_back({static_cast<std::uint32_t>(i), *position, value.size()});
      std::string().swap(value);
    }
  }

  void run_flusher() {
    base::MutexLock lock(mu_);
    while (!stop_) {
      if (!running_ || out_.empty()) {
        flusher_idle_ = true;
        cv_.wait(lock);
        flusher_idle_ = false;
        continue;
      }
      const std::uint64_t seen = seq_;
      cv_.wait_for(lock, kFlushPoll);
      if (running_ && seq_ == seen) flush_locked();
    }
  }

  const int channel_;
  const std::uint64_t shared_threshold_;
  std::unique_ptr<SharedRing> ring_ CONCUR_GUARDED_BY(mu_);
  bool ring_failed_ CONCUR_GUARDED_BY(mu_) = false;
  mutable base::Mutex mu_;
  base::CondVar cv_;
  std::string out_ CONCUR_GUARDED_BY(mu_);
  std::uint64_t seq_ CONCUR_GUARDED_BY(mu_) = 0;
  bool running_ CONCUR_GUARDED_BY(mu_) = false;
  bool flusher_idle_ CONCUR_GUARDED_BY(mu_) = false;
  bool stop_ CONCUR_GUARDED_BY(mu_) = false;
  std::thread flusher_;  // started and joined by the worker's main thread only
};

}  // namespace

namespace {

// A worker's results go to the program that started it and nowhere else: when that program dies
// (killed, say), the worker ends at once instead of finishing a task nobody will collect (an idle
// worker would also see its channel close; a busy one would not until its task ended). Python's
// workers run their task to the end. The watch is a thread blocked on a pidfd of the parent.
void exit_when_the_parent_dies() {
  const int parent = lineage().parent_fd;
  if (parent < 0) return;  // no pidfd (an old kernel): the channel's end of file still tells
  std::thread([parent] {
    pollfd p{parent, POLLIN, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    std::_Exit(1);
  }).detach();
}

}  // namespace

int run_pool_worker(int channel, FrameDecoder& decoder, const Bootstrap& bootstrap) {
  exit_when_the_parent_dies();
  if (!bootstrap.call.function.empty()) {
    const Registration* reg = find_registration(bootstrap.call.function);
    std::string failure;
    if (!reg) {
      failure = "concur::multiprocessing::NotRegistered\nthe initializer '" +
                bootstrap.call.function +
                "' is not registered in the worker; register it with "
                "CONCUR_REGISTER(fn) at namespace scope, in the program the workers run";
    } else {
      try {
        reg->invoke(bootstrap.call.args, nullptr);
      } catch (const std::exception& e) {
        failure = type_name(typeid(e)) + "\n" + e.what();
      } catch (...) {
        failure = "unknown\nan exception not derived from std::exception";
      }
    }
    if (!failure.empty()) {
      send_control(channel, std::string(kInitFailed) + "\n" + failure);
      return 1;
    }
  }
  // A worker receives and frees argument buffers over and over: glibc would give a large one back
  // to the kernel (munmap, or trimming the heap) on every free and fault it in again, zeroed, for
  // the next message. Keep up to kKeptHeapBytes of freed memory for reuse instead.
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kKeptHeapBytes));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * kKeptHeapBytes));
  send_control(channel, kReady);
  ResultOutbox outbox(channel, bootstrap.shared_memory_threshold);
  std::unique_ptr<SharedRing> args_ring;  // where the pool writes large arguments, once it sends it
  const pid_t pid = getpid();             // not cached by glibc: a system call per task otherwise
  std::uint64_t done = 0;
  std::uint64_t done_before_wait = 0;
  const bool spin = platform::usable_cpu_count() >= 2;
  for (;;) {
    while (auto frame = decoder.next()) {
      if (frame->kind == kControl && frame->payload == kExit) {
        outbox.flush();
        return 0;
      }
      if (frame->kind == kControl && frame->payload == kRing && frame->fds.size() == 1) {
        const int fd = frame->fds[0];
        frame->fds.clear();
        try {
          args_ring = SharedRing::attach(fd);  // takes the descriptor
        } catch (const std::exception& e) {
          // Tasks that name the ring then answer with a ProtocolError (run_task): the pool stays
          // whole and the cause is on stderr.
          std::fprintf(stderr, "concur: pool worker %d: %s\n", static_cast<int>(pid), e.what());
        }
        continue;
      }
      if (frame->kind != kTask) continue;
      FdInbox inbox(std::move(frame->fds));
      outbox.task_started();
      outbox.task_finished(
          run_task(deserialize<TaskMessage>(frame->payload), pid, args_ring.get()));
      ++done;
      if (bootstrap.max_tasks != 0 && done >= bootstrap.max_tasks) {
        outbox.flush();
        return 0;
      }
    }
    // Everything that had arrived is done: send the results before waiting for more.
    if (!outbox.empty() && !wait_readable(channel, Clock::now())) outbox.flush();
    // Poll only after a single task (a caller waiting on each result): after a batch, the next
    // batch is not due that soon, and polling would take a core from the other workers.
    const bool one_at_a_time = done - done_before_wait == 1;
    done_before_wait = done;
    if (!wait_for_next(channel, spin && one_at_a_time)) continue;
    if (!decoder.read_available(channel)) {
      outbox.flush();
      return 0;  // the pool is gone
    }
  }
}

}  // namespace multiprocessing::detail

}  // namespace concur
