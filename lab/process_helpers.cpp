// Helpers the process experiments share: this program's path, a process's memory and the load
// average from /proc, and the unguarded demo (a deliberately guard-less run of main()).
#include <unistd.h>

#include <cmath>
#include <concur/multiprocessing/process.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "cores.hpp"
#include "lab.hpp"

namespace {

void nothing_to_do() {}
CONCUR_REGISTER(nothing_to_do);

}  // namespace

namespace concur::lab {

std::string self_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("concur-lab");
}

MemoryUse memory_of(int pid) {
  MemoryUse use;
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    double kib = 0;
    fields >> key >> kib;
    if (key == "Rss:") use.rss_mib = kib / 1024;
    if (key == "Pss:") use.pss_mib = kib / 1024;
    if (key == "Private_Clean:" || key == "Private_Dirty:") use.private_mib += kib / 1024;
  }
  return use;
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double one_minute = NAN;
  in >> one_minute;
  return in ? one_minute : NAN;
}

std::string load_note() {
  const double load = load_average();
  if (std::isnan(load)) return "The machine's load average could not be read.";
  char text[160];
  std::snprintf(text, sizeof text,
                "Load average when this experiment started: %.2f, with %u cores usable by this "
                "run (other work on the machine slows these figures down).",
                load, support::usable_cores());
  return text;
}

int run_unguarded_demo(const std::string& marks_file) {
  // A safety net in case the guard did not hold: never more than a few levels.
  const char* depth = std::getenv("CONCUR_LAB_DEMO_DEPTH");
  const int level = depth ? std::atoi(depth) : 0;
  if (level > 3) return 99;
  setenv("CONCUR_LAB_DEMO_DEPTH", std::to_string(level + 1).c_str(), 1);
  std::ofstream(marks_file, std::ios::app) << getpid() << "\n";
  multiprocessing::Process child({.start_method = multiprocessing::StartMethod::spawn},
                                 nothing_to_do);
  child.start();  // in the child, this is where concur stops the recursion
  child.join();
  std::printf("%d\n", child.exitcode().value_or(-1));
  return 0;
}

}  // namespace concur::lab
