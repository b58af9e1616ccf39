// bench/fan_out_breakdown: where the microseconds of thread_pool_bench's case (c) go — 1,000
// tasks of ~1 µs submitted to a pool of 2 workers by a third thread, then all awaited (issue 22:
// "measure where each microsecond goes").
//
// Every task stamps the steady clock when it starts and when it ends and notes which thread ran
// it; the submitting thread stamps the start, the end of its submit loop, the return of its wait
// and the end of reading the results. From those, per fan-out:
//
//   submit      t0 -> the last submit() returned (the submitting thread's own cost, while the
//               workers already run tasks beside it)
//   first start t0 -> the first task started on each worker: how long a worker takes to notice
//               (a spinning worker: ~1 µs; a parked one: the futex wake and the scheduler)
//   busy        the time a worker spent inside tasks; the 2-core ideal is (serial loop) / 2
//   gaps        the time a worker spent between its first start and its last end not in a task:
//               taking the next task, or not running at all (preempted by the submitting thread,
//               which is a third runnable thread on two cores, or by the hypervisor)
//   tail        the last task's end -> the submitting thread's wait returned (its wake-up)
//   read        wait returned -> every result read
//
// Two ways in: "back to back", fan-outs one after another as in thread_pool_bench (the workers
// are still spinning from the last one), and "after idle", each fan-out 5 ms after the last, long
// enough for every worker to park (concur's spin lasts 200 µs; oneTBB's is its own). The same
// breakdown is taken for oneTBB task_group (the thread_pool_bench peer: 2 workers and the waiting
// thread in one arena; its waiting thread runs tasks too, so it has a third lane).
//
// The stamps cost two clock reads per task (~40 ns of a ~1 µs task); the figures include them
// for both pools alike.
//
//   fan_out_breakdown [--fan-outs N] [--tasks N]
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/thread_pool.hpp>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/busy_work.hpp"
#include "machine.hpp"
#include "stats.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using concur::support::median_of;

constexpr int kWorkers = 2;

using concur::bench::busy_work;  // ~1 µs of arithmetic with the calibrated iterations

double serial_ms(int tasks, std::uint64_t iterations) {
  std::vector<double> runs;
  for (int r = 0; r < 21; ++r) {
    auto t0 = Clock::now();
    std::uint64_t sink = 0;
    for (int i = 0; i < tasks; ++i) sink += busy_work(static_cast<std::uint64_t>(i), iterations);
    asm volatile("" : : "r"(sink));
    runs.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return median_of(runs);
}

// Which thread ran a task: a small number handed out on a thread's first task.
std::atomic<int> next_lane{0};
thread_local int lane = -1;
int my_lane() {
  if (lane < 0) lane = next_lane.fetch_add(1);
  return lane;
}

struct Stamp {
  Clock::time_point start, end;
  int lane = -1;
};

struct Marks {
  Clock::time_point t0, submitted, waited, read;
};

// One fan-out's breakdown, in µs.
struct Breakdown {
  double total, submit, tail, read;
  std::map<std::string, double> per_lane;  // "first start", "busy", "gaps", "tasks" per lane name
};

double us(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

Breakdown analyse(const Marks& m, const std::vector<Stamp>& stamps, int submitter_lane) {
  Breakdown b{us(m.t0, m.read), us(m.t0, m.submitted), 0, us(m.waited, m.read), {}};
  std::map<int, std::vector<const Stamp*>> by_lane;
  Clock::time_point last_end = m.t0;
  for (const Stamp& s : stamps) {
    by_lane[s.lane].push_back(&s);
    last_end = std::max(last_end, s.end);
  }
  b.tail = us(last_end, m.waited);
  int worker = 0;
  for (auto& [l, list] : by_lane) {
    std::sort(list.begin(), list.end(),
              [](const Stamp* a, const Stamp* c) { return a->start < c->start; });
    std::string name =
        l == submitter_lane ? "waiting thread" : "worker " + std::to_string(worker++);
    double busy = 0;
    for (const Stamp* s : list) busy += us(s->start, s->end);
    b.per_lane[name + ": first start"] = us(m.t0, list.front()->start);
    b.per_lane[name + ": busy"] = busy;
    b.per_lane[name + ": gaps"] = us(list.front()->start, list.back()->end) - busy;
    b.per_lane[name + ": tasks"] = static_cast<double>(list.size());
  }
  return b;
}

struct Run {
  std::vector<Breakdown> fan_outs;
};

// What one fan-out recorded; analysed only after the last one, so that back-to-back fan-outs
// follow each other as closely as in thread_pool_bench (analysing takes longer than the pool's
// 200 µs spin, and would let the workers park between them).
struct Sample {
  Marks marks;
  std::vector<Stamp> stamps;
  int submitter_lane = -1;
};

template <class FanOut>
Run measure(int fan_outs, bool after_idle, FanOut&& fan_out) {
  std::vector<Sample> samples;
  samples.reserve(static_cast<std::size_t>(fan_outs) + 3);
  for (int r = 0; r < fan_outs + 3; ++r) {  // three unmeasured, to warm up
    if (after_idle) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    samples.push_back(fan_out());
  }
  Run run;
  for (std::size_t i = 3; i < samples.size(); ++i)
    run.fan_outs.push_back(analyse(samples[i].marks, samples[i].stamps, samples[i].submitter_lane));
  return run;
}

void print(const char* title, const Run& run) {
  auto med = [&](auto get) {
    std::vector<double> v;
    for (const Breakdown& b : run.fan_outs) v.push_back(get(b));
    return median_of(v);
  };
  std::printf("\n%s (medians of %zu fan-outs, µs)\n", title, run.fan_outs.size());
  std::printf("  %-34s %8.1f\n", "total (t0 -> results read)",
              med([](auto& b) { return b.total; }));
  std::printf("  %-34s %8.1f\n", "submit loop", med([](auto& b) { return b.submit; }));
  // Lanes that ran in fewer than half the fan-outs (a waiting thread that rarely helps) show 0.
  std::map<std::string, int> seen;
  for (const Breakdown& b : run.fan_outs)
    for (auto& [k, v] : b.per_lane) ++seen[k];
  for (auto& [key, n] : seen) {
    std::vector<double> v;
    for (const Breakdown& b : run.fan_outs) {
      auto it = b.per_lane.find(key);
      v.push_back(it == b.per_lane.end() ? 0 : it->second);
    }
    std::printf("  %-34s %8.1f%s\n", key.c_str(), median_of(v),
                n * 2 < static_cast<int>(run.fan_outs.size()) ? "  (in few fan-outs)" : "");
  }
  std::printf("  %-34s %8.1f\n", "tail (last task end -> wait returns)",
              med([](auto& b) { return b.tail; }));
  std::printf("  %-34s %8.1f\n", "read results", med([](auto& b) { return b.read; }));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Where the time of a 1,000 x 1 us fan-out goes, concur beside oneTBB task_group"};
  int fan_outs = 101;
  int tasks = 1000;
  app.add_option("--fan-outs", fan_outs, "measured fan-outs per variant")
      ->check(CLI::PositiveNumber);
  app.add_option("--tasks", tasks, "tasks in one fan-out")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  std::printf("%s\n", concur::support::describe(concur::support::machine_info()).c_str());
  std::uint64_t iterations = 300;
  for (int round = 0; round < 6; ++round)
    iterations = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(static_cast<double>(iterations) * 0.9 * tasks / 1000 /
                                      serial_ms(tasks, iterations)));
  double serial = serial_ms(tasks, iterations) * 1000;
  std::printf("serial loop of the same work: %.1f µs; the 2-worker ideal: %.1f µs\n", serial,
              serial / kWorkers);

  std::vector<Stamp> stamps(static_cast<std::size_t>(tasks));
  auto task = [&stamps, iterations](int i) {
    Stamp& s = stamps[static_cast<std::size_t>(i)];
    s.start = Clock::now();
    std::uint64_t r = busy_work(static_cast<std::uint64_t>(i), iterations);
    s.end = Clock::now();
    s.lane = my_lane();
    return r;
  };

  concur::ThreadPoolExecutor pool{kWorkers};
  auto concur_fan_out = [&] {
    Marks m;
    std::vector<concur::Future<std::uint64_t>> futures;
    futures.reserve(static_cast<std::size_t>(tasks));
    m.t0 = Clock::now();
    for (int i = 0; i < tasks; ++i) futures.push_back(pool.submit(task, i));
    m.submitted = Clock::now();
    concur::wait(futures);
    m.waited = Clock::now();
    std::uint64_t sum = 0;
    for (auto& f : futures) sum += f.result();
    m.read = Clock::now();
    asm volatile("" : : "r"(sum));
    return Sample{m, stamps, my_lane()};
  };

  // oneTBB starts at most (cores - 1) workers unless told otherwise, as thread_pool_bench does.
  tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, kWorkers + 1);
  tbb::task_arena arena{kWorkers + 1, 1};
  auto tbb_fan_out = [&] {
    Marks m;
    std::vector<std::uint64_t> results(static_cast<std::size_t>(tasks));
    int waiting_lane = -1;
    arena.execute([&] {
      waiting_lane = my_lane();
      tbb::task_group group;
      m.t0 = Clock::now();
      for (int i = 0; i < tasks; ++i)
        group.run([&, i] { results[static_cast<std::size_t>(i)] = task(i); });
      m.submitted = Clock::now();
      group.wait();
      m.waited = Clock::now();
    });
    std::uint64_t sum = 0;
    for (auto r : results) sum += r;
    m.read = Clock::now();
    asm volatile("" : : "r"(sum));
    return Sample{m, stamps, waiting_lane};
  };

  // Alternate the pools in rounds so a noisy stretch of the VM lands on both.
  std::map<std::string, Run> runs;
  const int rounds = 5;
  for (int round = 0; round < rounds; ++round) {
    for (bool idle : {false, true}) {
      int n = std::max(1, fan_outs / rounds);
      auto append = [&](const std::string& key, Run r) {
        auto& all = runs[key].fan_outs;
        all.insert(all.end(), r.fan_outs.begin(), r.fan_outs.end());
      };
      append(std::string("concur, ") + (idle ? "after idle" : "back to back"),
             measure(n, idle, concur_fan_out));
      append(std::string("oneTBB task_group, ") + (idle ? "after idle" : "back to back"),
             measure(n, idle, tbb_fan_out));
    }
  }
  for (auto& [title, run] : runs) print(title.c_str(), run);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("\ncontext switches of the whole run: %ld voluntary, %ld involuntary\n", ru.ru_nvcsw,
              ru.ru_nivcsw);
  return 0;
}
