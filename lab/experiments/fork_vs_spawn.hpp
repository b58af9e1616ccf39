// lab/experiments/fork_vs_spawn.hpp: the judge of fork-vs-spawn (workload in fork_vs_spawn.cpp).
//
// Claim: a spawned child re-runs the whole script, so starting a process outside the main guard
// starts one that starts another: a fork bomb.
#pragma once

#include <string>

#include "lab.hpp"

namespace concur::lab::fork_vs_spawn {

// The program and one child make 2 runs of the main body: the re-run, not yet a bomb. A third
// run means a grandchild, i.e. the recursion went on.
inline constexpr int kBombRuns = 2;

struct Measurements {
  bool from_cpython = false;  // CPython's unguarded script, else concur-lab's unguarded mode
  int body_runs = 0;          // times the main body ran, the program itself included
  std::string child_error;    // how the child ended: its error's first sentence, or ""
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::fork_vs_spawn
