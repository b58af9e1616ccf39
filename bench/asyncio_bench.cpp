// bench/asyncio_bench: concur::asyncio's coroutine costs beside CPython's asyncio and uvloop, in
// one run, on the coroutine goals of issue 12:
//
//   a_switch         two tasks take turns through sleep(0), N turns each              ns/switch
//   a_switch_event   two tasks ping-pong through two Events, N round trips            ns/switch
//   b_create_gather  create 100,000 tasks (each returns its argument) and gather them  tasks/s
//   c_parked_task    100,000 tasks each parked on one Event: heap bytes per task      B/task
//
// Issue 12's goals: a switch <= 50 ns, create-and-gather >= 5M tasks/s, a parked task <= 256 B.
// Peers, measured by bench/peers/cpython_asyncio.py through /usr/bin/python3 in the same run:
// asyncio ("cpython_asyncio") and uvloop ("uvloop"; skipped with the reason where missing).
// Bytes per parked task: the growth of the C heap (glibc mallinfo2 in-use bytes) over the count;
// Python's side uses tracemalloc plus the interpreter's object sizes (see the script).
//
// Usage: asyncio_bench [--python PATH] [--json FILE] [--quick] [Google Benchmark flags]
//   (--help lists them)
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <malloc.h>

#include <chrono>
#include <concur/asyncio.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/options.hpp"
#include "common/race.hpp"
#include "python.hpp"

namespace {

namespace asyncio = concur::asyncio;
using Clock = std::chrono::steady_clock;

// How much each case does, full or --quick.
struct Workload {
  int switches;  // turns (a) and rounds (a') each task takes
  int tasks;     // tasks created in (b) and parked in (c)
};

Workload workload(const concur::bench::RaceOptions& options) {
  if (options.quick) return {.switches = 100'000, .tasks = 10'000};
  return {.switches = 1'000'000, .tasks = 100'000};
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

asyncio::Task<void> yielder(int turns, long* count) {
  for (int i = 0; i < turns; ++i) {
    co_await asyncio::sleep(std::chrono::nanoseconds(0));
    ++*count;
  }
}

asyncio::Task<double> switch_sleep0(int turns) {
  long count = 0;
  auto t0 = Clock::now();
  co_await asyncio::gather(yielder(turns, &count), yielder(turns, &count));
  double dt = seconds_since(t0);
  if (count != 2L * turns) throw std::runtime_error("a_switch: wrong number of turns");
  co_return dt * 1e9 / static_cast<double>(count);
}

asyncio::Task<void> pinger(int rounds, asyncio::Event& mine, asyncio::Event& theirs, long* n) {
  for (int i = 0; i < rounds; ++i) {
    co_await mine.wait();
    mine.clear();
    ++*n;
    theirs.set();
  }
}

asyncio::Task<double> switch_event(int rounds) {
  asyncio::Event a;
  asyncio::Event b;
  long count = 0;
  a.set();
  auto t0 = Clock::now();
  co_await asyncio::gather(pinger(rounds, a, b, &count), pinger(rounds, b, a, &count));
  double dt = seconds_since(t0);
  if (count != 2L * rounds) throw std::runtime_error("a_switch_event: wrong count");
  co_return dt * 1e9 / static_cast<double>(count);
}

asyncio::Task<int> identity(int x) {
  co_return x;
}

asyncio::Task<double> create_gather(int n) {
  auto t0 = Clock::now();
  std::vector<asyncio::Task<int>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) tasks.push_back(asyncio::create_task(identity(i)));
  std::vector<int> out = co_await asyncio::gather(std::move(tasks));
  double dt = seconds_since(t0);
  for (int i = 0; i < n; ++i) {
    if (out[static_cast<std::size_t>(i)] != i) throw std::runtime_error("b: wrong result");
  }
  co_return static_cast<double>(n) / dt;
}

asyncio::Task<void> parked(asyncio::Event& e) {
  co_await e.wait();
}

asyncio::Task<double> parked_bytes(int n) {
  asyncio::Event go;
  {
    // Warm-up: the loop's ready queue grows to hold n tasks once, as in any steady state; that
    // is the loop's memory, not the tasks'.
    std::vector<asyncio::Task<int>> warm;
    for (int i = 0; i < n; ++i) warm.push_back(asyncio::create_task(identity(i)));
    co_await asyncio::gather(std::move(warm));
  }
  std::vector<asyncio::Task<void>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  // A parked task's bytes: its frames' size-class bytes (from the frame allocator, which may
  // reuse blocks it cached earlier) plus whatever else it took from the heap (heap growth minus
  // the blocks the frame allocator newly took).
  auto f0 = asyncio::detail::frame_stats();
  auto h0 = static_cast<double>(mallinfo2().uordblks);
  for (int i = 0; i < n; ++i) tasks.push_back(asyncio::create_task(parked(go)));
  co_await asyncio::sleep(std::chrono::nanoseconds(0));  // every task starts and parks
  auto f1 = asyncio::detail::frame_stats();
  auto h1 = static_cast<double>(mallinfo2().uordblks);
  double other_heap = (h1 - h0) - static_cast<double>(f1.heap_bytes - f0.heap_bytes);
  // The handles' vector is the caller's, not the tasks': leave it out (reserved before h0).
  double bytes = static_cast<double>(f1.live_bytes - f0.live_bytes) + other_heap;
  go.set();
  co_await asyncio::gather(std::move(tasks));
  co_return bytes / n;
}

template <class Make>
void run_case(benchmark::State& state, const char* counter, Make make) {
  for (auto _ : state) {
    try {
      state.counters[counter] = asyncio::run(make());
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      break;
    }
  }
}

const char* const kCpythonPeers[] = {"cpython_asyncio", "uvloop"};

void add_cpython(const concur::bench::RaceOptions& options, const Workload& w,
                 concur::bench::Race& race) {
  concur::support::Python cpython(options.python);
  if (auto why = cpython.unavailable()) {
    for (const char* p : kCpythonPeers) race.add_skipped(p, *why);
    return;
  }
  nlohmann::json result;
  try {
    result = cpython.run_json(
        "cpython_asyncio.py",
        {"--switches", std::to_string(w.switches), "--tasks", std::to_string(w.tasks),
         "--repetitions", std::to_string(options.repetitions())},
        std::chrono::seconds(900));
  } catch (const std::exception& e) {
    for (const char* p : kCpythonPeers) race.add_skipped(p, e.what());
    return;
  }
  for (const auto& [peer, scenarios] : result.items()) {
    if (!scenarios.is_object()) continue;
    if (scenarios.contains("skipped")) {
      race.add_skipped(peer, scenarios["skipped"].get<std::string>());
      continue;
    }
    for (const auto& [scenario, counters] : scenarios.items()) {
      for (const auto& [counter, values] : counters.items()) {
        race.add_external(scenario, peer, counter, values.get<std::vector<double>>());
      }
    }
  }
}

void print_goals(const concur::bench::Race& race) {
  struct Goal {
    const char* scenario;
    const char* counter;
    double limit;
    bool lower_is_better;
    const char* text;
  };
  fmt::print("\nIssue 12's coroutine goals:\n");
  for (const Goal& g :
       {Goal{"a_switch", "ns_per_switch", 50, true, "switch <= 50 ns"},
        Goal{"b_create_gather", "tasks_per_s", 5e6, false, "create-and-gather >= 5M tasks/s"},
        Goal{"c_parked_task", "bytes_per_task", 256, true, "a parked task <= 256 B"}}) {
    auto v = race.median(g.scenario, "concur", g.counter);
    if (!v) {
      fmt::print("  {}: not measured\n", g.text);
      continue;
    }
    bool met = g.lower_is_better ? *v <= g.limit : *v >= g.limit;
    fmt::print("  {}: {:.4g} -> {}\n", g.text, *v, met ? "MET" : "NOT MET");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const concur::bench::RaceOptions options = concur::bench::parse_race_options(
      argc, argv, "concur::asyncio's coroutine costs beside CPython's asyncio and uvloop",
      concur::bench::PythonPeers::some, "a tenth of the switches and tasks");
  const Workload w = workload(options);
  const int repetitions = options.repetitions();
  concur::bench::Race race(
      fmt::format("asyncio coroutines, one loop thread; {} repetitions, interleaved", repetitions));
  race.add_scenario({"a_switch",
                     fmt::format("(a) two tasks take turns through sleep(0), {} turns each (issue "
                                 "12: <= 50 ns)",
                                 w.switches),
                     "ns_per_switch",
                     "ns",
                     true,
                     {}});
  race.add_scenario(
      {"a_switch_event",
       fmt::format("(a') two tasks ping-pong through two Events, {} rounds each", w.switches),
       "ns_per_switch",
       "ns",
       true,
       {}});
  race.add_scenario(
      {"b_create_gather",
       fmt::format("(b) create {} tasks and gather them (issue 12: >= 5M/s)", w.tasks),
       "tasks_per_s",
       "tasks/s",
       false,
       {}});
  race.add_scenario({"c_parked_task",
                     fmt::format("(c) heap per task, {} tasks parked on an Event (issue 12: <= "
                                 "256 B)",
                                 w.tasks),
                     "bytes_per_task",
                     "B",
                     true,
                     {}});

  add_cpython(options, w, race);

  auto reg = [&](const char* name, auto fn) {
    benchmark::RegisterBenchmark((std::string(name) + "/concur").c_str(), fn)
        ->Iterations(1)
        ->Repetitions(repetitions)
        ->UseRealTime();
  };
  reg("a_switch", [w](benchmark::State& s) {
    run_case(s, "ns_per_switch", [&] { return switch_sleep0(w.switches); });
  });
  reg("a_switch_event", [w](benchmark::State& s) {
    run_case(s, "ns_per_switch", [&] { return switch_event(w.switches); });
  });
  reg("b_create_gather", [w](benchmark::State& s) {
    run_case(s, "tasks_per_s", [&] { return create_gather(w.tasks); });
  });
  reg("c_parked_task", [w](benchmark::State& s) {
    run_case(s, "bytes_per_task", [&] { return parked_bytes(w.tasks); });
  });

  const int code = race.run(options);
  print_goals(race);
  return code;
}
