// concur/process_pool.hpp: ProcessPoolExecutor, Python's concurrent.futures.ProcessPoolExecutor.
//
// Runs registered functions (concur/multiprocessing/registry.hpp) in up to max_workers worker
// processes and hands back the same concur::Future as ThreadPoolExecutor, so wait() and
// as_completed() work across both. Workers start on demand with the pool's start method
// (default: the program's, initially forkserver); with spawn or forkserver, main() must call
// concur::multiprocessing::main_guard(argc, argv) first. With fork, as in Python, every worker is
// forked in the constructor (never later from the pool's own thread, which would fork a process
// with threads), so an explicit fork with max_tasks_per_child is refused (std::invalid_argument,
// Python's ValueError); with max_tasks_per_child and no start_method the pool uses spawn, as
// Python 3.11+ does, whatever the program's default.
//
// Semantics kept from Python: map() yields in input order (with `chunksize` inputs per message);
// a task's exception comes back as concur::RemoteError (type name, message, worker pid); an
// initializer runs first in each worker; max_tasks_per_child replaces a worker after that many
// tasks; shutdown(wait, cancel_futures). If a worker dies (killed, crashed, exit() in a task)
// every pending future fails at once with concur::BrokenProcessPool, the other workers are
// stopped, and later submits throw BrokenProcessPool: nothing hangs. Beyond Python, a pool made
// with on_worker_death = replace survives: only the dying worker's futures fail (WorkerDied).
//
// Faster than Python's: tasks and results are batched per worker (one write carries many), the
// number in flight per worker adapts to how long tasks take (many tiny ones, few long ones, so
// long tasks still balance across workers), and arguments are cereal-encoded, not pickled.
// A result finished before a long task is not held back by it: while a task runs for more than
// about a millisecond, a second thread in the worker sends the results already waiting.
//
// Large values: an argument or result of 64 KiB or more (shared_memory_threshold) travels through
// a shared-memory ring of its worker (a memfd made the first time one is needed: one descriptor in
// each process, memory only for the pages written; after a burst, an emptied ring keeps 32 MiB).
//
// What the workers do differently from a plain child: each keeps up to 32 MiB of freed heap for
// reuse (glibc mallopt M_MMAP_THRESHOLD/M_TRIM_THRESHOLD), so that a stream of large arguments
// does not fault fresh pages in for every message; and a worker that has batched results has
// that second (flusher) thread, so a task in it must not fork() without exec (use spawn or
// forkserver for processes started from a task).
//
// States: running -> shut down (submit throws concur::RuntimeError) | broken (submit throws
// concur::BrokenProcessPool). The destructor is shutdown(true).
// Thread safety: every member from any thread. Callbacks of the futures run on the pool's own
// thread: keep them short and never wait in one for another future of the same pool.
// Blocking: submit() and map() never wait for a worker; shutdown(true) waits for every task.
// Errors: std::invalid_argument for an unregistered function or max_workers == 0.
// From outside: `concur-ps PID` lists the pool's worker processes, the function each runs and how
// many tasks wait (concur/asyncio/inspect.hpp).
//
// Example:
//   int square(int x) { return x * x; }
//   CONCUR_REGISTER(square);
//   ...
//   concur::ProcessPoolExecutor pool(4);
//   auto f = pool.submit(square, 7);               // f.result() == 49
//   for (int v : pool.map(square, std::vector{1, 2, 3}, {.chunksize = 64})) ...
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "concur/detail/chunked_map.hpp"
#include "concur/detail/remote_calls.hpp"
#include "concur/futures.hpp"
#include "concur/multiprocessing/process.hpp"
#include "concur/multiprocessing/registry.hpp"

namespace concur {

namespace detail {
class ProcessPoolCore;
}

enum class WorkerDeath { break_pool, replace };

struct ProcessPoolOptions {
  std::optional<std::size_t> max_workers = std::nullopt;  // default: the CPUs this process may use
                                                          // (affinity), as Python 3.13
  std::optional<multiprocessing::StartMethod> start_method = std::nullopt;
  // Built with multiprocessing::make_call(init_fn, args...); runs first in every worker.
  std::optional<multiprocessing::Call> initializer = std::nullopt;
  // 0: workers live as long as the pool. Non-zero with start_method unset: the pool uses spawn.
  std::uint64_t max_tasks_per_child = 0;
  // With the fork start method all workers are forked at construction, and only if no other
  // thread runs then (see concur/multiprocessing/process.hpp), unless this is set.
  bool allow_fork_with_threads = false;
  // What a worker's death does (killed, crashed, exit() in a task):
  //   break_pool (Python's behaviour): every pending future fails with BrokenProcessPool and the
  //     pool runs no more tasks.
  //   replace: only the futures of the tasks that worker held fail, with concur::WorkerDied
  //     (a BrokenProcessPool) naming the signal or exit code and whether the cgroup's
  //     out-of-memory killer acted; the other workers and the queued tasks go on, and a new
  //     worker starts when there is work for it. "Held" is every task sent to that worker and not
  //     answered: a worker takes tasks in batches, so besides the one it was running some may
  //     have finished with their answers unsent, and some not started; none is run again (a task
  //     never runs twice), so all of them fail. A task that always kills its worker fails each
  //     time, so repeated deaths cannot make the pool start workers without end. An initializer
  //     that fails, or a program without main_guard, still breaks the pool (every worker would
  //     die the same way). Not with the fork start method (a replacement would be forked from a
  //     process with threads): the constructor refuses that (std::invalid_argument).
  WorkerDeath on_worker_death = WorkerDeath::break_pool;
  // Arguments and results whose encoding is at least this many bytes go through a shared-memory
  // ring between the pool and each worker instead of the worker's socket: three copies instead of
  // six, and no system call per 64 KiB. Nothing changes for the program (it still passes a plain
  // std::vector); the ring has no name, so nothing is ever left in /dev/shm, crash or not. A value
  // that does not fit in the ring's free room at that moment (256 MiB) goes through the socket.
  // 0: everything through the socket.
  std::size_t shared_memory_threshold = 64 * 1024;
};

struct ProcessMapOptions {
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;
  std::size_t chunksize = 1;
  std::optional<std::size_t> buffersize = std::nullopt;  // chunks submitted ahead (see MapOptions)
};

class ProcessPoolExecutor {
 public:
  ProcessPoolExecutor() : ProcessPoolExecutor(ProcessPoolOptions{}) {}
  explicit ProcessPoolExecutor(std::size_t max_workers)
      : ProcessPoolExecutor(ProcessPoolOptions{.max_workers = max_workers}) {}
  explicit ProcessPoolExecutor(ProcessPoolOptions options);
  ~ProcessPoolExecutor();
  ProcessPoolExecutor(const ProcessPoolExecutor&) = delete;
  ProcessPoolExecutor& operator=(const ProcessPoolExecutor&) = delete;

  template <class R, class... P, class... A>
  Future<std::remove_cvref_t<R>> submit(R (*fn)(P...), A&&... args) {
    using Result = std::remove_cvref_t<R>;
    multiprocessing::detail::FdOutbox outbox;  // descriptors among the arguments travel too
    multiprocessing::Call call = multiprocessing::make_call(fn, std::forward<A>(args)...);
    std::vector<std::string> one;
    one.push_back(std::move(call.args));
    auto [state, future] = detail::remote::new_state<Result>();
    schedule(state, &detail::remote::complete_one<Result>, std::move(call.function),
             std::move(call.signature), std::move(one), take_fds(outbox));
    return std::move(future);
  }

  // Python's map(fn, inputs, timeout, chunksize): results in input order; a tuple input is
  // unpacked into fn's parameters. With chunksize > 1 each message carries that many inputs and
  // a failing input fails its whole chunk (as in Python).
  template <class R, class... P, std::ranges::input_range Range>
  [[nodiscard]] auto map(R (*fn)(P...), Range&& inputs, const ProcessMapOptions& options = {}) {
    using Result = detail::remote::map_value_t<R>;
    using View = std::views::all_t<Range>;
    detail::remote::check_chunksize(options.chunksize, "ProcessPoolExecutor");
    const auto deadline =
        options.timeout ? detail::deadline_after(*options.timeout) : detail::Deadline(std::nullopt);
    auto submit_chunk = [this, fn](auto items) {
      multiprocessing::detail::FdOutbox outbox;  // descriptors among the inputs travel too
      std::vector<std::string> encoded;
      encoded.reserve(items.size());
      for (auto& item : items) encoded.push_back(detail::remote::encode_item(fn, std::move(item)));
      const multiprocessing::Call probe = multiprocessing::make_call_without_args(fn);
      auto [state, future] = detail::remote::new_state<std::vector<Result>>();
      schedule(state, &detail::remote::complete_chunk<Result>, probe.function, probe.signature,
               std::move(encoded), take_fds(outbox));
      return std::move(future);
    };
    return detail::ChunkedMap<Result, View, decltype(submit_chunk)>(
        std::views::all(std::forward<Range>(inputs)), std::move(submit_chunk), options.chunksize,
        deadline,
        detail::remote::map_window<View>(options.buffersize, max_workers(), "ProcessPoolExecutor"));
  }

  void shutdown(bool wait = true, bool cancel_futures = false);
  // Python 3.14's terminate_workers() / kill_workers(): shutdown(wait=false, cancel_futures=true),
  // then SIGTERM / SIGKILL to every worker still alive; returns once they are signalled (not
  // reaped: the destructor or shutdown(true) waits for that). The pool is then shut down for
  // good: submit() throws concur::RuntimeError or, once a killed worker has been noticed,
  // concur::BrokenProcessPool (in Python both are RuntimeErrors); a task that was running fails
  // with BrokenProcessPool, queued ones are cancelled. With no workers it is only the shutdown.
  void terminate_workers();
  void kill_workers();
  std::size_t max_workers() const noexcept;
  // Worker processes started so far (replacements included).
  std::size_t processes_started() const noexcept;
  // The pids of the workers running now.
  std::vector<int> worker_pids() const;

 private:
  using Completer = detail::remote::Completer;

  static std::vector<int> take_fds(multiprocessing::detail::FdOutbox& outbox);
  void schedule(detail::StateBase* state, Completer completer, std::string function,
                std::string signature, std::vector<std::string> args, std::vector<int> fds);

  std::unique_ptr<detail::ProcessPoolCore> core_;
};

}  // namespace concur
