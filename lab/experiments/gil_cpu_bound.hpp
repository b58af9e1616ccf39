// lab/experiments/gil_cpu_bound.hpp: the judge of gil-cpu-bound (workload in gil_cpu_bound.cpp).
//
// Claim: with the interpreter lock, CPU-bound work split over threads runs no faster than on one.
// "No faster" only means something where the same loop without a lock does run faster, so the
// claim is judged only when the parallelism control passes (lab/evidence.hpp).
#pragma once

#include "evidence.hpp"

namespace concur::lab::gil_cpu_bound {

// Up to this speed-up, splitting gained nothing: 15% is the run-to-run noise of a busy VM.
inline constexpr double kNoFaster = 1.15;
// Beyond this, the threads computed in parallel: more than half of a second core's worth (1.5x)
// plus the noise margin.
inline constexpr double kClearGain = 1.6;

struct Measurements {
  ParallelControl control;    // can this run compute in parallel at all?
  bool from_cpython = false;  // the subject is CPython (else concur's GIL emulation)
  int threads = 2;            // the subject's split
  Sample one_s;               // the subject on 1 thread
  Sample split_s;             // the subject split over `threads` threads
  double speedup() const { return one_s.median() / split_s.median(); }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::gil_cpu_bound
