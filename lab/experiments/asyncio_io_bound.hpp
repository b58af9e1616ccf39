// lab/experiments/asyncio_io_bound.hpp: the judge of asyncio-io-bound (workload in
// asyncio_io_bound.cpp).
//
// Claim: ten coroutines on one thread that each wait about a second for a reply finish together in
// about one second, not ten.
#pragma once

#include "lab.hpp"

namespace concur::lab::asyncio_io_bound {

// about one wait: half a wait of slack for connecting and scheduling ten coroutines.
inline constexpr double kNearOneWait = 1.5;
// The one-after-another run must really have waited every wait (0.9: timer rounding).
inline constexpr double kNearAllWaits = 0.9;
// Below a 2x gain the waits did not overlap in any useful sense.
inline constexpr double kSomeHelp = 2.0;

struct Measurements {
  bool from_cpython = false;  // CPython's asyncio, else concur's coroutines
  int waits = 10;
  double latency_s = 1;     // one wait
  double sequential_s = 0;  // the waits one after another
  double coroutines_s = 0;  // one coroutine per wait, all on one thread
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::asyncio_io_bound
