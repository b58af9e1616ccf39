// lab/experiments/numpy_dot.hpp: the judge of numpy-dot (workload in numpy_dot.cpp).
//
// Claim: a large matrix multiply (numpy.dot) releases the interpreter lock and runs across all
// the cores in native code. Two figures decide it, both about parallelism, so both are judged
// only when the control (lab/evidence.hpp) shows this run can compute in parallel:
//   - released: N threads each calling the multiply (the BLAS held to one thread of its own, so
//     any gain comes from the threads) finish N multiplies faster than one thread does;
//   - all cores: one multiply, the BLAS left at its default, keeps the usable cores busy (its
//     CPU time over its wall time).
#pragma once

#include <string>
#include <vector>

#include "evidence.hpp"

namespace concur::lab::numpy_dot {

// "Absolute parallel processing speeds": the threads reach at least this share of what the
// no-lock control reaches here (0.7, as near-linear scaling elsewhere in the lab); anything
// lower but clearly above 1x is a partial release.
inline constexpr double kNearControl = 0.7;
// Below this median speed-up the threads did not overlap at all: the control's own bar.
inline constexpr double kSomeOverlap = ParallelControl::kMinSpeedup;
// "Across all 8 CPU cores": one multiply keeps at least this share of the usable cores busy
// (CPU time / wall time); 0.8 leaves room for the serial start and end of a multiply.
inline constexpr double kAllCoresShare = 0.8;

// A running multiply keeps at least one core busy; one that got less than half a core's CPU time
// over its wall time was starved by other programs, and then neither figure says anything.
inline constexpr double kStarvedBelowCores = 0.5;

struct Measurements {
  ParallelControl control;
  bool from_cpython = false;  // else concur's model: a BLAS multiply under InterpreterLock
  std::string blas;           // "openblas 0.3.21, 2 threads" (what the subject loaded)
  int threads = 2;
  Sample one_thread_s;            // `threads` multiplies on one thread
  Sample many_threads_s;          // one multiply on each of `threads` threads at once
  double one_multiply_cores = 0;  // CPU time / wall time of one multiply, BLAS at its default
  double threads_speedup() const { return one_thread_s.median() / many_threads_s.median(); }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::numpy_dot
