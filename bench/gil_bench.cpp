// bench/gil_bench: what concur::InterpreterLock costs, beside the primitives it is built from.
//
//   checkpoint   the eval breaker when nobody waits (instrumentation off and on), beside the floor
//                (one relaxed atomic load) and an uncontended std::mutex lock+unlock     ns
//   handoff      one thread releases, the thread blocked in acquire() gets the lock: the time
//                from release() to acquire() returning, per policy, beside the same handoff
//                through std::mutex and through std::condition_variable                 us p50
//   convoy       a CPU-bound thread beside an I/O thread (one-byte round trips through `cat`,
//                support/convoy.hpp): the CPU-bound thread's rate as a share of its rate alone
//                (headline) and the I/O thread's (io_share), per policy, beside no lock at all
//                (free_threaded: the ceiling this machine allows)                        x
//
// Usage: gil_bench [--json FILE] [--quick] [Google Benchmark flags] (--help lists them)
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <concur/gil.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common/options.hpp"
#include "common/race.hpp"
#include "convoy.hpp"
#include "stats.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// How much each case does, full or --quick.
struct Workload {
  int handoffs;  // lock hand-offs per repetition, half by each side
};

Workload workload(const concur::bench::RaceOptions& options) {
  return {.handoffs = options.quick ? 2'000 : 20'000};
}

// ---------------------------------------------------------------------------------------------
// checkpoint

void checkpoint_lock(benchmark::State& state, bool instrument) {
  concur::InterpreterLock gil({.instrument = instrument});
  concur::GilGuard hold(gil);
  constexpr int kBatch = 1000;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (int i = 0; i < 100'000; ++i) {
      for (int k = 0; k < kBatch; ++k) gil.checkpoint();
      benchmark::ClobberMemory();
    }
    state.counters["ns"] =
        std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / (100'000.0 * kBatch);
  }
}

void checkpoint_off(benchmark::State& state) {
  checkpoint_lock(state, false);
}
void checkpoint_on(benchmark::State& state) {
  checkpoint_lock(state, true);
}

[[gnu::noinline]] void never_called(std::atomic<bool>& flag) {
  flag.store(false);
}

// The floor: the same branch on a relaxed load that checkpoint() is, on a flag of our own.
void checkpoint_floor(benchmark::State& state) {
  std::atomic<bool> flag{false};
  constexpr int kBatch = 1000;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (int i = 0; i < 100'000; ++i) {
      for (int k = 0; k < kBatch; ++k) {
        if (flag.load(std::memory_order_relaxed)) [[unlikely]] {
          never_called(flag);
        }
      }
      benchmark::ClobberMemory();
    }
    state.counters["ns"] =
        std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / (100'000.0 * kBatch);
  }
}

void checkpoint_mutex(benchmark::State& state) {
  std::mutex mu;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (int i = 0; i < 10'000'000; ++i) {
      mu.lock();
      mu.unlock();
    }
    state.counters["ns"] =
        std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / 10'000'000.0;
  }
}

// ---------------------------------------------------------------------------------------------
// handoff: two threads pass the lock back and forth; each release happens only once the other
// thread is known to be blocked in acquire(), and the latency is release -> acquire returned.

void report_latencies(benchmark::State& state, std::vector<double> us) {
  state.counters["p50_us"] = concur::support::median_of(us);
  state.counters["p99_us"] = concur::support::percentile_of(std::move(us), 99);
}

void handoff_gil(benchmark::State& state, concur::GilPolicy policy, const Workload& w) {
  for (auto _ : state) {
    concur::InterpreterLock gil({.policy = policy});
    std::atomic<std::int64_t> released_at{0};
    std::atomic<int> acquired[2] = {0, 0};  // per side: how many times it got the lock
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(w.handoffs));
    const int rounds = w.handoffs / 2;
    // Side 0 starts holding. Each release waits until the other side is blocked in acquire();
    // after a release a side waits until the other has the lock before it asks again, so that a
    // policy that lets a releaser barge back in (cpython) is still measured on a true hand-off.
    auto side = [&](int me, std::vector<double>* record) {
      const int other = 1 - me;
      for (int i = 0; i < rounds; ++i) {
        if (me == 1 || i > 0) {
          gil.acquire();
          const auto now = Clock::now().time_since_epoch().count();
          acquired[me].fetch_add(1);
          if (record) record->push_back(static_cast<double>(now - released_at.load()) / 1e3);
        }
        const bool nobody_follows = me == 1 && i == rounds - 1;
        while (!nobody_follows && gil.stats().waiters == 0) std::this_thread::yield();
        const int seen = acquired[other].load();
        released_at.store(Clock::now().time_since_epoch().count());
        gil.release();
        while (!nobody_follows && acquired[other].load() == seen) std::this_thread::yield();
      }
    };
    gil.acquire();  // side 0 starts holding
    std::thread other(side, 1, nullptr);
    side(0, &us);
    other.join();
    report_latencies(state, std::move(us));
  }
}

void handoff_condvar(benchmark::State& state, const Workload& w) {
  for (auto _ : state) {
    std::mutex mu;
    std::condition_variable cv;
    int turn = 0;
    std::int64_t released_at = 0;
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(w.handoffs));
    auto side = [&](int me, std::vector<double>* record) {
      for (int i = 0; i < w.handoffs / 2; ++i) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return turn == me; });
        if (record && released_at != 0) {
          record->push_back(
              static_cast<double>(Clock::now().time_since_epoch().count() - released_at) / 1e3);
        }
        turn = 1 - me;
        released_at = Clock::now().time_since_epoch().count();
        cv.notify_one();
      }
    };
    std::thread other(side, 1, nullptr);
    side(0, &us);
    other.join();
    report_latencies(state, std::move(us));
  }
}

// ---------------------------------------------------------------------------------------------
// convoy: each repetition measures both threads alone, then together, so that each share is
// taken against a baseline of the same moment of this noisy machine.

void convoy(benchmark::State& state, concur::InterpreterLockOptions lock, double seconds) {
  concur::support::PipeEcho echo;
  for (auto _ : state) {
    const auto io_alone = concur::support::run_convoy(echo, lock, seconds, true, false);
    const auto cpu_alone = concur::support::run_convoy(echo, lock, seconds, false, true);
    const auto both = concur::support::run_convoy(echo, lock, seconds, true, true);
    state.counters["cpu_share"] = both.cpu_per_s / cpu_alone.cpu_per_s;
    state.counters["io_share"] = both.io_per_s / io_alone.io_per_s;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const concur::bench::RaceOptions options = concur::bench::parse_race_options(
      argc, argv,
      "InterpreterLock's checkpoint and hand-off beside the primitives it is built from",
      concur::bench::PythonPeers::none, "a tenth of the hand-offs");
  const Workload w = workload(options);
  const int repetitions = options.repetitions();

  concur::bench::Race race(
      fmt::format("InterpreterLock, {} repetitions, interleaved", repetitions));
  race.add_scenario({"checkpoint", "checkpoint() with nobody waiting", "ns", "ns", true, {}});
  race.add_scenario({"handoff",
                     "hand-off from release() to a blocked acquire()",
                     "p50_us",
                     "us",
                     true,
                     {"p99_us"}});
  auto reg = [&](const char* name, auto fn) {
    benchmark::RegisterBenchmark(name, fn)->Iterations(1)->Repetitions(repetitions)->UseRealTime();
  };
  reg("checkpoint/concur", checkpoint_off);
  reg("checkpoint/concur_instrumented", checkpoint_on);
  reg("checkpoint/relaxed_load_floor", checkpoint_floor);
  reg("checkpoint/std_mutex_lock_unlock", checkpoint_mutex);
  for (auto [peer, policy] :
       {std::pair{"handoff/concur", concur::GilPolicy::cpython},
        std::pair{"handoff/concur_fifo", concur::GilPolicy::fifo},
        std::pair{"handoff/concur_io_priority", concur::GilPolicy::io_priority}}) {
    reg(peer, [w, policy = policy](benchmark::State& state) { handoff_gil(state, policy, w); });
  }
  reg("handoff/condition_variable", [w](benchmark::State& state) { handoff_condvar(state, w); });
  race.add_scenario({"convoy",
                     "CPU-bound thread beside an I/O thread: its rate vs alone (5 ms interval)",
                     "cpu_share",
                     "x",
                     false,
                     {"io_share"}});
  const double convoy_seconds = options.quick ? 0.1 : 0.4;
  for (auto [peer, policy] :
       {std::pair{"convoy/concur", concur::GilPolicy::cpython},
        std::pair{"convoy/concur_io_priority", concur::GilPolicy::io_priority}}) {
    reg(peer, [policy = policy, convoy_seconds](benchmark::State& state) {
      convoy(state, {.policy = policy}, convoy_seconds);
    });
  }
  reg("convoy/no_lock_ceiling", [convoy_seconds](benchmark::State& state) {
    convoy(state, {.free_threaded = true}, convoy_seconds);
  });

  return race.run(options);
}
