// lab/experiments/refcount_race.hpp: the judge of refcount-race (workload in refcount_race.cpp).
//
// Claim: plain reference counts changed by two threads at once lose updates, free objects still
// in use, and crash; the lock prevents it. The experiment runs concur's model of reference
// counting (lab/model/objects.hpp), not CPython's objects: its verdict says "concur's model".
#pragma once

#include "lab.hpp"

namespace concur::lab::refcount_race {

// No threshold is a number of our choosing: one lost update is a lost update, one object freed
// while held is a use after free. Recorded for the report all the same.
inline constexpr long kAnyLoss = 1;

struct Race {
  long lost_updates = 0;
  long freed_early = 0;  // objects freed although a reference was still held
  long use_after_free = 0;
};

struct Measurements {
  Race all_cores;         // unlocked plain counts, threads on every usable core
  Race one_core;          // the same, both threads pinned to one CPU: preemption only
  long locked_lost = 0;   // plain counts under the InterpreterLock: lost updates
  long others_lost = 0;   // atomic and biased counts: lost updates
  int one_core_cpu = -1;  // the CPU they were pinned to; -1 when pinning failed
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::refcount_race
