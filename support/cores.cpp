#include "cores.hpp"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace concur::support {
namespace {

// The cgroup v2 path of this process ("0::/user.slice/..."), or "" on cgroup v1 / none.
std::string own_cgroup() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

// The tightest cpu.max quota on the path from this process's cgroup up to the root, as cores.
double cgroup_quota() {
  std::string path = own_cgroup();
  if (path.empty()) return 0;
  double tightest = 0;
  while (true) {
    std::ifstream in("/sys/fs/cgroup" + path + "/cpu.max");
    std::string quota;
    double period = 0;
    if (in >> quota >> period && quota != "max" && period > 0) {
      const double cores = std::stod(quota) / period;
      if (tightest == 0 || cores < tightest) tightest = cores;
    }
    if (path.empty() || path == "/") break;
    const auto slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return tightest;
}

}  // namespace

CoreBudget core_budget() {
  CoreBudget b;
  b.online = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  b.affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? static_cast<unsigned>(CPU_COUNT(&set))
                                                           : b.online;
  b.cgroup_quota = cgroup_quota();
  b.usable = b.affinity;
  if (b.cgroup_quota > 0) {
    b.usable = std::min(b.usable, static_cast<unsigned>(std::ceil(b.cgroup_quota)));
  }
  b.usable = std::max(1u, b.usable);
  b.explanation = fmt::format(
      "{} usable: {} of {} online cores in the affinity mask; {}", b.usable, b.affinity, b.online,
      b.cgroup_quota > 0 ? fmt::format("cgroup quota {:.2f} cores", b.cgroup_quota)
                         : std::string("no cgroup CPU quota"));
  return b;
}

unsigned usable_cores() {
  return core_budget().usable;
}

}  // namespace concur::support
