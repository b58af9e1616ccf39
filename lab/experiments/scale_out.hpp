// lab/experiments/scale_out.hpp: the judge of scale-out (workload in scale_out.cpp).
//
// Claim: to go N times faster, run N separate processes, each with its own lock, that talk over
// a channel: here MPI ranks, the kitchens of a cluster. A claim about parallel speed-up: judged
// only when the control passes, and only at rank counts that have a usable core each; beyond
// those the efficiency is reported, not judged. What the channel costs per task is part of the
// verdict.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "evidence.hpp"

namespace concur::lab::scale_out {

// "N times faster": 70% of one core per rank leaves room for handing out the shares and
// collecting results, and for a VM that does not give us every core all the time (the same bar
// as cpu-bound-processes).
inline constexpr double kNearLinear = 0.7;
// Below this median speed-up the ranks did not run in parallel at all: the control's margin.
inline constexpr double kSomeGain = ParallelControl::kMinSpeedup;
// The radio is cheap when one task's round trip costs at most 1% of the task: below the
// run-to-run spread of these timings, so it cannot show in the speed-up.
inline constexpr double kSmallOverhead = 0.01;
// The verdict names the task length at which the round trip would be this share of the work:
// where the radio starts to eat a tenth of what the ranks do.
inline constexpr double kVisibleShare = 0.10;

// One rank count, over its mpirun jobs (one per round of the full run; one with --quick).
struct RankRun {
  int ranks = 1;        // worker ranks; the job has one more, rank 0, which hands out the work
  Sample wall_s;        // the loop split in `ranks` shares, one per rank: every run of it
  Sample task_s;        // how long one share ran on its rank: every share of every run
  Sample round_trip_s;  // one tiny task, submit(...).result(): each job's median
  Sample tiny_task_s;   // wall time per tiny task with thousands in flight: one per job
};

struct Measurements {
  ParallelControl control;
  std::string unavailable;    // why the MPI jobs could not run here; empty when they ran
  bool from_cpython = false;  // mpi4py.futures.MPIPoolExecutor's figures, else concur's pool's
  std::string who;            // "CPython 3.11.2, mpi4py 3.1.4", "concur"
  std::vector<RankRun> runs;  // by rank count, 1 first (the baseline): 1, 2, 4

  double speedup(const RankRun& r) const {
    return runs.front().wall_s.median() / r.wall_s.median();
  }
  // Speed-up per core the ranks could have had: min(ranks, usable cores).
  double efficiency(const RankRun& r) const {
    return speedup(r) / std::min<double>(r.ranks, static_cast<double>(control.usable_cores));
  }
  // The run the verdict judges: the most ranks (2 or more) with a usable core each, or nullptr.
  const RankRun* judged() const {
    const RankRun* best = nullptr;
    for (const RankRun& r : runs) {
      if (r.ranks >= 2 && r.ranks <= static_cast<int>(control.usable_cores)) best = &r;
    }
    return best;
  }
  // One tiny task's round trip as a share of one share's run time on its rank.
  static double overhead_share(const RankRun& r) {
    return r.round_trip_s.median() / r.task_s.median();
  }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::scale_out
