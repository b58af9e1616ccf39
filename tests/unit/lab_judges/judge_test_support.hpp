// Synthetic measurements for the judges' tests: a parallelism control and samples with the
// figures a test wants, no experiment run.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>

#include "evidence.hpp"

namespace concur::lab::testing {

// A control whose no-lock loop ran `speedup` x as fast on all of `cores` usable cores.
inline ParallelControl control(unsigned cores, double speedup) {
  ParallelControl c;
  c.usable_cores = cores;
  c.cores_explanation = "synthetic";
  c.threads = static_cast<int>(std::max(2u, cores));
  c.one_thread_s.values = {1.0, 1.0, 1.0};
  c.all_threads_s.values = {1.0 / speedup, 1.0 / speedup, 1.0 / speedup};
  return c;
}

// Parallelism is possible here: 2 cores, the control at 1.9x.
inline ParallelControl parallel() {
  return control(2, 1.9);
}

// Three runs around `median` (one 10% either side): a median with a spread.
inline Sample sample(double median) {
  return Sample{{median * 0.9, median, median * 1.1}};
}

}  // namespace concur::lab::testing
