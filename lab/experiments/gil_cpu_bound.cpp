// gil-cpu-bound: does splitting CPU-bound work over threads make it faster?
//
// Claim (in our words): with the interpreter lock, threads cannot compute at the same time: one
// chef, one knife. Work split over 4 threads runs no faster than on one, while in C++ (no lock) it
// runs up to 4x faster. The tutorial adds that ThreadPoolExecutor asks the OS for real threads.
//
// Workload: count_boxed (lab/model/workload.hpp), CPython's `total = total + i` loop with boxed
// integers and a checkpoint() at every step, on 1 thread, then split over N threads
// (N = max(2, cores)) under concur's InterpreterLock (CPython's policy, 5 ms) and free-threaded
// (the same loop, lock a no-op). CPython runs its own loop on 1 and 2 threads in the same run,
// and reports its wall and CPU time and its OS thread count.
//
// Verdict: for the tutorial's subject, CPython: confirmed when 2 threads are at most
// kNoFaster x faster than 1 (no gain); partly true up to kClearGain x; refuted beyond (as with a
// free-threaded CPython, e.g. --python python3.13t). Without CPython, concur's GIL emulation is
// judged the same way and the verdict says so.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "lab.hpp"
#include "svg.hpp"
#include "workload.hpp"

namespace concur::lab {
namespace {

constexpr double kNoFaster = 1.15;
constexpr double kClearGain = 1.6;

using Clock = std::chrono::steady_clock;

// Runs `work` steps split over `threads` threads, each holding `gil` as an interpreter thread does.
double run_split(long work, int threads, InterpreterLock& gil, Report& report) {
  const long share = work / threads;
  std::vector<long> results(static_cast<std::size_t>(threads));
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k) {
    pool.emplace_back([&, k] {
      GilGuard hold(gil);
      results[static_cast<std::size_t>(k)] = model::count_boxed(share, &gil);
    });
  }
  for (auto& t : pool) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  for (long r : results) report.check(r == share * (share - 1) / 2, "count_boxed's sum");
  return wall;
}

void run(const Options& options, Report& report) {
  report.claim(
      "With the interpreter lock, threads cannot compute at the same time, so CPU-bound work split "
      "over several threads runs no faster than on one; without such a lock (Java, C++) it runs "
      "up to N times faster on N cores. The threads themselves are real OS threads.",
      "The kitchen DOES NOT run faster");
  const double target = options.quick ? 0.2 : 1.0;  // seconds for one thread
  const int threads = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));

  // Calibrate the work so that one thread takes about `target` seconds.
  long work = 200'000;
  {
    InterpreterLock probe({.free_threaded = true});
    const auto t0 = Clock::now();
    model::count_boxed(work, &probe);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    work =
        std::max<long>(threads * 1000L, static_cast<long>(static_cast<double>(work) * target / s));
  }
  InterpreterLock gil({.policy = GilPolicy::cpython});
  InterpreterLock no_gil({.free_threaded = true});
  const double one = run_split(work, 1, gil, report);
  const double with_gil = run_split(work, threads, gil, report);
  const double free = run_split(work, threads, no_gil, report);

  Table table{fmt::format("The same CPU-bound loop ({} steps), on 1 thread and split", work),
              {"who", "1 thread", "split over", "split", "speed-up"},
              {}};
  table.rows.push_back({"concur with InterpreterLock (CPython's policy)", format_seconds(one),
                        fmt::format("{} threads", threads), format_seconds(with_gil),
                        format_ratio(one / with_gil)});
  table.rows.push_back({"concur free-threaded (no lock)", format_seconds(one),
                        fmt::format("{} threads", threads), format_seconds(free),
                        format_ratio(one / free)});
  report.measured("concur_gil_speedup", one / with_gil, "x");
  report.measured("concur_free_threaded_speedup", one / free, "x");
  std::vector<svg::Bar> bars{{"concur, 1 thread", one, 0},
                             {fmt::format("concur + lock, {} threads", threads), with_gil, 1},
                             {fmt::format("concur free-threaded, {} threads", threads), free, 2}};

  double subject_speedup = one / with_gil;
  std::string subject = "concur's GIL emulation (CPython was not measured)";
  if (auto python = cpython_for(options, report)) {
    const auto j = python->run_json("gil_cpu_bound.py",
                                    {"--seconds", fmt::format("{}", target), "--threads", "2"},
                                    std::chrono::seconds(300));
    const double py_one = j.at("one").at("wall_s").get<double>();
    const double py_two = j.at("many").at("wall_s").get<double>();
    const double py_cpu = j.at("many").at("cpu_s").get<double>();
    const int os_threads = j.at("many").at("os_threads").get<int>();
    subject_speedup = py_one / py_two;
    subject = "CPython " + j.at("version").get<std::string>() +
              (j.at("gil_enabled").get<bool>() ? "" : " (free-threaded)");
    table.rows.push_back({subject, format_seconds(py_one), "2 threads", format_seconds(py_two),
                          format_ratio(subject_speedup)});
    report.measured("cpython_speedup", subject_speedup, "x");
    report.measured("cpython_cores_busy", py_cpu / py_two, "cores");
    report.note(fmt::format(
        "CPython with 2 threads used {:.2f} s of CPU in {:.2f} s of wall time: {:.2f} cores busy "
        "on average, while its process had {} OS threads (the main thread and 2 workers): real "
        "threads, one running at a time.",
        py_cpu, py_two, py_cpu / py_two, os_threads));
    bars.push_back({"CPython, 1 thread", py_one, 3});
    bars.push_back({"CPython, 2 threads", py_two, 4});
  }
  report.table(std::move(table));
  report.figure({"gil-cpu-bound.svg", "Wall time of the same work: shorter is faster.",
                 svg::bars("CPU-bound loop: 1 thread vs split over threads", "s", bars)});

  const std::string numbers = fmt::format(
      "In {}, splitting the loop over threads made it {} as fast; concur free-threaded on {} "
      "cores got {}.",
      subject, format_ratio(subject_speedup), std::thread::hardware_concurrency(),
      format_ratio(one / free));
  if (subject_speedup <= kNoFaster) {
    report.verdict(Verdict::kConfirmed,
                   numbers + " With the lock, more threads do not compute faster.");
  } else if (subject_speedup <= kClearGain) {
    report.verdict(Verdict::kPartlyTrue, numbers + " Some gain, well short of one per thread.");
  } else {
    report.verdict(Verdict::kRefuted, numbers + " The threads did compute in parallel.");
  }
}

const bool registered = register_experiment(
    {"gil-cpu-bound", "CPU-bound loop: 1 thread vs N under the lock vs free-threaded", run});

}  // namespace
}  // namespace concur::lab
