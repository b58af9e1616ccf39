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
// Verdict: confirmed when CPython's processes reach at least kNearLinear x min(N, cores) the
// speed of one process; partly true when they are faster by at least kSomeGain but less; refuted
// otherwise. Without CPython, concur's processes are judged the same way and the verdict says so.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <concur/gil.hpp>
#include <concur/process_pool.hpp>
#include <thread>
#include <vector>

#include "lab.hpp"
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
namespace {

constexpr double kNearLinear = 0.7;
constexpr double kSomeGain = 1.2;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void run(const Options& options, Report& report) {
  report.claim(
      "To make CPU-bound code faster, use processes instead of threads: each process has its own "
      "interpreter and its own GIL, so every core runs at 100% and N processes go up to N times "
      "as fast.",
      "Every Process has its own personal GIL");
  const double target = options.quick ? 0.3 : 1.5;
  const unsigned cores = std::thread::hardware_concurrency();
  const int n = std::max(2, static_cast<int>(cores));

  long work = 200'000;
  {
    const auto t0 = Clock::now();
    model::count_boxed(work, nullptr);
    work = std::max<long>(
        n * 1000L, static_cast<long>(static_cast<double>(work) * target / seconds_since(t0)));
  }
  const long share = work / n;
  work = share * n;

  const auto t1 = Clock::now();
  report.check(count_in_own_process(work) == work * (work - 1) / 2, "the one-thread sum");
  const double one = seconds_since(t1);

  InterpreterLock gil;
  const auto t2 = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int k = 0; k < n; ++k) {
      threads.emplace_back([&] {
        GilGuard hold(gil);
        model::count_boxed(share, &gil);
      });
    }
    for (auto& t : threads) t.join();
  }
  const double threads_s = seconds_since(t2);

  ProcessPoolExecutor pool({.max_workers = static_cast<std::size_t>(n)});
  {
    // Workers start on demand: tasks long enough to keep one busy while the next is started.
    std::vector<Future<long>> warm;
    for (int k = 0; k < n; ++k) warm.push_back(pool.submit(count_in_own_process, share / 20));
    for (auto& f : warm) f.result();
    report.check(pool.processes_started() == static_cast<std::size_t>(n), "every worker started");
  }
  const auto t3 = Clock::now();
  std::vector<Future<long>> parts;
  for (int k = 0; k < n; ++k) parts.push_back(pool.submit(count_in_own_process, share));
  for (auto& f : parts) report.check(f.result() == share * (share - 1) / 2, "each process's sum");
  const double processes_s = seconds_since(t3);

  Table table{fmt::format("The same CPU-bound loop ({} steps): 1 vs {} threads vs {} processes, on "
                          "{} cores",
                          work, n, n, cores),
              {"who", "1", fmt::format("{} threads, one lock", n), fmt::format("{} processes", n),
               "processes' speed-up"},
              {}};
  table.rows.push_back({"concur", format_seconds(one), format_seconds(threads_s),
                        format_seconds(processes_s), format_ratio(one / processes_s)});
  report.measured("concur_process_speedup", one / processes_s, "x");
  report.measured("concur_thread_speedup", one / threads_s, "x");
  std::vector<svg::Bar> bars{{"concur, 1 thread", one, 0},
                             {fmt::format("concur, {} threads + one lock", n), threads_s, 1},
                             {fmt::format("concur, {} processes", n), processes_s, 2}};

  double subject = one / processes_s;
  std::string who = "concur (CPython was not measured)";
  if (auto python = cpython_for(options, report)) {
    const auto j =
        python->run_json("cpu_bound_processes.py",
                         {"--seconds", fmt::format("{}", target), "--processes", std::to_string(n)},
                         std::chrono::seconds(600));
    const double py_one = j.at("one_s").get<double>();
    const double py_many = j.at("many_s").get<double>();
    subject = py_one / py_many;
    who = "CPython " + j.at("version").get<std::string>() + " (" +
          j.at("start_method").get<std::string>() + ")";
    table.rows.push_back(
        {who, format_seconds(py_one), "-", format_seconds(py_many), format_ratio(subject)});
    report.measured("cpython_process_speedup", subject, "x");
    report.note(fmt::format(
        "CPython's {} workers used {:.2f} s of CPU in {:.2f} s: {:.2f} cores busy.", n,
        j.at("worker_cpu_s").get<double>(), py_many, j.at("worker_cpu_s").get<double>() / py_many));
    bars.push_back({"CPython, 1 process", py_one, 3});
    bars.push_back({fmt::format("CPython, Pool({})", n), py_many, 4});
  }
  report.table(std::move(table));
  report.figure({"cpu-bound-processes.svg", "Wall time of the same work: shorter is faster.",
                 svg::bars("CPU-bound loop: threads under one lock vs processes", "s", bars)});

  const double ideal = std::min<double>(n, cores);
  const std::string numbers = fmt::format(
      "In {}, {} processes ran the loop {} as fast as one, against an ideal of {:.0f}x on {} "
      "cores; concur's threads under one lock got {}.",
      who, n, format_ratio(subject), ideal, cores, format_ratio(one / threads_s));
  if (subject >= kNearLinear * ideal) {
    report.verdict(Verdict::kConfirmed, numbers);
  } else if (subject >= kSomeGain) {
    report.verdict(Verdict::kPartlyTrue, numbers + " Faster, but well short of one core each.");
  } else {
    report.verdict(Verdict::kRefuted, numbers + " The processes did not run in parallel.");
  }
}

const bool registered = register_experiment(
    {"cpu-bound-processes", "CPU-bound loop: N processes (own lock each) vs N threads", run});

}  // namespace
}  // namespace concur::lab
