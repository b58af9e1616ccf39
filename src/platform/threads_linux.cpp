// Threads on Linux: sched_getaffinity and pthread_{set,get}name_np.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <thread>

#include "platform/threads.hpp"

namespace concur::platform {

std::size_t usable_cpu_count() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<std::size_t>(CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_current_thread_name(const std::string& name) noexcept {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

std::string current_thread_name() {
  char name[64] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof name) != 0) return {};
  return name;
}

}  // namespace concur::platform
