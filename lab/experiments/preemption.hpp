// lab/experiments/preemption.hpp: the judge of preemption (workload in preemption.cpp).
//
// Claim: the OS pauses a running thread every few milliseconds to put another on the core, and
// that switching costs a great deal ("massive micro-latency"). Two figures decide it, from
// threads that all want one core (a claim about the OS: native threads are the subject):
//   - how often: the median time a thread ran between two involuntary switches;
//   - how costly: the share of the work per second on the core lost when the threads share it,
//     against one thread alone on it (switches cost what they take away from the work; per
//     second on the core, so that other programs taking the core do not count as that cost).
#pragma once

#include <string>
#include <vector>

#include "evidence.hpp"

namespace concur::lab::preemption {

// "Every few milliseconds": a slice from 1 ms to 10 ms ("few" read generously).
inline constexpr double kFewMsLow = 1e-3;
inline constexpr double kFewMsHigh = 10e-3;
// "Massive": switching costs at least a tenth of the core's work; a cost that size would be felt
// by any program, where a few percent is within what a busy machine varies by.
inline constexpr double kMassiveLoss = 0.10;
// ... and only when it stands out of the noise: every shared run did less work than every run of
// the thread alone (with 5 runs of each, 1 chance in 252 when sharing costs nothing). On this
// kind of VM a 10% difference of medians between two sets of runs happens by chance (seen pinned
// to one core: +17.8% and -23.3% in two runs of the same build).
// Fewer involuntary switches than this in the whole shared run: the threads were not made to
// compete (pinning failed, or the kernel did not count), so nothing is judged.
inline constexpr long kMinSwitches = 10;
// Sharing a core cannot make it do more work per second than one thread alone does (switching
// only takes away): a "gain" beyond this much means the baseline itself was disturbed (another
// program, a frequency change, steal time landing on one run), so nothing is judged.
inline constexpr double kImpossibleGain = 0.25;

struct Measurements {
  int threads = 0;                // threads sharing the one core
  long involuntary_switches = 0;  // over all of them, during the shared run
  double median_slice_s = 0;      // time on the core between involuntary switches (median thread)
  double wait_per_switch_s = 0;   // run-queue wait per involuntary switch (the pause it felt)
  Sample alone_work;              // work per second on the core of one thread alone on it
  Sample shared_work;             // work per second on the core of all of them together on it
  double loss() const { return 1 - shared_work.median() / alone_work.median(); }
  // Every shared run below every run alone: the loss is not the machine's noise.
  bool loss_stands_out() const { return shared_work.max() < alone_work.min(); }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::preemption
