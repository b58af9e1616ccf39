// bench/thread_pool_bench: concur::ThreadPoolExecutor against the thread pools this machine has,
// in one run, on the workloads of issues 2 and 10. Every pool has 2 worker threads; the thread
// that submits and waits is a third.
//
//   a_submit_result  submit 200,000 tasks returning an int, then result() of each     tasks/s
//   b_round_trip     submit(f).result(), one at a time                                 us p50, p99
//   c_fan_out_in     1,000 tasks of ~1 us of work each, submitted then all awaited     ms
//   d_nested_fib     fib(25) where every call is a task waiting on its two children    ms
//   e_map            map() over 100,000 integers, results read in order                items/s
//
// Peers: oneTBB task_arena + std::future, oneTBB task_group (no futures; the caller helps in
// wait()), Boost.Asio thread_pool + std::packaged_task, the Debian thread_pool library (mutex +
// condition variable queues, as most hand-written pools are), std::async (a thread per task), and
// CPython's ThreadPoolExecutor(2) through /usr/bin/python3 (bench/peers/cpython_thread_pool.py).
//
// Usage: thread_pool_bench [--python PATH] [--json FILE] [--quick] [Google Benchmark flags]
//   (--help lists them)
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <thread_pool/thread_pool.hpp>
#include <utility>  // before Asio: Boost 1.74's Asio misses it on libstdc++ 12

#include <chrono>
#include <concur/thread_pool.hpp>
#include <cstdio>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "common/busy_work.hpp"
#include "common/options.hpp"
#include "common/race.hpp"
#include "python.hpp"
#include "stats.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using concur::support::median_of;
using concur::support::percentile_of;

constexpr int kWorkers = 2;

// How much each case does, full or --quick.
struct Workload {
  int submit_tasks;  // (a)
  int round_trips;   // (b)
  int fan_out;       // (c): tasks in one fan-out
  int fan_out_reps;  // (c): fan-outs in one repetition
  int fib_n;         // (d)
  int map_items;     // (e)
  // One (c) task's arithmetic: ~1 us once calibrate_work() has run.
  std::uint64_t work_iterations = 300;
};

Workload workload(const concur::bench::RaceOptions& options) {
  if (options.quick) {
    return {.submit_tasks = 20'000,
            .round_trips = 2'000,
            .fan_out = 1'000,
            .fan_out_reps = 5,
            .fib_n = 20,
            .map_items = 10'000};
  }
  return {.submit_tasks = 200'000,
          .round_trips = 10'000,
          .fan_out = 1'000,
          .fan_out_reps = 20,
          .fib_n = 25,
          .map_items = 100'000};
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using concur::bench::busy_work;  // ~1 µs of arithmetic with the calibrated iterations

double serial_fan_out_ms(const Workload& w) {
  std::vector<double> runs;
  for (int r = 0; r < 21; ++r) {
    const auto t0 = Clock::now();
    std::uint64_t sink = 0;
    for (int i = 0; i < w.fan_out; ++i)
      sink += busy_work(static_cast<std::uint64_t>(i), w.work_iterations);
    benchmark::DoNotOptimize(sink);
    runs.push_back(seconds_since(t0) * 1e3);
  }
  return median_of(runs);
}

// Calibrated once so that a serial loop of 1,000 tasks' work takes ~0.9 ms.
void calibrate_work(Workload& w) {
  for (int round = 0; round < 6; ++round) {
    const double ms = serial_fan_out_ms(w);
    w.work_iterations = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(static_cast<double>(w.work_iterations) * 0.9 / ms));
  }
}

long fib_serial(int n) {
  return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

// ---------------------------------------------------------------------------------------------
// One adapter per future-returning pool: submit(f) -> a future; get(future) -> value.

// The pools whose futures are std::future-like.
struct StdFutureGet {
  template <class Fut>
  static decltype(auto) get(Fut& f) {
    return f.get();
  }
};

struct ConcurPool {
  static constexpr const char* name = "concur";
  concur::ThreadPoolExecutor pool{kWorkers};
  template <class F>
  auto submit(F&& f) {
    return pool.submit(std::forward<F>(f));
  }
  template <class Fut>
  static decltype(auto) get(Fut& f) {
    return f.result();
  }
};

struct TbbArenaPool : StdFutureGet {
  static constexpr const char* name = "tbb_arena_future";
  tbb::task_arena arena{kWorkers, 0};
  template <class F>
  auto submit(F&& f) {
    using R = std::invoke_result_t<F>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(f));
    auto future = task->get_future();
    arena.enqueue([task] { (*task)(); });
    return future;
  }
};

struct AsioPool : StdFutureGet {
  static constexpr const char* name = "asio_packaged_task";
  boost::asio::thread_pool pool{kWorkers};
  ~AsioPool() { pool.join(); }
  template <class F>
  auto submit(F&& f) {
    using R = std::invoke_result_t<F>;
    std::packaged_task<R()> task(std::forward<F>(f));
    auto future = task.get_future();
    boost::asio::post(pool, std::move(task));
    return future;
  }
};

struct MutexCondvarPool : StdFutureGet {
  static constexpr const char* name = "mutex_condvar_pool";
  thread_pool::ThreadPool pool{kWorkers};
  template <class F>
  auto submit(F&& f) {
    return pool.Submit(std::forward<F>(f));
  }
};

struct StdAsync : StdFutureGet {
  static constexpr const char* name = "std_async";
  template <class F>
  auto submit(F&& f) {
    return std::async(std::launch::async, std::forward<F>(f));
  }
};

template <class Pool>
Pool& pool_instance() {
  static Pool pool;
  return pool;
}

// ---------------------------------------------------------------------------------------------
// The scenarios, generic over future-returning pools.

template <class Pool>
void a_submit_result(benchmark::State& state, const Workload& w) {
  Pool& pool = pool_instance<Pool>();
  // std::async starts a thread per task; a tenth of the tasks gives the same rate in a tenth of
  // the time.
  const int n = std::is_same_v<Pool, StdAsync> ? w.submit_tasks / 10 : w.submit_tasks;
  for (auto _ : state) {
    using Future = decltype(pool.submit([] { return 0; }));
    std::vector<Future> futures;
    futures.reserve(static_cast<std::size_t>(n));
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) futures.push_back(pool.submit([i] { return i; }));
    long sum = 0;
    for (auto& f : futures) sum += Pool::get(f);
    const double dt = seconds_since(t0);
    if (sum != static_cast<long>(n) * (n - 1) / 2) state.SkipWithError("wrong sum");
    state.counters["tasks_per_s"] = n / dt;
  }
}

template <class Pool>
void b_round_trip(benchmark::State& state, const Workload& w) {
  Pool& pool = pool_instance<Pool>();
  const int n = std::is_same_v<Pool, StdAsync> ? w.round_trips / 10 : w.round_trips;
  for (auto _ : state) {
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      const auto t0 = Clock::now();
      auto f = pool.submit([i] { return i; });
      if (Pool::get(f) != i) state.SkipWithError("wrong value");
      us.push_back(seconds_since(t0) * 1e6);
    }
    state.counters["p50_us"] = median_of(us);
    state.counters["p99_us"] = percentile_of(us, 99);
  }
}

template <class Pool>
void c_fan_out_in(benchmark::State& state, const Workload& w) {
  Pool& pool = pool_instance<Pool>();
  for (auto _ : state) {
    std::vector<double> ms;
    for (int r = 0; r < w.fan_out_reps; ++r) {
      using Future = decltype(pool.submit([] { return std::uint64_t{0}; }));
      std::vector<Future> futures;
      futures.reserve(static_cast<std::size_t>(w.fan_out));
      const auto t0 = Clock::now();
      for (int i = 0; i < w.fan_out; ++i) {
        futures.push_back(pool.submit([i, iterations = w.work_iterations] {
          return busy_work(static_cast<std::uint64_t>(i), iterations);
        }));
      }
      if constexpr (std::is_same_v<Pool, ConcurPool>) concur::wait(futures);
      std::uint64_t sum = 0;
      for (auto& f : futures) sum += Pool::get(f);
      ms.push_back(seconds_since(t0) * 1e3);
      benchmark::DoNotOptimize(sum);
    }
    state.counters["ms"] = median_of(ms);
  }
}

long concur_fib(concur::ThreadPoolExecutor& pool, int n) {
  if (n < 2) return n;
  auto a = pool.submit(concur_fib, std::ref(pool), n - 1);
  auto b = pool.submit(concur_fib, std::ref(pool), n - 2);
  return a.result() + b.result();
}

void d_nested_fib_concur(benchmark::State& state, const Workload& w) {
  ConcurPool& pool = pool_instance<ConcurPool>();
  const long expected = fib_serial(w.fib_n);
  for (auto _ : state) {
    std::vector<double> ms;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = Clock::now();
      const long v = pool.pool.submit(concur_fib, std::ref(pool.pool), w.fib_n).result();
      ms.push_back(seconds_since(t0) * 1e3);
      if (v != expected) state.SkipWithError("wrong fib");
    }
    state.counters["ms"] = median_of(ms);
  }
}

template <class Pool>
void e_map(benchmark::State& state, const Workload& w) {
  Pool& pool = pool_instance<Pool>();
  std::vector<int> items(static_cast<std::size_t>(w.map_items));
  std::iota(items.begin(), items.end(), 0);
  for (auto _ : state) {
    const auto t0 = Clock::now();
    long sum = 0;
    if constexpr (std::is_same_v<Pool, ConcurPool>) {
      for (int v : pool.pool.map([](int x) { return x * 2; }, items)) sum += v;
    } else {
      using Future = decltype(pool.submit([] { return 0; }));
      std::vector<Future> futures;
      futures.reserve(items.size());
      for (int x : items) futures.push_back(pool.submit([x] { return x * 2; }));
      for (auto& f : futures) sum += Pool::get(f);
    }
    const double dt = seconds_since(t0);
    if (sum != static_cast<long>(w.map_items) * (w.map_items - 1)) state.SkipWithError("wrong sum");
    state.counters["items_per_s"] = w.map_items / dt;
  }
}

// ---------------------------------------------------------------------------------------------
// oneTBB task_group: no futures; the waiting thread runs tasks too (a third thread in the arena).

struct TbbGroup {
  tbb::task_arena arena{kWorkers + 1, 1};
};

void a_submit_result_tbb_group(benchmark::State& state, const Workload& w) {
  TbbGroup& tbb = pool_instance<TbbGroup>();
  std::vector<int> results(static_cast<std::size_t>(w.submit_tasks));
  for (auto _ : state) {
    double dt = 0;
    tbb.arena.execute([&] {
      tbb::task_group group;
      const auto t0 = Clock::now();
      for (int i = 0; i < w.submit_tasks; ++i) {
        group.run([&results, i] { results[static_cast<std::size_t>(i)] = i; });
      }
      group.wait();
      dt = seconds_since(t0);
    });
    state.counters["tasks_per_s"] = w.submit_tasks / dt;
  }
}

void c_fan_out_in_tbb_group(benchmark::State& state, const Workload& w) {
  TbbGroup& tbb = pool_instance<TbbGroup>();
  std::vector<std::uint64_t> results(static_cast<std::size_t>(w.fan_out));
  for (auto _ : state) {
    std::vector<double> ms;
    for (int r = 0; r < w.fan_out_reps; ++r) {
      tbb.arena.execute([&] {
        tbb::task_group group;
        const auto t0 = Clock::now();
        for (int i = 0; i < w.fan_out; ++i) {
          group.run([&results, i, iterations = w.work_iterations] {
            results[static_cast<std::size_t>(i)] =
                busy_work(static_cast<std::uint64_t>(i), iterations);
          });
        }
        group.wait();
        ms.push_back(seconds_since(t0) * 1e3);
      });
    }
    state.counters["ms"] = median_of(ms);
  }
}

long tbb_fib(int n) {
  if (n < 2) return n;
  long a = 0;
  long b = 0;
  tbb::task_group group;
  group.run([&] { a = tbb_fib(n - 1); });
  group.run([&] { b = tbb_fib(n - 2); });
  group.wait();
  return a + b;
}

void d_nested_fib_tbb_group(benchmark::State& state, const Workload& w) {
  TbbGroup& tbb = pool_instance<TbbGroup>();
  const long expected = fib_serial(w.fib_n);
  for (auto _ : state) {
    std::vector<double> ms;
    for (int r = 0; r < 3; ++r) {
      long v = 0;
      const auto t0 = Clock::now();
      tbb.arena.execute([&] { v = tbb_fib(w.fib_n); });
      ms.push_back(seconds_since(t0) * 1e3);
      if (v != expected) state.SkipWithError("wrong fib");
    }
    state.counters["ms"] = median_of(ms);
  }
}

void e_map_tbb_group(benchmark::State& state, const Workload& w) {
  TbbGroup& tbb = pool_instance<TbbGroup>();
  std::vector<int> results(static_cast<std::size_t>(w.map_items));
  for (auto _ : state) {
    double dt = 0;
    tbb.arena.execute([&] {
      tbb::task_group group;
      const auto t0 = Clock::now();
      for (int i = 0; i < w.map_items; ++i) {
        group.run([&results, i] { results[static_cast<std::size_t>(i)] = i * 2; });
      }
      group.wait();
      long sum = 0;
      for (int v : results) sum += v;
      benchmark::DoNotOptimize(sum);
      dt = seconds_since(t0);
    });
    state.counters["items_per_s"] = w.map_items / dt;
  }
}

void serial_reference(benchmark::State& state, const Workload& w) {
  for (auto _ : state) state.counters["ms"] = serial_fan_out_ms(w);
}

using Case = void (*)(benchmark::State&, const Workload&);

// One benchmark "<scenario>/<peer>": one iteration a repetition, its figures its own counters.
void register_case(const std::string& scenario, const std::string& peer, Case fn, const Workload& w,
                   int repetitions) {
  benchmark::RegisterBenchmark((scenario + "/" + peer).c_str(),
                               [w, fn](benchmark::State& state) { fn(state, w); })
      ->Iterations(1)
      ->Repetitions(repetitions)
      ->UseRealTime();
}

template <class Pool>
void register_future_pool(const Workload& w, int repetitions, bool fib_deadlocks,
                          concur::bench::Race& race) {
  const std::string peer = Pool::name;
  auto reg = [&](const char* scenario, Case fn) {
    register_case(scenario, peer, fn, w, repetitions);
  };
  reg("a_submit_result", a_submit_result<Pool>);
  reg("b_round_trip", b_round_trip<Pool>);
  reg("c_fan_out_in", c_fan_out_in<Pool>);
  if (fib_deadlocks) {
    race.add_note("d_nested_fib", peer,
                  "not run: deadlocks (workers block in get(), nobody runs the children)");
  }
  if (!std::is_same_v<Pool, StdAsync>) reg("e_map", e_map<Pool>);
}

}  // namespace

int main(int argc, char** argv) {
  const concur::bench::RaceOptions options = concur::bench::parse_race_options(
      argc, argv, "concur::ThreadPoolExecutor beside the thread pools this machine has",
      concur::bench::PythonPeers::some,
      "a tenth of the tasks and items, fewer round trips and fan-outs, fib(20)");
  Workload w = workload(options);
  const int repetitions = options.repetitions();
  // The pools must not outnumber the cores they are given: cap TBB at our thread budget.
  tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, kWorkers + 1);
  calibrate_work(w);

  concur::bench::Race race(fmt::format(
      "Thread pools, {} workers each (the submitting thread is a third); {} repetitions, "
      "interleaved",
      kWorkers, repetitions));
  race.add_scenario(
      {"a_submit_result",
       fmt::format("(a) submit {} tasks returning an int, then result() of all", w.submit_tasks),
       "tasks_per_s",
       "tasks/s",
       false,
       {}});
  race.add_scenario({"b_round_trip",
                     "(b) one task's round trip, submit(f).result()",
                     "p50_us",
                     "us",
                     true,
                     {"p99_us"}});
  race.add_scenario(
      {"c_fan_out_in",
       fmt::format("(c) fan-out/fan-in of {} tasks of ~1 us (serial loop below)", w.fan_out),
       "ms",
       "ms",
       true,
       {}});
  race.add_scenario(
      {"d_nested_fib",
       fmt::format("(d) fib({}), every call a task waiting on its two children", w.fib_n),
       "ms",
       "ms",
       true,
       {}});
  race.add_scenario({"e_map",
                     fmt::format("(e) map over {} integers", w.map_items),
                     "items_per_s",
                     "items/s",
                     false,
                     {}});

  register_future_pool<ConcurPool>(w, repetitions, false, race);
  register_case("d_nested_fib", "concur", d_nested_fib_concur, w, repetitions);
  register_future_pool<TbbArenaPool>(w, repetitions, false, race);
  race.add_note("d_nested_fib", "tbb_arena_future", "-");
  register_future_pool<AsioPool>(w, repetitions, true, race);
  register_future_pool<MutexCondvarPool>(w, repetitions, true, race);
  register_future_pool<StdAsync>(w, repetitions, false, race);
  race.add_note("d_nested_fib", "std_async", "not run: a thread per call, 121k threads");
  race.add_note("e_map", "std_async", "not run: a thread per item");
  for (auto [scenario, fn] :
       {std::pair<const char*, Case>{"a_submit_result", a_submit_result_tbb_group},
        {"c_fan_out_in", c_fan_out_in_tbb_group},
        {"d_nested_fib", d_nested_fib_tbb_group},
        {"e_map", e_map_tbb_group}}) {
    register_case(scenario, "tbb_task_group", fn, w, repetitions);
  }
  race.add_note("b_round_trip", "tbb_task_group", "n/a (runs inline)");
  register_case("c_fan_out_in", "serial_loop", serial_reference, w, repetitions);

  // CPython, measured by its own program in the same run, before the C++ pools start.
  concur::support::Python cpython(options.python);
  if (auto why_not = cpython.unavailable()) {
    race.add_skipped("cpython", *why_not);
  } else {
    const nlohmann::json result = cpython.run_json(
        "cpython_thread_pool.py",
        {"--tasks", std::to_string(w.submit_tasks), "--round-trips", std::to_string(w.round_trips),
         "--fan-out", std::to_string(w.fan_out), "--map-items", std::to_string(w.map_items),
         "--repetitions", std::to_string(repetitions)},
        std::chrono::seconds(900));
    for (const auto& [scenario, counters] : result.items()) {
      for (const auto& [counter, values] : counters.items()) {
        race.add_external(scenario, "cpython", counter, values.get<std::vector<double>>());
      }
    }
    race.add_note("d_nested_fib", "cpython", "not run: deadlocks (as in Python's docs)");
  }

  return race.run(options);
}
