// support/machine.hpp: what the lab and the benchmarks print about the machine they measured on,
// as Google Benchmark's context header does, plus what a shared VM makes worth knowing.
#pragma once

#include <string>

namespace concur::support {

struct MachineInfo {
  unsigned cores = 0;
  std::string cpu_model;
  std::string kernel;
  std::string cpu_scaling;   // the cpufreq governor, or "not exposed"
  double steal_percent = 0;  // CPU time the hypervisor took from us over a short sample
  double memory_gib = 0;
  std::string build;  // "release" or "debug"
};

MachineInfo machine_info();
std::string describe(const MachineInfo& info);

}  // namespace concur::support
