// cpu-bound-processes: do separate processes, each with its own lock, use every core?
//
// Claim (in our words): to make CPU-bound Python code faster, run it in several processes
// instead of threads: each process has its own interpreter and its own GIL, so all cores run at
// 100% and N processes go up to N times as fast.
//
// Workload: the CPU-bound loop (count_boxed, with its checkpoint per step) on one thread, then
// split over N threads under one InterpreterLock, then split over N worker processes of a
// ProcessPoolExecutor (forkserver), each with its own lock; N = max(2, cores). Workers are
// started and warm before timing. CPython does the same with multiprocessing.Pool(N).
//
// Verdict (cpu_bound_processes.hpp): judged only where the no-lock control shows this run can
// compute in parallel; then, on the subject's medians (CPython's, else concur's, and the verdict
// says which): confirmed at kNearLinear x min(N, usable cores) or more, partly true from kSomeGain,
// refuted below.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <concur/gil.hpp>
#include <concur/process_pool.hpp>
#include <thread>
#include <vector>

#include "cores.hpp"
#include "cpu_bound_processes.hpp"
#include "evidence.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"
#include "workload.hpp"

namespace {

// One process's share, with that process's own interpreter lock (as each Python process has).
long count_in_own_process(long n) {
  concur::InterpreterLock gil;
  concur::GilGuard hold(gil);
  return concur::lab::model::count_boxed(n, &gil);
}
CONCUR_REGISTER(count_in_own_process);

}  // namespace

namespace concur::lab {
namespace cpu_bound_processes {

std::vector<Threshold> thresholds() {
  return {{"near_linear", kNearLinear,
           "confirmed at this fraction of min(N, usable cores)x: \"up to N times\", less the cost "
           "of handing work to the workers"},
          {"some_gain", kSomeGain,
           "below this median speed-up the processes did not run in parallel (the control's "
           "margin)"}};
}

Judgement judge(const Measurements& m) {
  if (!m.control.parallel_possible()) return inconclusive_without_parallelism(m.control);
  const std::string numbers = fmt::format(
      "In {}, {} processes ran the loop {} as fast as one (median; {} vs {}), against an ideal "
      "of {:.0f}x on the {} cores this run may use.",
      m.from_cpython ? "CPython" : "concur (CPython was not measured)", m.processes,
      format_ratio(m.speedup()), m.one_s.describe_seconds(), m.many_s.describe_seconds(), m.ideal(),
      m.control.usable_cores);
  if (m.speedup() >= kNearLinear * m.ideal()) return {Verdict::kConfirmed, numbers};
  if (m.speedup() >= kSomeGain) {
    return {Verdict::kPartlyTrue, numbers + " Faster, but well short of one core each."};
  }
  return {Verdict::kRefuted, numbers + " The processes did not run in parallel."};
}

}  // namespace cpu_bound_processes

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "To make CPU-bound code faster, use processes instead of threads: each process has its own "
      "interpreter and its own GIL, so every core runs at 100% and N processes go up to N times "
      "as fast.",
      "Every Process has its own personal GIL");
  const double target = options.quick ? 0.3 : 1.5;
  const ParallelControl& control = parallel_control(options);
  report_control(report, control);
  const unsigned cores = support::usable_cores();
  const int n = std::max(2, static_cast<int>(cores));
  const int reps = repetitions(options);

  long work = 200'000;
  {
    const auto t0 = Clock::now();
    model::count_boxed(work, nullptr);
    work = std::max<long>(
        n * 1000L, static_cast<long>(static_cast<double>(work) * target / seconds_since(t0)));
  }
  const long share = work / n;
  work = share * n;

  ProcessPoolExecutor pool({.max_workers = static_cast<std::size_t>(n)});
  {
    // Workers start on demand: tasks long enough to keep one busy while the next is started.
    std::vector<Future<long>> warm;
    for (int k = 0; k < n; ++k) warm.push_back(pool.submit(count_in_own_process, share / 20));
    for (auto& f : warm) f.result();
    report.check(pool.processes_started() == static_cast<std::size_t>(n), "every worker started");
  }
  InterpreterLock gil;
  const auto runs = interleaved(
      reps, {[&] {
               const auto t0 = Clock::now();
               report.check(count_in_own_process(work) == work * (work - 1) / 2,
                            "the one-thread sum");
               return seconds_since(t0);
             },
             [&] {
               const auto t0 = Clock::now();
               std::vector<std::thread> threads;
               for (int k = 0; k < n; ++k) {
                 threads.emplace_back([&] {
                   GilGuard hold(gil);
                   model::count_boxed(share, &gil);
                 });
               }
               for (auto& t : threads) t.join();
               return seconds_since(t0);
             },
             [&] {
               const auto t0 = Clock::now();
               std::vector<Future<long>> parts;
               for (int k = 0; k < n; ++k)
                 parts.push_back(pool.submit(count_in_own_process, share));
               for (auto& f : parts) {
                 report.check(f.result() == share * (share - 1) / 2, "each process's sum");
               }
               return seconds_since(t0);
             }});
  const Sample& one = runs[0];
  const Sample& threads_s = runs[1];
  const Sample& processes_s = runs[2];

  Table table{fmt::format("The same CPU-bound loop ({} steps): 1 vs {} threads vs {} processes, "
                          "{} usable cores (medians of {} interleaved runs, range in brackets)",
                          work, n, n, cores, reps),
              {"who", "1", fmt::format("{} threads, one lock", n), fmt::format("{} processes", n),
               "processes' speed-up"},
              {}};
  table.rows.push_back({"concur", one.describe_seconds(), threads_s.describe_seconds(),
                        processes_s.describe_seconds(),
                        format_ratio(one.median() / processes_s.median())});
  report.measured("concur_process_speedup", one.median() / processes_s.median(), "x");
  report.measured("concur_thread_speedup", one.median() / threads_s.median(), "x");
  std::vector<svg::Bar> bars{
      {"concur, 1 thread", one.median(), 0},
      {fmt::format("concur, {} threads + one lock", n), threads_s.median(), 1},
      {fmt::format("concur, {} processes", n), processes_s.median(), 2}};

  cpu_bound_processes::Measurements m{control, false, n, one, processes_s};
  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j = python->run_json("cpu_bound_processes.py",
                                    {"--seconds", fmt::format("{}", target), "--processes",
                                     std::to_string(n), "--repeat", std::to_string(reps)},
                                    std::chrono::seconds(600));
    Sample py_one, py_many, py_cpu;
    for (const auto& v : j.at("one_runs")) py_one.values.push_back(v.get<double>());
    for (const auto& v : j.at("many_runs")) py_many.values.push_back(v.get<double>());
    for (const auto& v : j.at("worker_cpu_runs")) py_cpu.values.push_back(v.get<double>());
    m = {control, true, n, py_one, py_many};
    const std::string who = "CPython " + j.at("version").get<std::string>() + " (" +
                            j.at("start_method").get<std::string>() + ")";
    table.rows.push_back({who, py_one.describe_seconds(), "-", py_many.describe_seconds(),
                          format_ratio(m.speedup())});
    report.measured("cpython_process_speedup", m.speedup(), "x");
    report.measured("cpython_spread", py_many.spread(), "");
    report.note(fmt::format(
        "CPython's {} workers used {:.2f} s of CPU in {:.2f} s (medians): {:.2f} cores busy.", n,
        py_cpu.median(), py_many.median(), py_cpu.median() / py_many.median()));
    bars.push_back({"CPython, 1 process", py_one.median(), 3});
    bars.push_back({fmt::format("CPython, Pool({})", n), py_many.median(), 4});
  }
  report.table(std::move(table));
  report.figure(
      {"cpu-bound-processes.svg",
       "Median wall time of the same work: shorter is faster. The line marks one "
       "process alone.",
       svg::bars("CPU-bound loop: threads under one lock vs processes", "s", bars, one.median())});
  for (const Threshold& t : cpu_bound_processes::thresholds()) report.threshold(t);
  report.verdict(cpu_bound_processes::judge(m),
                 m.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"cpu-bound-processes", "CPU-bound loop: N processes (own lock each) vs N threads", run,
     Chapter::kCpuBound, 30});

}  // namespace
}  // namespace concur::lab
