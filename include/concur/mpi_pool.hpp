// concur/mpi_pool.hpp: MpiPoolExecutor, mpi4py.futures.MPIPoolExecutor on Open MPI (target
// concur::mpi, built when CMake finds MPI).
//
// The same submit / map / shutdown and the same concur::Future as ThreadPoolExecutor and
// ProcessPoolExecutor, so concur::wait() and concur::as_completed() work across all three and a
// program switches executor in one line. The workers are the other ranks of an MPI job:
//
//   (a) mpiexec -n N ./app        rank 0 runs main(); ranks 1..N-1 serve as workers
//   (b) ./app  (a job of one)     the pool starts max_workers (default: one per usable CPU) workers
//                                 running ./app with MPI_Comm_spawn, and ends them when it ends
//
// as mpi4py.futures does (`mpiexec -n N python -m mpi4py.futures app.py`, and MPIPoolExecutor's
// spawning). main() calls concur::mpi::main_guard() first: on rank 0 it returns; on every other
// rank, and in every spawned worker, it serves tasks until the pool or program ends and then
// exits the process (exit code 0), so the rest of main() runs on rank 0 only.
// What (b) needs from Open MPI 4.1 (checked here): openmpi-bin installed (the singleton starts an
// orted to spawn), OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 when run as
// root, and slots for the workers (spawn_oversubscribe, on by default, asks for
// map_by slot:OVERSUBSCRIBE; otherwise a singleton may spawn only as many as free cores). Each
// pool in mode (b) spawns its own workers; `mpiexec -n 1 ./app` is mode (b) as well.
//
// Tasks: a registered function (CONCUR_REGISTER, concur/multiprocessing/registry.hpp) and its
// cereal-encoded arguments, the very bytes the process pool sends (the same TaskMessage and
// ResultMessage); one MPI message carries what one of its frames would. A task's exception comes
// back as concur::RemoteError (type name, message, the worker's pid).
//
// Batching: tiny tasks travel many to a message, results many to a message. How many tasks each
// worker rank may have outstanding (the window) adapts to how long tasks take, as in the process
// pool: about a millisecond of work per rank, between 1 and max_in_flight, so that tiny tasks
// stream and long ones still spread over the ranks.
// Large data: an argument or result larger than 64 KiB is not copied into a batch: it goes as an
// MPI message of its own, sent from the encoded buffer and received (MPI_Probe, MPI_Get_count)
// straight into the buffer that is then decoded. Encoding and decoding are the only copies.
// No copy at all: an argument of type concur::multiprocessing::ByteBuffer
// (concur/multiprocessing/byte_buffer.hpp) of at least 64 KiB is not encoded: it is sent as its
// own MPI messages from the memory the ByteBuffer shares (kept alive until the worker has it),
// and the worker rank receives it into a buffer it reuses from task to task (so its pages are
// not faulted in again) and hands the function a ByteBuffer over those very bytes. A large
// std::vector argument is still encoded and decoded (one copy each side, into fresh memory).
//
// Faults (what MPI can and cannot tell; measured with Open MPI 4.1.4):
//  - The pool's communicator (a duplicate of MPI_COMM_WORLD) returns errors (MPI_ERRORS_RETURN);
//    an MPI call that fails breaks the pool with BrokenMpiPool naming the call and MPI's error.
//  - A worker rank that dies (SIGKILL, a crash, exit() in a task): under a plain `mpirun`, Open MPI
//    ends the whole job: mpirun sends SIGTERM to every other rank about a second later and
//    SIGKILL about a second after that, prints "mpirun noticed that process rank R ... exited on
//    signal 9", and exits non-zero (137 for SIGKILL). Rank 0's futures never complete because
//    rank 0 itself is ended: nothing hangs, but nothing can be caught either.
//  - Under `mpirun --enable-recovery` the job survives a dead rank. MPI itself reports nothing
//    then (sends to a dead rank still succeed), so each worker sends a heartbeat every 100 ms
//    while it holds tasks, and rank 0 declares a rank with outstanding tasks lost when it has
//    heard nothing from it for heartbeat_timeout (default 3 s): every pending future then fails
//    with concur::BrokenMpiPool, as the process pool fails with BrokenProcessPool, later
//    submits throw it, and the lost rank is never used again by this program. Once a rank is
//    lost, no rank calls MPI_Finalize at exit (Open MPI 4.1's finalize waits in a fence for the
//    dead rank too, sometimes forever); mpirun --enable-recovery accepts that and exits 0.
//  - Mode (b): the heartbeat works the same, but what Open MPI does to a singleton whose spawned
//    worker dies was not measured here; MPI_Comm_disconnect is skipped after such a loss.
//  - Not detectable: a worker stuck in a task while its heartbeat thread runs (a task that never
//    returns looks alive: use a map timeout), and rank 0 dying under --enable-recovery (the
//    workers then wait for tasks until mpirun is killed).
//
// States: running -> shut down (submit throws concur::RuntimeError) | broken (submit throws
// concur::BrokenMpiPool). The destructor is shutdown(true). One pool at a time per program:
// the worker ranks belong to it (constructing a second while one exists throws RuntimeError);
// after it is destroyed another may be made, served by the same ranks.
// Thread safety: every member from any thread. Callbacks of the futures run on the pool's own
// thread (the only thread of rank 0 that calls MPI while the pool exists): keep them short and
// never wait in one for another future of the same pool. The program's own MPI calls on rank 0
// must not overlap the pool's (MPI_THREAD_SERIALIZED); they use other communicators anyway.
// Blocking: submit() and map() never wait for a worker; shutdown(true) waits for every task.
// Idle ranks poll (MPI has no descriptor to wait on): they only yield for 200 us after their
// last message, then sleep with a backoff up to 1 ms (mpi4py.futures sleeps up to 1 ms too), so
// idle workers cost little CPU and the first task after a pause may wait up to that long.
// Lifetime: main_guard() before anything else in main(); the pool must be destroyed before main
// returns or exit() runs (a static pool is not supported: MPI is finalised at exit).
// Errors: std::invalid_argument for an unregistered function or max_in_flight == 0;
// concur::RuntimeError if main_guard() was not called, every worker rank was lost, the workers
// could not be spawned (the message says what Open MPI needs), or another pool exists.
//
// Example:
//   int square(int x) { return x * x; }
//   CONCUR_REGISTER(square);
//   int main(int argc, char** argv) {
//     concur::mpi::main_guard(argc, argv);        // ranks > 0 serve here and never return
//     concur::MpiPoolExecutor pool;
//     auto f = pool.submit(square, 7);             // f.result() == 49
//     for (int v : pool.map(square, std::vector{1, 2, 3}, {.chunksize = 64})) ...
//   }
//   $ mpiexec -n 4 ./app
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "concur/detail/chunked_map.hpp"
#include "concur/detail/remote_calls.hpp"
#include "concur/futures.hpp"
#include "concur/multiprocessing/byte_buffer.hpp"
#include "concur/multiprocessing/registry.hpp"

namespace concur {

namespace mpi {

// Mode (a)'s entry, the first line of main(): initialises MPI (MPI_THREAD_SERIALIZED). On rank
// 0 it returns and arranges for MPI to be finalised (and the workers released) when the program
// exits; on any other rank it serves an MpiPoolExecutor's tasks and then exits the process.
// Throws concur::RuntimeError if MPI cannot be initialised with the thread level the pool needs.
void main_guard(int& argc, char**& argv);

// This process's rank in MPI_COMM_WORLD, and the job's size (after main_guard).
int rank();
int size();

}  // namespace mpi

namespace detail {
class MpiPoolCore;
}

struct MpiPoolOptions {
  // Worker ranks to use (default: all of them, size() - 1; in mode (b), one per usable CPU).
  std::optional<std::size_t> max_workers = std::nullopt;
  // The most tasks a worker rank may have outstanding; the window adapts below it.
  std::size_t max_in_flight = 256;
  // A rank with outstanding tasks that has sent nothing for this long is lost (see Faults).
  std::chrono::milliseconds heartbeat_timeout = std::chrono::seconds(3);
  // Mode (b) only: spawn max_workers even where that is more than the free cores (Open MPI's
  // map_by slot:OVERSUBSCRIBE); without it Open MPI refuses more workers than free slots.
  bool spawn_oversubscribe = true;
};

struct MpiMapOptions {
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;
  std::size_t chunksize = 1;
  std::optional<std::size_t> buffersize = std::nullopt;  // chunks submitted ahead (see MapOptions)
};

class MpiPoolExecutor {
 public:
  MpiPoolExecutor() : MpiPoolExecutor(MpiPoolOptions{}) {}
  explicit MpiPoolExecutor(std::size_t max_workers)
      : MpiPoolExecutor(MpiPoolOptions{.max_workers = max_workers}) {}
  explicit MpiPoolExecutor(MpiPoolOptions options);
  ~MpiPoolExecutor();
  MpiPoolExecutor(const MpiPoolExecutor&) = delete;
  MpiPoolExecutor& operator=(const MpiPoolExecutor&) = delete;

  template <class R, class... P, class... A>
  Future<std::remove_cvref_t<R>> submit(R (*fn)(P...), A&&... args) {
    using Result = std::remove_cvref_t<R>;
    multiprocessing::detail::BufferOutbox outbox;  // large ByteBuffers go out of band
    multiprocessing::Call call = multiprocessing::make_call(fn, std::forward<A>(args)...);
    std::vector<std::string> one;
    one.push_back(std::move(call.args));
    auto [state, future] = detail::remote::new_state<Result>();
    schedule(state, &detail::remote::complete_one<Result>, std::move(call.function),
             std::move(call.signature), std::move(one), outbox.take());
    return std::move(future);
  }

  // Python's map(fn, inputs, timeout, chunksize, buffersize): results in input order; a tuple
  // input is unpacked into fn's parameters; with chunksize > 1 a failing input fails its chunk.
  template <class R, class... P, std::ranges::input_range Range>
  [[nodiscard]] auto map(R (*fn)(P...), Range&& inputs, const MpiMapOptions& options = {}) {
    using Result = detail::remote::map_value_t<R>;
    using View = std::views::all_t<Range>;
    detail::remote::check_chunksize(options.chunksize, "MpiPoolExecutor");
    const auto deadline =
        options.timeout ? detail::deadline_after(*options.timeout) : detail::Deadline(std::nullopt);
    auto submit_chunk = [this, fn](auto items) {
      multiprocessing::detail::BufferOutbox outbox;  // one numbering for the whole chunk
      std::vector<std::string> encoded;
      encoded.reserve(items.size());
      for (auto& item : items) encoded.push_back(detail::remote::encode_item(fn, std::move(item)));
      const multiprocessing::Call probe = multiprocessing::make_call_without_args(fn);
      auto [state, future] = detail::remote::new_state<std::vector<Result>>();
      schedule(state, &detail::remote::complete_chunk<Result>, probe.function, probe.signature,
               std::move(encoded), outbox.take());
      return std::move(future);
    };
    return detail::ChunkedMap<Result, View, decltype(submit_chunk)>(
        std::views::all(std::forward<Range>(inputs)), std::move(submit_chunk), options.chunksize,
        deadline,
        detail::remote::map_window<View>(options.buffersize, max_workers(), "MpiPoolExecutor"));
  }

  void shutdown(bool wait = true, bool cancel_futures = false);
  std::size_t max_workers() const noexcept;
  // The MPI_COMM_WORLD ranks serving this pool.
  std::vector<int> worker_ranks() const;

 private:
  using Completer = detail::remote::Completer;

  void schedule(detail::StateBase* state, Completer completer, std::string function,
                std::string signature, std::vector<std::string> args,
                std::vector<multiprocessing::ByteBuffer> buffers);

  std::unique_ptr<detail::MpiPoolCore> core_;
};

}  // namespace concur
