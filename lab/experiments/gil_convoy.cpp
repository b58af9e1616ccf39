// gil-convoy: does an I/O thread really get the lock back "instantly"?
//
// Claim (in our words): a thread that does I/O drops the lock and the lock is passed on at once,
// so I/O-bound threads are cheap next to anything else. Beazley's convoy effect (bpo-7946, closed
// unfixed) says otherwise: a thread back from a short blocking call waits for the CPU-bound
// holder's next forced drop, about one switch interval, for every call.
//
// Workload: one CPU-bound thread (a counting loop with a checkpoint every 1,000 steps) beside one
// I/O thread that, holding the lock, releases it, writes one byte to a `cat` process and reads it
// back, and takes the lock again, in a loop for `seconds` (1 s; 0.2 s with --quick). For each of
// concur's policies (cpython, fifo, io_priority) and switch intervals of 1, 5 and 20 ms: the I/O
// thread's round trips per second, and the CPU thread's count per second; both also alone.
// CPython runs the same pair (os.write/os.read to cat; sys.setswitchinterval) in the same run.
// The judged figures -- each thread alone and both threads at the default 5 ms, under the
// cpython and io_priority policies, and CPython's whole script -- are repeated (5 times, 3 with
// --quick), interleaved, and judged on their medians; the other rows are single runs.
//
// Verdict (gil_convoy.hpp): refuted when, under CPython's algorithm (CPython itself if measured,
// else concur's cpython policy) at the default 5 ms, the I/O thread beside a CPU-bound one makes
// fewer than kConvoy x the round trips it makes alone; partly true when it is slowed but by less;
// confirmed when it keeps at least kInstant x. The other policies' rows show what is recoverable
// and what it costs the CPU-bound thread.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>
#include <vector>

#include <concur/gil.hpp>
#include <nlohmann/json.hpp>

#include "convoy.hpp"
#include "evidence.hpp"
#include "gil_convoy.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "stats.hpp"
#include "svg.hpp"

extern char** environ;

namespace concur::lab {
namespace gil_convoy {

std::vector<Threshold> thresholds() {
  return {{"instant", kInstant,
           "\"instantly\": beside a CPU-bound thread the I/O thread keeps half its solo rate"},
          {"convoy", kConvoy,
           "under a tenth of its solo rate each call waits many times its own length: a convoy"}};
}

Judgement judge(const Measurements& m) {
  std::string numbers = fmt::format(
      "In {}, at a {:g} ms switch interval, the I/O thread beside a CPU-bound one made {:.0f} "
      "round trips/s, {} of the {:.0f}/s it makes alone: one every {}.",
      m.from_cpython ? "CPython" : "concur's cpython policy (CPython was not measured)",
      m.interval_ms, m.io_beside_per_s, format_ratio(m.share()), m.io_alone_per_s,
      format_seconds(1 / m.io_beside_per_s));
  if (!std::isnan(m.io_priority_share)) {
    numbers += fmt::format(" concur's io_priority policy kept {} of the solo rate.",
                           format_ratio(m.io_priority_share));
  }
  if (m.share() < kConvoy) {
    return {Verdict::kRefuted,
            numbers + fmt::format(" The lock does not come back instantly: each round trip "
                                  "took {:.0f}x its solo time.",
                                  1 / m.share())};
  }
  if (m.share() < kInstant) {
    return {Verdict::kPartlyTrue, numbers + " Slowed, but not a convoy."};
  }
  return {Verdict::kConfirmed, numbers};
}

}  // namespace gil_convoy

namespace {

constexpr int kIntervalsMs[] = {1, 5, 20};

using Clock = std::chrono::steady_clock;

using support::ConvoyRates;
using support::PipeEcho;

ConvoyRates run_pair(PipeEcho& echo, GilPolicy policy, std::chrono::milliseconds interval,
                     double seconds, bool with_io, bool with_cpu) {
  return support::run_convoy(echo, {.policy = policy, .switch_interval = interval}, seconds,
                             with_io, with_cpu);
}

const char* name(GilPolicy p) {
  switch (p) {
    case GilPolicy::cpython:
      return "cpython";
    case GilPolicy::fifo:
      return "fifo";
    case GilPolicy::io_priority:
      return "io_priority";
  }
  return "?";
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "A thread that does I/O drops the lock, which is passed on at once, so an I/O-bound thread "
      "runs unhindered beside CPU-bound ones (the convoy effect says it waits about one switch "
      "interval per I/O call instead).",
      "Another Thread instantly grabs the Lock");
  const double seconds = options.quick ? 0.2 : 1.0;
  const int reps = repetitions(options);
  PipeEcho echo;
  const auto pair = [&](GilPolicy policy, int ms, bool io, bool cpu) {
    return run_pair(echo, policy, std::chrono::milliseconds(ms), seconds, io, cpu);
  };
  // The judged figures (each thread alone, and both policies that matter at the default 5 ms),
  // repeated and interleaved, judged on medians; the other rows are measured once, to show how
  // the interval moves them.
  ConvoyRates last_cpython_5ms, last_io_priority_5ms;
  const auto judged = interleaved(
      reps,
      {[&] { return pair(GilPolicy::cpython, 5, true, false).io_per_s; },
       [&] { return pair(GilPolicy::cpython, 5, false, true).cpu_per_s; },
       [&] { return (last_cpython_5ms = pair(GilPolicy::cpython, 5, true, true)).io_per_s; },
       [&] {
         return (last_io_priority_5ms = pair(GilPolicy::io_priority, 5, true, true)).io_per_s;
       },
       [&] { return last_cpython_5ms.cpu_per_s; }, [&] { return last_io_priority_5ms.cpu_per_s; }});
  const double io_alone = judged[0].median();
  const double cpu_alone = judged[1].median();
  report.check(io_alone > 0 && cpu_alone > 0, "both threads made progress");

  Table table{
      fmt::format("An I/O thread beside a CPU-bound thread (alone: {:.0f} round trips/s, "
                  "median of {}); 5 ms rows: medians of {} interleaved runs, others: one run",
                  io_alone, reps, reps),
      {"lock", "switch interval", "I/O round trips/s", "vs I/O alone", "CPU thread vs alone"},
      {}};
  std::vector<svg::Bar> bars;
  double concur_cpython_5ms = 0;
  double concur_io_priority_5ms = NAN;
  for (GilPolicy policy : {GilPolicy::cpython, GilPolicy::fifo, GilPolicy::io_priority}) {
    for (int ms : kIntervalsMs) {
      ConvoyRates r;
      if (ms == 5 && policy == GilPolicy::cpython) {
        r = {.io_per_s = judged[2].median(), .cpu_per_s = judged[4].median()};
      } else if (ms == 5 && policy == GilPolicy::io_priority) {
        r = {.io_per_s = judged[3].median(), .cpu_per_s = judged[5].median()};
      } else {
        progress::phase(fmt::format("concur {} policy, {} ms interval", name(policy), ms));
        r = pair(policy, ms, true, true);
      }
      const double io_share = r.io_per_s / io_alone;
      table.rows.push_back({fmt::format("concur {}", name(policy)), fmt::format("{} ms", ms),
                            fmt::format("{:.0f}", r.io_per_s), format_ratio(io_share),
                            format_ratio(r.cpu_per_s / cpu_alone)});
      if (ms == 5) {
        bars.push_back(
            {fmt::format("concur {}", name(policy)), r.io_per_s, static_cast<int>(policy)});
        report.measured(fmt::format("concur_{}_5ms_io_share", name(policy)), io_share, "x");
        if (policy == GilPolicy::cpython) concur_cpython_5ms = r.io_per_s;
        if (policy == GilPolicy::io_priority) concur_io_priority_5ms = io_share;
      }
    }
  }

  gil_convoy::Measurements m{false, 5, io_alone, concur_cpython_5ms, concur_io_priority_5ms};
  bars.insert(bars.begin(), {"concur, I/O thread alone", io_alone, 5});
  if (auto python = cpython_for(options, report)) {
    // The script measures every row once per run; it runs `reps` times and each figure is the
    // median of its runs, so the judged CPython row is as repeated as concur's.
    std::vector<nlohmann::json> runs;
    for (int r = 0; r < reps; ++r) {
      progress::phase(fmt::format("CPython {}: run {} of {}", python->version(), r + 1, reps));
      runs.push_back(python->run_json("gil_convoy.py", {"--seconds", fmt::format("{}", seconds)},
                                      std::chrono::seconds(300)));
    }
    const auto median_of = [&](const auto& pick) {
      std::vector<double> v;
      for (const auto& j : runs) v.push_back(pick(j));
      return support::median_of(v);
    };
    const double py_io_alone =
        median_of([](const auto& j) { return j.at("io_alone_per_s").template get<double>(); });
    const double py_cpu_alone =
        median_of([](const auto& j) { return j.at("cpu_alone_per_s").template get<double>(); });
    const std::string subject = "CPython " + runs.front().at("version").get<std::string>();
    bars.push_back({subject + ", I/O thread alone", py_io_alone, 6});
    table.rows.push_back(
        {subject + " alone", "-", fmt::format("{:.0f}", py_io_alone), "1.00x", "-"});
    const auto& rows = runs.front().at("rows");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const double ms = rows[i].at("interval_ms").get<double>();
      const double io = median_of(
          [&](const auto& j) { return j.at("rows")[i].at("io_per_s").template get<double>(); });
      const double cpu = median_of(
          [&](const auto& j) { return j.at("rows")[i].at("cpu_per_s").template get<double>(); });
      const double share = io / py_io_alone;
      table.rows.push_back({subject, fmt::format("{:g} ms (median of {})", ms, reps),
                            fmt::format("{:.0f}", io), format_ratio(share),
                            format_ratio(cpu / py_cpu_alone)});
      if (ms == 5) {
        m = {true, ms, py_io_alone, io, concur_io_priority_5ms};
        bars.push_back({subject, io, 3});
        report.measured("cpython_5ms_io_share", share, "x");
      }
    }
  }
  report.table(std::move(table));
  report.figure({"gil-convoy.svg",
                 "I/O round trips per second, alone and beside a CPU-bound thread (5 ms switch "
                 "interval; medians); log scale. The line marks the judged runtime's I/O thread "
                 "alone.",
                 svg::bars("I/O thread beside a CPU-bound thread (5 ms interval)", "round trips/s",
                           bars, m.io_alone_per_s, "alone")});
  for (const Threshold& t : gil_convoy::thresholds()) report.threshold(t);
  report.verdict(gil_convoy::judge(m), m.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"gil-convoy", "an I/O thread beside a CPU-bound one, per policy and switch interval", run,
     Chapter::kThreadsForIo, 60});

}  // namespace
}  // namespace concur::lab
