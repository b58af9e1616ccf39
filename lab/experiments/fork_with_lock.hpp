// lab/experiments/fork_with_lock.hpp: the judge of fork-with-lock (workload in fork_with_lock.cpp).
//
// Claim: on Linux, fork() copies the parent's memory safely. The copy is checked by a child that
// sums data its parent wrote; "safely" is tested where it breaks: another thread holds a lock at
// the moment of the fork, and the child (which has only the forking thread) then takes it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "evidence.hpp"

namespace concur::lab::fork_with_lock {

// How long a child that needs microseconds may take before it is declared stuck and killed:
// a thousand times its work, even on a loaded machine.
inline constexpr double kStuckAfterS = 2.0;

struct Measurements {
  std::string who;                    // "CPython 3.11.2" or "concur (C++)"
  bool control_finished = false;      // the child forked with the lock free finished in time
  bool copy_intact = false;           // ... and saw its parent's data
  bool held_lock_stuck = false;       // the child forked while another thread held the lock hung
  std::string default_method;         // the runtime's default way to start a process
  std::optional<bool> default_stuck;  // a process started that way while the lock was held hung
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::fork_with_lock
