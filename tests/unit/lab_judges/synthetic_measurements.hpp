// Synthetic controls for the judges' tests (no experiment is run).
#pragma once

#include "evidence.hpp"

namespace concur::lab::testing {

// A control that passed (parallel) or failed: its medians give the speed-up asked for.
inline ParallelControl control_with(double speedup, unsigned cores = 2) {
  ParallelControl c;
  c.usable_cores = cores;
  c.threads = static_cast<int>(cores < 2 ? 2 : cores);
  c.cores_explanation = "synthetic";
  c.one_thread_s.values = {1.0, 1.0, 1.0};
  c.all_threads_s.values = {1.0 / speedup, 1.0 / speedup, 1.0 / speedup};
  return c;
}

inline Sample sample_of(double value) {
  Sample s;
  s.values = {value, value, value};
  return s;
}

}  // namespace concur::lab::testing
