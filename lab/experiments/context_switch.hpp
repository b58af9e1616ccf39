// lab/experiments/context_switch.hpp: the judge of context-switch (workload in
// context_switch.cpp).
//
// Claim: switching OS threads creates "massive micro-latency"; a coroutine hands control to the
// event loop "without context switching overhead".
#pragma once

#include "lab.hpp"

namespace concur::lab::context_switch {

// "Massive" against "without overhead": the thread switch dominates the coroutine hand-over by an
// order of magnitude, the usual meaning of a cost that makes another negligible.
inline constexpr double kMuchCheaper = 10.0;
// Below this ratio the two are within run-to-run noise (the control's margin).
inline constexpr double kNoticeably = 1.2;

struct Measurements {
  bool from_cpython = false;  // CPython's asyncio and threading, else concur's
  double event_s = 0;         // one hand-over between two coroutines through an Event
  double sleep0_s = 0;        // one bare yield to the loop (sleep(0))
  double threads_s = 0;       // one hand-over between two OS threads (the cheaper variant)
  double ratio() const { return threads_s / event_s; }
  double yield_ratio() const { return threads_s / sleep0_s; }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::context_switch
