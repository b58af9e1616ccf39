// lab/experiments/gil_timeline.hpp: the judge of gil-timeline (workload in gil_timeline.cpp).
//
// Claim: only one thread holds the lock at a time; the others can only wait. This experiment
// exercises concur's InterpreterLock only, and its verdict says so (concur's model).
#pragma once

#include "lab.hpp"

namespace concur::lab::gil_timeline {

// With N CPU-bound threads and one lock each thread ideally waits (N-1)/N of the time (75% for
// 4); "paralyzed" means at least half of it.
inline constexpr double kMostlyWaiting = 0.5;

struct Measurements {
  int threads = 4;
  bool holds_overlapped = false;  // two threads held the lock at once (the claim's refutation)
  double mean_waiting_share = 0;  // under CPython's policy: average share of time spent waiting
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::gil_timeline
