// lab/experiments/process_memory.hpp: the judge of process-memory (workload in
// process_memory.cpp).
//
// Claim: starting a process copies the whole array into it, so memory multiplies with processes.
// "Copied" is a child's private memory (pages no other process shares) over the array's size.
#pragma once

#include <cmath>

#include "lab.hpp"

namespace concur::lab::process_memory {

// A child with under a fifth of the array private did not copy it (its own heap, page tables and
// the pages it touched to sum the array come on top of nothing).
inline constexpr double kNotCopied = 0.2;
// A child with four fifths of the array private holds its own copy (the rest: timing of the read).
inline constexpr double kCopied = 0.8;

struct Measurements {
  bool from_cpython = false;  // CPython's rows (numpy array), else concur's (std::vector<double>)
  double fork_read = 0;       // forked children that only read the array
  double spawn_argument = 0;  // spawned children given the array as an argument (pickled)
  double fork_objects = NAN;  // CPython: forked children reading a list of Python floats
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::process_memory
