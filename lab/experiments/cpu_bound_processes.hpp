// lab/experiments/cpu_bound_processes.hpp: the judge of cpu-bound-processes (workload in
// cpu_bound_processes.cpp).
//
// Claim: N processes, each with its own interpreter lock, run CPU-bound work up to N times as
// fast as one. A claim about parallel speed-up: judged only when the control passes.
#pragma once

#include <algorithm>

#include "evidence.hpp"

namespace concur::lab::cpu_bound_processes {

// "Up to N times as fast": 70% of the ideal leaves room for starting work in the workers and
// collecting results, and for a VM that does not give every core to us all the time.
inline constexpr double kNearLinear = 0.7;
// Below this, the processes did not run in parallel at all: the same margin as the control's.
inline constexpr double kSomeGain = ParallelControl::kMinSpeedup;

struct Measurements {
  ParallelControl control;
  bool from_cpython = false;  // the subject is CPython's multiprocessing.Pool, else concur's pool
  int processes = 2;
  Sample one_s;   // the subject's loop in one process
  Sample many_s;  // the same loop split over `processes` processes
  double speedup() const { return one_s.median() / many_s.median(); }
  double ideal() const {
    return std::min<double>(processes, static_cast<double>(control.usable_cores));
  }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::cpu_bound_processes
