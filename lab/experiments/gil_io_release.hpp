// lab/experiments/gil_io_release.hpp: the judge of gil-io-release (workload in gil_io_release.cpp).
//
// Claim: a waiting thread drops the lock and the others take it at once, so N waits overlap.
// This experiment exercises concur's InterpreterLock only (its verdicts say "concur's model");
// io-bound-threads shows the same on CPython's time.sleep.
#pragma once

#include "lab.hpp"

namespace concur::lab::gil_io_release {

// "Instantly grabs the Lock": N overlapping waits take about one; half a wait of slack.
inline constexpr double kNearOneWait = 1.5;
// Held, the waits queue: all N of them (0.9: timer rounding).
inline constexpr double kNearAllWaits = 0.9;

struct Measurements {
  int threads = 10;
  double wait_s = 0.2;
  double released_s = 0;  // every thread releases the lock while it waits
  double held_s = 0;      // every thread keeps the lock while it waits
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::gil_io_release
