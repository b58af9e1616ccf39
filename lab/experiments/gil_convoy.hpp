// lab/experiments/gil_convoy.hpp: the judge of gil-convoy (workload in gil_convoy.cpp).
//
// Claim: an I/O thread gets the lock back "instantly", so it runs unhindered beside CPU-bound
// threads. The convoy effect (bpo-7946) says it waits about one switch interval per I/O call.
#pragma once

#include <cmath>

#include "lab.hpp"

namespace concur::lab::gil_convoy {

// "Instantly": the I/O thread keeps at least half its solo rate beside a CPU-bound thread.
inline constexpr double kInstant = 0.5;
// A convoy: under a tenth of its solo rate, i.e. each call waits many times its own length.
inline constexpr double kConvoy = 0.1;

struct Measurements {
  bool from_cpython = false;       // CPython itself, else concur's cpython policy
  double interval_ms = 5;          // the switch interval of the judged row
  double io_alone_per_s = 0;       // the I/O thread's round trips per second, alone
  double io_beside_per_s = 0;      // ... beside a CPU-bound thread
  double io_priority_share = NAN;  // concur's io_priority policy, beside / alone (NaN: not run)
  double share() const { return io_beside_per_s / io_alone_per_s; }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::gil_convoy
