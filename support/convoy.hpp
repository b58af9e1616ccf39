// support/convoy.hpp: the convoy workload, shared by the lab's gil-convoy experiment and
// bench/gil_bench: one CPU-bound thread (a counting loop with an InterpreterLock checkpoint every
// 1,000 steps) beside one I/O thread that, holding the lock, releases it around a one-byte round
// trip through a `cat` child and takes it back, in a loop. Either thread can run alone (the
// baseline each is compared with).
#pragma once

#include <sys/types.h>

#include <concur/gil.hpp>

namespace concur::support {

// A `cat` child: a byte written comes back. Reaped and its pipes closed on destruction.
// Errors: std::runtime_error when the pipes or the child cannot be made.
class PipeEcho {
 public:
  PipeEcho();
  ~PipeEcho();
  PipeEcho(const PipeEcho&) = delete;
  PipeEcho& operator=(const PipeEcho&) = delete;
  void round_trip();

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
};

struct ConvoyRates {
  double io_per_s = 0;   // round trips per second of the I/O thread (0: not run)
  double cpu_per_s = 0;  // loop steps per second of the CPU-bound thread (0: not run)
};

// Runs the I/O thread (this one) and/or the CPU-bound thread for `seconds` under a fresh lock
// made with `lock` (free_threaded: no lock at all, the ceiling).
ConvoyRates run_convoy(PipeEcho& echo, const InterpreterLockOptions& lock, double seconds,
                       bool with_io, bool with_cpu);

}  // namespace concur::support
