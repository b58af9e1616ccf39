// Internal: threads' names and the CPUs this process may run on.
#pragma once

#include <cstddef>
#include <string>

namespace concur::platform {

// The CPUs this process may run on: its affinity mask (`taskset`, a container's cpuset), not
// every core the machine has; at least 1. Python 3.13's os.process_cpu_count(), which sizes its
// pools by default.
std::size_t usable_cpu_count() noexcept;

// The calling thread's name as tools show it (top -H, gdb, /proc/<pid>/task/*/comm). Linux keeps
// 15 bytes; a longer name is cut.
void set_current_thread_name(const std::string& name) noexcept;
std::string current_thread_name();

}  // namespace concur::platform
