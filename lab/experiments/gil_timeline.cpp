// gil-timeline: a picture of four chefs and one knife.
//
// Claim (in our words): only one thread holds the lock at a time; while one computes, the others
// can only wait for it.
//
// Workload: four threads run the CPU-bound loop (count_boxed) under concur's InterpreterLock,
// instrumented, for `seconds` (0.2 s; 0.06 s with --quick), once with CPython's policy and once
// with fifo; the lock records who held it and who waited, when. The timelines are drawn and also
// written as Perfetto / Chrome trace files (open them in ui.perfetto.dev).
//
// This is concur's lock, not CPython's: the verdict is marked as concur's model.
//
// Verdict (gil_timeline.hpp): refuted if two holds overlapped; confirmed when the threads spent on
// average at least kMostlyWaiting of their time waiting; partly true otherwise. The table shows
// how evenly the lock was shared (CPython's policy has no order among waiters; fifo does).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "gil_timeline.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"
#include "workload.hpp"

namespace concur::lab {
namespace gil_timeline {

std::vector<Threshold> thresholds() {
  return {{"mostly_waiting", kMostlyWaiting,
           "N threads, one lock: each ideally waits (N-1)/N; \"paralyzed\" means at least half"}};
}

Judgement judge(const Measurements& m) {
  if (m.holds_overlapped) {
    return {Verdict::kRefuted,
            fmt::format("Two of the {} threads held concur's InterpreterLock at the same time.",
                        m.threads)};
  }
  const std::string numbers = fmt::format(
      "With {} CPU-bound threads on concur's InterpreterLock (not CPython's), no two holds "
      "overlapped, and under CPython's policy each thread spent on average {:.0f}% of the time "
      "waiting for the lock.",
      m.threads, 100 * m.mean_waiting_share);
  if (m.mean_waiting_share >= kMostlyWaiting) return {Verdict::kConfirmed, numbers};
  return {Verdict::kPartlyTrue,
          numbers + " The threads were not mostly waiting: the lock was often free."};
}

}  // namespace gil_timeline

namespace {

constexpr int kThreads = 4;

struct Shares {
  std::map<std::uint64_t, double> held;    // fraction of the run each thread held the lock
  std::map<std::uint64_t, double> waited;  // ... and waited for it
  bool overlap = false;
  std::size_t switches = 0;
};

Shares analyse(const std::vector<GilSpan>& spans, std::int64_t origin, std::int64_t end) {
  Shares s;
  const double total = static_cast<double>(end - origin);
  std::int64_t last_hold_end = origin;
  for (const GilSpan& span : spans) {
    const double d = static_cast<double>(span.end_ns - span.start_ns) / total;
    if (span.kind == GilSpan::holding) {
      if (span.start_ns < last_hold_end) s.overlap = true;
      last_hold_end = std::max(last_hold_end, span.end_ns);
      s.held[span.thread] += d;
      ++s.switches;
    } else {
      s.waited[span.thread] += d;
    }
  }
  return s;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "Only one thread holds the lock at any moment: while one thread computes, every other "
      "thread can only wait for it. Drawn here from concur's InterpreterLock, not CPython's.",
      "Chefs 2, 3, and 4 are mathematically paralyzed");
  const auto duration = std::chrono::duration<double>(options.quick ? 0.06 : 0.2);
  Table table{fmt::format("{} CPU-bound threads sharing the lock for {}", kThreads,
                          format_seconds(duration.count())),
              {"policy", "holds (switches)", "holds overlapping", "share of time held, per thread",
               "average share of time waiting"},
              {}};
  double mean_wait_cpython = 0;
  bool overlapped = false;
  std::vector<svg::Lane> lanes;  // both policies, one time axis
  for (GilPolicy policy : {GilPolicy::cpython, GilPolicy::fifo}) {
    const char* name = policy == GilPolicy::cpython ? "cpython" : "fifo";
    InterpreterLock gil({.policy = policy, .instrument = true});
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int k = 0; k < kThreads; ++k) {
      threads.emplace_back([&, k] {
        gil.name_current_thread(fmt::format("thread {}", k));
        GilGuard hold(gil);
        while (!stop.load(std::memory_order_relaxed)) model::count_boxed(2000, &gil);
      });
    }
    std::this_thread::sleep_for(duration);
    stop = true;
    for (auto& t : threads) t.join();
    const std::vector<GilSpan> spans = gil.timeline();
    report.check(!spans.empty(), "the lock recorded a timeline");
    std::int64_t origin = spans.front().start_ns;
    std::int64_t end = origin;
    for (const GilSpan& s : spans) end = std::max(end, s.end_ns);
    const Shares shares = analyse(spans, origin, end);
    overlapped = overlapped || shares.overlap;
    std::string held;
    double waited = 0;
    for (const auto& [thread, share] : shares.held) {
      held += fmt::format("{}{:.0f}%", held.empty() ? "" : " / ", 100 * share);
    }
    for (const auto& [thread, share] : shares.waited) waited += share / kThreads;
    if (policy == GilPolicy::cpython) mean_wait_cpython = waited;
    table.rows.push_back({name, std::to_string(shares.switches), shares.overlap ? "yes" : "none",
                          held, fmt::format("{:.0f}%", 100 * waited)});
    report.measured(fmt::format("{}_mean_waiting_share", name), waited, "");

    const std::size_t first = lanes.size();
    for (int k = 0; k < kThreads; ++k) lanes.push_back({fmt::format("{}: thread {}", name, k), {}});
    for (const GilSpan& s : spans) {
      if (s.thread == 0 || s.thread > kThreads) continue;
      lanes[first + s.thread - 1].spans.push_back({static_cast<double>(s.start_ns - origin) / 1e9,
                                                   static_cast<double>(s.end_ns - origin) / 1e9,
                                                   s.kind == GilSpan::holding ? 1 : 0});
    }
    report.attach({fmt::format("gil-timeline-{}.json", name),
                   "the same timeline as a Perfetto / Chrome trace (open in ui.perfetto.dev)",
                   gil.chrome_trace_json()});
  }
  report.figure(
      {"gil-timeline.svg",
       "Who held the lock (holds) and who waited, under each policy, on the same time axis; "
       "switch interval 5 ms. Hover a bar for its times.",
       svg::timeline(
           fmt::format("{} threads, one lock: CPython's policy above, fifo below", kThreads), lanes,
           {{1, "holds the lock"}, {0, "waits for it"}})});
  report.table(std::move(table));
  for (const Threshold& t : gil_timeline::thresholds()) report.threshold(t);
  report.verdict(gil_timeline::judge({kThreads, overlapped, mean_wait_cpython}),
                 Source::kConcurModel);
}

const bool registered = register_experiment(
    {"gil-timeline", "4 threads, one lock: who held it when (SVG + Perfetto trace)", run,
     Chapter::kKitchen, 3});

}  // namespace
}  // namespace concur::lab
