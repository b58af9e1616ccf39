// A worker rank of MpiPoolExecutor: receive task messages from rank 0, run them, send results.
//
// One thread does the work and all of the worker's MPI calls but one: while the worker holds
// tasks, a heartbeat thread sends rank 0 an empty message every kHeartbeatInterval (under the
// same mutex, as MPI_THREAD_SERIALIZED requires), so that rank 0 can tell a long task from a
// dead rank, which MPI alone does not report.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "concur/base/mutex.hpp"
#include "concur/multiprocessing/byte_buffer.hpp"
#include "concur/multiprocessing/serialization.hpp"
#include "mpi/receive_buffers.hpp"
#include "mpi/runtime.hpp"
#include "multiprocessing/task_message.hpp"

namespace concur::mpi::detail {
namespace {

namespace mpd = multiprocessing::detail;

class Heartbeat {
 public:
  Heartbeat(MPI_Comm comm, base::Mutex& mpi_mu)
      : comm_(comm), mpi_mu_(mpi_mu), thread_([this] { run(); }) {}
  ~Heartbeat() {
    {
      base::MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  void set_busy(bool busy) {
    {
      base::MutexLock lock(mu_);
      busy_ = busy;
    }
    if (busy) cv_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      {
        base::MutexLock lock(mu_);
        while (!busy_ && !stop_) cv_.wait(lock);
        // One beat per interval while busy, however often set_busy() wakes us meanwhile.
        const auto deadline = std::chrono::steady_clock::now() + kHeartbeatInterval;
        while (!stop_ && cv_.wait_until(lock, deadline)) {
        }
        if (stop_) return;
        if (!busy_) continue;
      }
      base::MutexLock mpi(mpi_mu_);
      MPI_Send(nullptr, 0, MPI_BYTE, 0, kHeartbeat, comm_);
    }
  }

  const MPI_Comm comm_;
  base::Mutex& mpi_mu_;  // serialises every MPI call of the worker's two threads
  base::Mutex mu_;
  base::CondVar cv_;
  bool busy_ CONCUR_GUARDED_BY(mu_) = false;
  bool stop_ CONCUR_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class Worker {
 public:
  explicit Worker(MPI_Comm comm) : comm_(comm), heartbeat_(comm, mpi_mu_), pid_(getpid()) {}

  // Returns when rank 0 says kExit (or MPI fails: there is nobody left to report to), with
  // whether to finalise MPI.
  bool serve() {
    Backoff backoff;
    for (;;) {
      int flag = 0;
      MPI_Status status;
      int rc;
      {
        base::MutexLock mpi(mpi_mu_);
        rc = MPI_Iprobe(0, MPI_ANY_TAG, comm_, &flag, &status);
      }
      if (rc != MPI_SUCCESS) return false;
      if (!flag) {
        const auto pause = backoff.next();
        if (pause.count() == 0) {
          std::this_thread::yield();
        } else {
          std::this_thread::sleep_for(pause);
        }
        continue;
      }
      backoff.reset();
      if (status.MPI_TAG == kExit) {
        std::string how;
        return receive(kExit, how) == MPI_SUCCESS && how == std::string(1, '\1');
      }
      if (!handle(status.MPI_TAG)) return false;
      // Spin again from the answer, not from the task's arrival: after a long task the next one
      // is usually a round trip away, and must not find this rank asleep (it measured about
      // 3 ms per round trip for the first few after a long task, 25 us after).
      backoff.reset();
    }
  }

 private:
  bool handle(int tag) {
    std::string bytes;
    if (receive(tag, bytes) != MPI_SUCCESS) return false;
    if (tag != kTasks && tag != kTaskHead) return true;  // nothing a worker expects: dropped
    heartbeat_.set_busy(true);
    std::vector<Answer> results;
    if (tag == kTasks) {
      auto tasks = multiprocessing::deserialize<std::vector<mpd::TaskMessage>>(bytes);
      std::string().swap(bytes);
      results.reserve(tasks.size());
      for (auto& task : tasks) results.push_back(run(std::move(task)));
    } else if (tag == kTaskHead) {
      auto head = multiprocessing::deserialize<TaskHead>(bytes);
      for (std::string& args : head.task.args) {
        if (receive(kTaskPayload, args) != MPI_SUCCESS) return false;
      }
      std::vector<multiprocessing::ByteBuffer> buffers;
      buffers.reserve(head.buffers.size());
      for (const std::uint64_t size : head.buffers) {
        auto [buffer, into] = receive_buffers_->acquire(static_cast<std::size_t>(size));
        if (!receive_buffer(into, static_cast<std::size_t>(size))) return false;
        buffers.push_back(std::move(buffer));
      }
      // The task's ByteBuffer arguments decode as views of these (byte_buffer.hpp).
      const multiprocessing::detail::BufferInbox inbox(buffers);
      results.push_back(run(std::move(head.task)));
    }
    const bool sent = send(results);
    heartbeat_.set_busy(false);
    return sent;
  }

  // An out-of-band buffer, straight into `into`, in the pieces rank 0 sent it in.
  bool receive_buffer(std::byte* into, std::size_t size) {
    return for_each_piece(size, [&](std::size_t at, std::size_t piece) {
      MPI_Status status;
      int rc;
      {
        base::MutexLock mpi(mpi_mu_);
        rc = MPI_Recv(into + at, static_cast<int>(piece), MPI_BYTE, 0, kTaskBuffer, comm_, &status);
      }
      int count = 0;
      return rc == MPI_SUCCESS && MPI_Get_count(&status, MPI_BYTE, &count) == MPI_SUCCESS &&
             static_cast<std::size_t>(count) == piece;
    });
  }

  int receive(int tag, std::string& out) {
    base::MutexLock mpi(mpi_mu_);
    return receive_bytes(comm_, 0, tag, out, nullptr);
  }

  int send_bytes(const std::string& bytes, int tag) {
    base::MutexLock mpi(mpi_mu_);
    return MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, tag, comm_);
  }

  // A task's answer, and the ByteBuffers its results send out of band (sharing what the
  // function returned: nothing is copied).
  struct Answer {
    mpd::ResultMessage message;
    std::vector<multiprocessing::ByteBuffer> buffers;
  };

  Answer run(mpd::TaskMessage&& task) {
    Answer answer;
    multiprocessing::detail::BufferOutbox outbox;
    answer.message = mpd::run_task(std::move(task), pid_);
    // A failed task's partly encoded results are dropped, their buffers with them.
    if (answer.message.status == mpd::ResultMessage::kOk) answer.buffers = outbox.take();
    return answer;
  }

  // Small results go back in one message; a large one as a head, its raw payloads, and its
  // out-of-band buffers in pieces.
  bool send(std::vector<Answer>& answers) {
    std::vector<mpd::ResultMessage> small;
    std::vector<Answer> large;
    for (auto& a : answers) {
      bool big = !a.buffers.empty();
      for (const std::string& s : a.message.results) big = big || s.size() > kInlineLimit;
      if (big) {
        large.push_back(std::move(a));
      } else {
        small.push_back(std::move(a.message));
      }
    }
    if (!small.empty() && send_bytes(multiprocessing::serialize(small), kResults) != MPI_SUCCESS) {
      return false;
    }
    for (auto& a : large) {
      ResultHead head{std::move(a.message), {}};
      std::vector<std::string> payloads;
      payloads.swap(head.result.results);
      head.result.results.resize(payloads.size());
      for (const auto& b : a.buffers) head.buffers.push_back(b.size());
      if (send_bytes(multiprocessing::serialize(head), kResultHead) != MPI_SUCCESS) return false;
      for (const std::string& p : payloads) {
        if (send_bytes(p, kResultPayload) != MPI_SUCCESS) return false;
      }
      for (const auto& b : a.buffers) {
        const bool sent = for_each_piece(b.size(), [&](std::size_t at, std::size_t piece) {
          base::MutexLock mpi(mpi_mu_);
          return MPI_Send(b.data() + at, static_cast<int>(piece), MPI_BYTE, 0, kResultBuffer,
                          comm_) == MPI_SUCCESS;
        });
        if (!sent) return false;
      }
    }
    return true;
  }

  const MPI_Comm comm_;
  base::Mutex mpi_mu_;
  Heartbeat heartbeat_;
  const pid_t pid_;
  const std::shared_ptr<ReceiveBuffers> receive_buffers_ = ReceiveBuffers::make();
};

}  // namespace

bool serve(MPI_Comm comm) {
  Worker worker(comm);
  return worker.serve();
}

}  // namespace concur::mpi::detail
