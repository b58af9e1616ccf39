// The rules of evidence: samples, interleaving, and the parallelism control.
#include "evidence.hpp"

#include "progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "cores.hpp"
#include "stats.hpp"
#include "workload.hpp"

namespace concur::lab {

double Sample::median() const {
  return support::median_of(values);
}

double Sample::min() const {
  return values.empty() ? NAN : *std::min_element(values.begin(), values.end());
}

double Sample::max() const {
  return values.empty() ? NAN : *std::max_element(values.begin(), values.end());
}

double Sample::spread() const {
  return values.size() < 2 ? 0.0 : (max() - min()) / median();
}

std::string Sample::describe_seconds() const {
  return fmt::format("{} ({}-{}, {} runs)", format_seconds(median()), format_seconds(min()),
                     format_seconds(max()), values.size());
}

std::vector<Sample> interleaved(int repetitions,
                                const std::vector<std::function<double()>>& variants) {
  std::vector<Sample> samples(variants.size());
  for (int r = 0; r < repetitions; ++r) {
    progress::repetition(r + 1, repetitions);
    for (std::size_t v = 0; v < variants.size(); ++v) samples[v].values.push_back(variants[v]());
  }
  return samples;
}

int repetitions(const Options& options) {
  return options.quick ? 3 : 5;
}

namespace {

using Clock = std::chrono::steady_clock;

// The no-lock loop split over `threads` threads; returns the wall time.
double no_lock_run(long work, int threads) {
  const long share = work / threads;
  std::vector<long> sums(static_cast<std::size_t>(threads));
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k) {
    pool.emplace_back(
        [&, k] { sums[static_cast<std::size_t>(k)] = model::count_boxed(share, nullptr); });
  }
  for (auto& t : pool) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  for (long s : sums) {
    if (s != share * (share - 1) / 2) throw CheckFailed("self-check failed: the control's sum");
  }
  return wall;
}

ParallelControl measure(const Options& options) {
  ParallelControl c;
  const support::CoreBudget cores = support::core_budget();
  c.usable_cores = cores.usable;
  c.cores_explanation = cores.explanation;
  c.threads = static_cast<int>(std::max(2u, cores.usable));
  // Calibrate: one thread takes about `target` seconds.
  const double target = options.quick ? 0.1 : 0.3;
  long work = 200'000;
  const auto t0 = Clock::now();
  model::count_boxed(work, nullptr);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  work =
      std::max<long>(c.threads * 1000L, static_cast<long>(static_cast<double>(work) * target / s));
  auto samples = interleaved(repetitions(options), {[&] { return no_lock_run(work, 1); },
                                                    [&] { return no_lock_run(work, c.threads); }});
  c.one_thread_s = std::move(samples[0]);
  c.all_threads_s = std::move(samples[1]);
  return c;
}

}  // namespace

std::string ParallelControl::describe() const {
  return fmt::format(
      "the no-lock control loop ran {} as fast on {} threads as on one (median of {} runs; {})",
      format_ratio(speedup()), threads, one_thread_s.values.size(), cores_explanation);
}

const ParallelControl& parallel_control(const Options& options) {
  static std::mutex mutex;
  static std::optional<ParallelControl> measured;
  std::lock_guard lock(mutex);
  if (!measured) measured = measure(options);
  return *measured;
}

Judgement inconclusive_without_parallelism(const ParallelControl& control) {
  if (control.usable_cores < 2) {
    return {Verdict::kInconclusive,
            fmt::format("this run may use only {} core ({}), so no parallel speed-up can be seen "
                        "here, whatever the runtime; run it with 2 or more cores",
                        control.usable_cores, control.cores_explanation)};
  }
  return {Verdict::kInconclusive,
          fmt::format("{}, below the {} needed to show that this machine computes in parallel "
                      "at all (a busy or throttled VM?), so no claim about parallel speed-up is "
                      "judged",
                      control.describe(), format_ratio(ParallelControl::kMinSpeedup))};
}

void report_control(Report& report, const ParallelControl& control) {
  report.measured("control_no_lock_speedup", control.speedup(), "x");
  report.measured("usable_cores", control.usable_cores, "cores");
  report.threshold(
      {"control_min_speedup", ParallelControl::kMinSpeedup,
       "the no-lock loop must beat this on all usable cores before any claim about "
       "parallel speed-up is judged: far above noise around 1x, well below the ideal"});
  report.table({"Control: can this run compute in parallel at all? (the same loop, no lock)",
                {"threads", "wall time (median, range)", "speed-up"},
                {{"1", control.one_thread_s.describe_seconds(), "1x"},
                 {std::to_string(control.threads), control.all_threads_s.describe_seconds(),
                  format_ratio(control.speedup())}}});
}

}  // namespace concur::lab
