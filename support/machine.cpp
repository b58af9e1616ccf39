#include "machine.hpp"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace concur::support {
namespace {

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::vector<double> cpu_times() {
  std::istringstream in(first_line("/proc/stat"));
  std::string label;
  in >> label;
  std::vector<double> v;
  for (double x; in >> x;) v.push_back(x);
  return v;
}

double steal_percent() {
  const auto a = cpu_times();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto b = cpu_times();
  if (a.size() < 8 || b.size() < 8) return 0;
  double total = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) total += b[i] - a[i];
  return total > 0 ? 100.0 * (b[7] - a[7]) / total : 0.0;  // field 8 of "cpu": steal
}

}  // namespace

MachineInfo machine_info() {
  MachineInfo info;
  info.cores = std::thread::hardware_concurrency();
  info.cpu_model = cpu_model();
  utsname un{};
  uname(&un);
  info.kernel = fmt::format("{} {}", un.sysname, un.release);
  info.cpu_scaling = first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  if (info.cpu_scaling.empty()) info.cpu_scaling = "not exposed";
  info.steal_percent = steal_percent();
  info.memory_gib = static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                    static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024 * 1024);
#ifdef NDEBUG
  info.build = "release";
#else
  info.build = "debug (timings are not meaningful)";
#endif
  return info;
}

std::string describe(const MachineInfo& info) {
  return fmt::format(
      "{} cores ({}), {:.0f} GiB, {}; CPU scaling: {}; steal time: {:.0f}%; build: {}", info.cores,
      info.cpu_model, info.memory_gib, info.kernel, info.cpu_scaling, info.steal_percent,
      info.build);
}

}  // namespace concur::support
