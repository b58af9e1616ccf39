// lab/experiments/io_bound_threads.hpp: the judge of io-bound-threads (workload in
// io_bound_threads.cpp).
//
// Claim: ten threads that each wait about a second finish together in about one second, not ten.
#pragma once

#include "lab.hpp"

namespace concur::lab::io_bound_threads {

// "1 second instead of 10": half a wait of slack for starting ten threads and waking them.
inline constexpr double kNearOneWait = 1.5;
// The one-after-another run must really have waited every wait (0.9: timer rounding).
inline constexpr double kNearAllWaits = 0.9;
// Below a 2x gain the waits did not overlap in any useful sense.
inline constexpr double kSomeHelp = 2.0;

struct Measurements {
  bool from_cpython = false;  // CPython's threads, else concur's
  int waits = 10;
  double latency_s = 1;     // one wait
  double sequential_s = 0;  // the waits one after another
  double threaded_s = 0;    // one thread per wait
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::io_bound_threads
