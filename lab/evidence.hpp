// lab/evidence.hpp: the rules of evidence every experiment follows (see docs/CLAIMS.md).
//
// - (Source, Threshold and Judgement, the report's vocabulary, are in lab.hpp.)
// - A verdict is a pure function of this run's measurements: each experiment has a judge that
//   takes its measurements and returns a Judgement, so unit tests can feed it synthetic figures
//   and reach every branch (tests/unit/lab_judges/).
// - Thresholds come from the claim's words or first principles, are declared beside the judge
//   with a one-line reason, and are reported (Report::threshold) so the page and the JSON show
//   what the figures were held against.
// - Each verdict says which runtime it came from (Source): a claim about Python judged without
//   CPython says "from concur's model" everywhere it is shown.
// - A claim about parallel speed-up is judged only when the control (ParallelControl) shows this
//   run can compute in parallel at all; otherwise it is inconclusive, with the reason.
// - Noisy figures are repeated, the variants interleaved, and judged on medians (Samples).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lab.hpp"

namespace concur::lab {

// Repeated measurements of one variant.
struct Sample {
  std::vector<double> values;
  double median() const;
  double min() const;
  double max() const;
  // (max - min) / median: how far apart the repetitions landed; 0 for fewer than two.
  double spread() const;
  std::string describe_seconds() const;  // "1.23 s (1.20-1.31 s, 5 runs)"
};

// Runs every variant `repetitions` times, interleaved (a, b, c, a, b, c, ...) so that a slow
// spell of the machine falls on all of them alike; each call returns the figure to keep
// (usually seconds).
std::vector<Sample> interleaved(int repetitions,
                                const std::vector<std::function<double()>>& variants);

// How many repetitions an experiment makes: fewer with --quick, never fewer than 3 (a median
// of two is a mean).
int repetitions(const Options& options);

// The control for every claim about parallel speed-up: the same CPU-bound loop with no lock at
// all, on one thread and on as many threads as this run may use (support::usable_cores(), from
// the affinity mask and the cgroup quota), repeated and interleaved. Measured once per run of
// concur-lab, on first use.
struct ParallelControl {
  // Below this median speed-up, the no-lock loop did not run in parallel: on 2 cores an ideal
  // machine gives 2x; 1.2x is far enough above 1x that scheduling noise does not reach it, and
  // far enough below 2x that a busy VM still passes.
  static constexpr double kMinSpeedup = 1.2;

  unsigned usable_cores = 1;
  std::string cores_explanation;  // support::CoreBudget::explanation
  int threads = 1;
  Sample one_thread_s;
  Sample all_threads_s;
  double speedup() const { return one_thread_s.median() / all_threads_s.median(); }
  bool parallel_possible() const { return usable_cores >= 2 && speedup() >= kMinSpeedup; }
  // "the no-lock control ran 1.93x as fast on 2 threads (2 usable: ...)" or why not.
  std::string describe() const;
};
const ParallelControl& parallel_control(const Options& options);

// For judges: the Judgement to return when the control shows no parallelism here.
Judgement inconclusive_without_parallelism(const ParallelControl& control);

// Records the control's figures in the report (a table row, measured values, the threshold).
void report_control(Report& report, const ParallelControl& control);

}  // namespace concur::lab
