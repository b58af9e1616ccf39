// support/cores.hpp: how many cores this process may really use.
//
// std::thread::hardware_concurrency() (and Python's os.cpu_count()) count the cores online, not
// those this process may run on: under `taskset -c 0`, in a container with a CPU quota, or in a
// cgroup with fewer CPUs, they overstate it. The lab judges claims about parallelism against the
// cores it may use, so it asks the kernel as Python 3.13's os.process_cpu_count() and Go's
// runtime do: the affinity mask (sched_getaffinity), then the cgroup v2 quota (cpu.max) of
// this process's cgroup, rounded up.
#pragma once

#include <string>

namespace concur::support {

struct CoreBudget {
  unsigned online = 0;      // cores the kernel has online (hardware_concurrency)
  unsigned affinity = 0;    // cores in this process's affinity mask
  double cgroup_quota = 0;  // cpu.max quota / period; 0 when there is no quota
  unsigned usable = 0;      // min(affinity, ceil(quota)), at least 1
  std::string explanation;  // "2 of 2 online cores; no cgroup quota"
};

// Reads the affinity mask and the cgroup quota now (they can change while a program runs).
CoreBudget core_budget();

// core_budget().usable.
unsigned usable_cores();

}  // namespace concur::support
