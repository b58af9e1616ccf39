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
// Verdict (gil_cpu_bound.hpp): judged only where the no-lock control shows this run can compute
// in parallel; then, on the subject's medians (CPython's, else concur's emulation, and the
// verdict says which): confirmed when the split is at most kNoFaster x faster, partly true up to
// kClearGain x, refuted beyond (as with a free-threaded CPython, e.g. --python python3.13t).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "cores.hpp"
#include "evidence.hpp"
#include "gil_cpu_bound.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"
#include "workload.hpp"

namespace concur::lab {
namespace gil_cpu_bound {

std::vector<Threshold> thresholds() {
  return {{"no_faster", kNoFaster,
           "up to this median speed-up splitting gained nothing: the noise of a busy VM"},
          {"clear_gain", kClearGain,
           "beyond this the threads computed in parallel: half a second core's worth, plus noise"}};
}

Judgement judge(const Measurements& m) {
  if (!m.control.parallel_possible()) return inconclusive_without_parallelism(m.control);
  const std::string numbers = fmt::format(
      "In {}, splitting the loop over {} threads made it {} as fast (median; {} alone, {} split), "
      "while {}.",
      m.from_cpython ? "CPython" : "concur's GIL emulation (CPython was not measured)", m.threads,
      format_ratio(m.speedup()), m.one_s.describe_seconds(), m.split_s.describe_seconds(),
      m.control.describe());
  if (m.speedup() <= kNoFaster) {
    return {Verdict::kConfirmed, numbers + " With the lock, more threads do not compute faster."};
  }
  if (m.speedup() <= kClearGain) {
    return {Verdict::kPartlyTrue, numbers + " Some gain, well short of one core per thread."};
  }
  return {Verdict::kRefuted, numbers + " The threads did compute in parallel."};
}

}  // namespace gil_cpu_bound

namespace {

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
  progress::phase("concur and C++");
  report.claim(
      "With the interpreter lock, threads cannot compute at the same time, so CPU-bound work split "
      "over several threads runs no faster than on one; without such a lock (Java, C++) it runs "
      "up to N times faster on N cores. The threads themselves are real OS threads.",
      "The kitchen DOES NOT run faster");
  const double target = options.quick ? 0.2 : 1.0;  // seconds for one thread
  const ParallelControl& control = parallel_control(options);
  report_control(report, control);
  const int threads = std::max(2, static_cast<int>(support::usable_cores()));
  const int reps = repetitions(options);

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
  const auto runs = interleaved(reps, {[&] { return run_split(work, 1, gil, report); },
                                       [&] { return run_split(work, threads, gil, report); },
                                       [&] { return run_split(work, threads, no_gil, report); }});
  const Sample& one = runs[0];
  const Sample& with_gil = runs[1];
  const Sample& free = runs[2];

  Table table{fmt::format("The same CPU-bound loop ({} steps), on 1 thread and split (medians of "
                          "{} interleaved runs, range in brackets)",
                          work, reps),
              {"who", "1 thread", "split over", "split", "speed-up"},
              {}};
  table.rows.push_back({"concur with InterpreterLock (CPython's policy)", one.describe_seconds(),
                        fmt::format("{} threads", threads), with_gil.describe_seconds(),
                        format_ratio(one.median() / with_gil.median())});
  table.rows.push_back({"concur free-threaded (no lock)", one.describe_seconds(),
                        fmt::format("{} threads", threads), free.describe_seconds(),
                        format_ratio(one.median() / free.median())});
  report.measured("concur_gil_speedup", one.median() / with_gil.median(), "x");
  report.measured("concur_gil_spread", with_gil.spread(), "");
  report.measured("concur_free_threaded_speedup", one.median() / free.median(), "x");
  std::vector<svg::Bar> bars{
      {"concur, 1 thread", one.median(), 0},
      {fmt::format("concur + lock, {} threads", threads), with_gil.median(), 1},
      {fmt::format("concur free-threaded, {} threads", threads), free.median(), 2}};

  gil_cpu_bound::Measurements m{control, false, threads, one, with_gil};
  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j = python->run_json("gil_cpu_bound.py",
                                    {"--seconds", fmt::format("{}", target), "--threads", "2",
                                     "--repeat", std::to_string(reps)},
                                    std::chrono::seconds(300));
    Sample py_one, py_two, py_cpu;
    for (const auto& r : j.at("one_runs")) py_one.values.push_back(r.at("wall_s").get<double>());
    for (const auto& r : j.at("many_runs")) {
      py_two.values.push_back(r.at("wall_s").get<double>());
      py_cpu.values.push_back(r.at("cpu_s").get<double>());
    }
    const int os_threads = j.at("many").at("os_threads").get<int>();
    const std::string who = "CPython " + j.at("version").get<std::string>() +
                            (j.at("gil_enabled").get<bool>() ? "" : " (free-threaded)");
    m = {control, true, 2, py_one, py_two};
    table.rows.push_back({who, py_one.describe_seconds(), "2 threads", py_two.describe_seconds(),
                          format_ratio(m.speedup())});
    report.measured("cpython_speedup", m.speedup(), "x");
    report.measured("cpython_spread", py_two.spread(), "");
    report.measured("cpython_cores_busy", py_cpu.median() / py_two.median(), "cores");
    report.note(fmt::format(
        "{} with 2 threads used {:.2f} s of CPU in {:.2f} s of wall time (medians): {:.2f} cores "
        "busy on average, while its process had {} OS threads (the main thread and 2 workers): "
        "real threads.",
        who, py_cpu.median(), py_two.median(), py_cpu.median() / py_two.median(), os_threads));
    bars.push_back({"CPython, 1 thread", py_one.median(), 3});
    bars.push_back({"CPython, 2 threads", py_two.median(), 4});
  }
  report.table(std::move(table));
  report.figure(
      {"gil-cpu-bound.svg", "Median wall time of the same work: shorter is faster.",
       svg::bars("CPU-bound loop: 1 thread vs split over threads", "s", bars, one.median())});
  for (const Threshold& t : gil_cpu_bound::thresholds()) report.threshold(t);
  report.verdict(gil_cpu_bound::judge(m), m.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"gil-cpu-bound", "CPU-bound loop: 1 thread vs N under the lock vs free-threaded", run,
     Chapter::kKitchen, 25});

}  // namespace
}  // namespace concur::lab
