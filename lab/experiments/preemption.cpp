// preemption: how often does the OS pause a thread, and what does it cost?
//
// Claim (in our words): with threads, the OS forcibly pauses a running thread every few
// milliseconds to run another on the core, and this context switching costs a lot of small
// delays.
//
// Workload: a CPU-bound counting loop on `threads` threads, all pinned to one core (the first in
// this process's affinity mask, sched_setaffinity), for a fixed time, against one thread alone
// on that core for the same time; repeated and interleaved. Each thread reads its own
// /proc/self/task/<tid>/status (nonvoluntary_ctxt_switches: the kernel took the core from it)
// and schedstat (time on the core, time runnable but waiting for it, slices) before and after.
// CPython (lab/python/preemption.py) runs the same threads pinned to one core and reports the
// same counters: there, the GIL hands the core over every 5 ms (voluntary switches: a thread
// blocks waiting for the lock) before the OS would.
//
// Verdict (preemption.hpp): on the native threads (the claim is about the OS); CPython's figures
// are shown beside them.
#include "preemption.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "lab.hpp"
#include "procfs.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace preemption {

std::vector<Threshold> thresholds() {
  return {{"few_ms_low_s", kFewMsLow, "\"every few milliseconds\": a slice of at least 1 ms"},
          {"few_ms_high_s", kFewMsHigh, "... and at most 10 ms (\"few\" read generously)"},
          {"massive_loss", kMassiveLoss,
           "\"massive\": switching costs at least a tenth of the core's work, every shared run "
           "below every run alone (else the machine's noise)"},
          {"min_switches", static_cast<double>(kMinSwitches),
           "fewer involuntary switches than this: the threads did not compete, nothing judged"},
          {"impossible_gain", kImpossibleGain,
           "sharing the core gained more than this over one thread alone: the baseline was "
           "disturbed, nothing judged"}};
}

Judgement judge(const Measurements& m) {
  if (m.involuntary_switches < kMinSwitches) {
    return {Verdict::kInconclusive,
            fmt::format("{} threads sharing one core were preempted only {} times, so they did "
                        "not compete for it (pinning failed?); nothing is judged",
                        m.threads, m.involuntary_switches)};
  }
  if (-m.loss() > kImpossibleGain) {
    return {Verdict::kInconclusive,
            fmt::format("{} threads sharing one core did {:.3g} steps per second on it, {:.0f}% "
                        "more than one thread alone ({:.3g}): sharing cannot add work, so the "
                        "measurement of the thread alone was disturbed (a busy machine?); "
                        "nothing is judged",
                        m.threads, m.shared_work.median(), -100 * m.loss(), m.alone_work.median())};
  }
  const bool few_ms = m.median_slice_s >= kFewMsLow && m.median_slice_s <= kFewMsHigh;
  const bool massive = m.loss() >= kMassiveLoss && m.loss_stands_out();
  const bool lost_in_noise = m.loss() >= kMassiveLoss && !m.loss_stands_out();
  std::string text = fmt::format(
      "{} threads sharing one core were preempted {} times: each ran {} between pauses "
      "(median), {} every few milliseconds; each pause kept a thread waiting {} for the core "
      "while the others ran. {} against one thread alone (medians: {:.3g} vs {:.3g} steps per "
      "second on the core), {} the {:.0f}% that would be massive.",
      m.threads, m.involuntary_switches, format_seconds(m.median_slice_s),
      few_ms ? "that is" : "that is not", format_seconds(m.wait_per_switch_s),
      // A negative loss is noise (sharing cannot add work): said as such, not as a "cost" of -N%.
      lost_in_noise
          ? fmt::format("Sharing the core cost {:.1f}% of the work done per second on it by the "
                        "medians, but the runs overlap (shared {:.3g}-{:.3g}, alone {:.3g}-{:.3g}) "
                        "so this machine's noise could make that much,",
                        100 * m.loss(), m.shared_work.min(), m.shared_work.max(),
                        m.alone_work.min(), m.alone_work.max())
      : m.loss() >= 0
          ? fmt::format("Sharing the core cost {:.1f}% of the work done per second on it,",
                        100 * m.loss())
          : fmt::format("Sharing the core cost nothing measurable (it even did {:.1f}% "
                        "more work per second on it: this machine's noise),",
                        -100 * m.loss()),
      m.shared_work.median(), m.alone_work.median(),
      massive ? "at least" : (lost_in_noise ? "not clearly" : "far below"), 100 * kMassiveLoss);
  if (few_ms && massive) return {Verdict::kConfirmed, text};
  if (few_ms || massive) {
    return {Verdict::kPartlyTrue,
            text + (few_ms ? " The pauses are real; their cost is not massive: the wait is the "
                             "other threads' turn, not overhead."
                           : " Costly, but not at the stated rhythm.")};
  }
  return {Verdict::kRefuted, text};
}

}  // namespace preemption

namespace {

using Clock = std::chrono::steady_clock;

// The first CPU this process may run on.
int first_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) return c;
  }
  return 0;
}

struct ThreadFigures {
  long work = 0;
  procfs::TaskSched before, after;
};

// `threads` threads pinned to `cpu`, counting for `seconds`; each records its own figures.
std::vector<ThreadFigures> run_pinned(int threads, int cpu, double seconds, Report& report) {
  std::vector<ThreadFigures> figures(static_cast<std::size_t>(threads));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::thread> pool;
  for (auto& f : figures) {
    pool.emplace_back([&, fp = &f] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      const bool pinned = sched_setaffinity(0, sizeof set, &set) == 0;
      ready.fetch_add(pinned ? 1 : 1000);
      while (!go.load()) std::this_thread::yield();
      const pid_t tid = gettid();
      fp->before = procfs::task_sched(0, tid).value_or(procfs::TaskSched{});
      volatile long sink = 0;
      long work = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 4096; ++i) sink = sink + i;
        ++work;
      }
      fp->after = procfs::task_sched(0, tid).value_or(procfs::TaskSched{});
      fp->work = work;
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& t : pool) t.join();
  report.check(ready.load() == threads, "every thread pinned to one core (sched_setaffinity)");
  return figures;
}

// Work per second the threads spent on the core (schedstat), so that other programs taking the
// core away from them do not count as a cost of switching; wall time where schedstat is missing.
double work_rate(const std::vector<ThreadFigures>& figures, double wall_s) {
  long work = 0;
  double on_cpu = 0;
  for (const auto& t : figures) {
    work += t.work;
    on_cpu += t.after.on_cpu_s - t.before.on_cpu_s;
  }
  return static_cast<double>(work) / (on_cpu > 0 ? on_cpu : wall_s);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "With threads, the OS forcibly pauses a running thread every few milliseconds to run "
      "another on its core, and this context switching costs a lot of small delays.",
      "every few milliseconds");
  for (const Threshold& t : preemption::thresholds()) report.threshold(t);
  const int threads = 3;
  const int cpu = first_cpu();
  const double seconds = options.quick ? 0.4 : 1.5;
  const int reps = repetitions(options);
  if (!procfs::schedstat_available()) {
    report.note("This kernel keeps no schedstat (CONFIG_SCHED_INFO): waits are shown as 0.");
  }

  preemption::Measurements m;
  m.threads = threads;
  std::vector<double> slices, waits;
  double wait_total = 0;
  long timeslices_total = 0, voluntary = 0;
  const auto runs = interleaved(
      reps, {[&] {
               const auto f = run_pinned(1, cpu, seconds, report);
               return work_rate(f, seconds);
             },
             [&] {
               const auto f = run_pinned(threads, cpu, seconds, report);
               for (const auto& t : f) {
                 const long inv = t.after.involuntary_switches - t.before.involuntary_switches;
                 m.involuntary_switches += inv;
                 voluntary += t.after.voluntary_switches - t.before.voluntary_switches;
                 const double on_cpu = t.after.on_cpu_s - t.before.on_cpu_s;
                 if (inv > 0) slices.push_back(on_cpu / static_cast<double>(inv));
                 wait_total += t.after.run_queue_wait_s - t.before.run_queue_wait_s;
                 timeslices_total += t.after.timeslices - t.before.timeslices;
               }
               return work_rate(f, seconds);
             }});
  m.alone_work = runs[0];
  m.shared_work = runs[1];
  m.median_slice_s = median(slices);
  m.wait_per_switch_s =
      m.involuntary_switches > 0 ? wait_total / static_cast<double>(m.involuntary_switches) : 0;

  Table table{fmt::format("{} CPU-bound threads pinned to CPU {} for {} each run ({} runs, "
                          "interleaved with one thread alone on it)",
                          threads, cpu, format_seconds(seconds), reps),
              {"who", "involuntary switches", "voluntary switches", "slice between preemptions",
               "wait per preemption", "work per second on the core, vs alone"},
              {}};
  table.rows.push_back({"C++ std::thread", std::to_string(m.involuntary_switches),
                        std::to_string(voluntary), format_seconds(m.median_slice_s),
                        format_seconds(m.wait_per_switch_s),
                        fmt::format("{:.1f}%", 100 * (1 - m.loss()))});
  report.measured("involuntary_switches", static_cast<double>(m.involuntary_switches), "");
  report.measured("median_slice_s", m.median_slice_s, "s");
  report.measured("wait_per_preemption_s", m.wait_per_switch_s, "s");
  report.measured("work_lost_share", m.loss(), "");
  std::vector<svg::Bar> bars{{"C++ threads: slice between preemptions", m.median_slice_s * 1e3, 0}};

  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j =
        python->run_json("preemption.py",
                         {"--threads", std::to_string(threads), "--cpu", std::to_string(cpu),
                          "--seconds", fmt::format("{}", seconds * reps)},
                         std::chrono::seconds(120));
    const long inv = j.at("involuntary").get<long>();
    const long vol = j.at("voluntary").get<long>();
    const double on_cpu = j.at("on_cpu_s").get<double>();
    const double slice = on_cpu / static_cast<double>(std::max(1L, inv + vol));
    table.rows.push_back({"CPython " + j.at("version").get<std::string>() + " threads",
                          std::to_string(inv), std::to_string(vol),
                          fmt::format("{} (between any two switches)", format_seconds(slice)),
                          format_seconds(j.at("wait_s").get<double>() /
                                         static_cast<double>(std::max(1L, inv + vol))),
                          "-"});
    report.measured("cpython_involuntary_switches", static_cast<double>(inv), "");
    report.measured("cpython_voluntary_switches", static_cast<double>(vol), "");
    bars.push_back({"CPython threads: slice between any switches", slice * 1e3, 1});
    report.note(fmt::format(
        "CPython's {} threads on one core switched {} times voluntarily (blocking on the GIL, "
        "which it hands over every {} by default) and {} times by the OS's preemption.",
        threads, vol, "5 ms", inv));
  }
  report.table(std::move(table));
  bars.push_back({"\"few\" ms: low end", preemption::kFewMsLow * 1e3, 2});
  bars.push_back({"\"few\" ms: high end", preemption::kFewMsHigh * 1e3, 2});
  report.figure({"preemption.svg",
                 "How long a thread runs before it is switched out, against the claim's \"few "
                 "milliseconds\".",
                 svg::bars("Time on the core between switches", "ms", bars)});
  report.note(load_note());
  report.verdict(preemption::judge(m), Source::kNative);
}

const bool registered = register_experiment(
    {"preemption", "threads sharing one core: how often the OS preempts them, and the cost", run,
     Chapter::kCoroutines, 20});

}  // namespace
}  // namespace concur::lab
