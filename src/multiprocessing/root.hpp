// Internal: which process is the root of a concur program (the first one, not started by
// concur), so that what its children leave behind can be cleaned up when it ends.
#pragma once

#include <sys/types.h>

#include <string>

namespace concur::multiprocessing::detail {

// The pid of the program's root process (inherited by children through the environment).
pid_t program_root_pid();
bool is_program_root();
// "CONCUR_MP_ROOT=<pid>", for the environment of a child started by exec.
std::string root_environment_entry();

// Runs at the normal exit of the root process (shared_memory.cpp): unlinks the shared memory
// segments the program's processes named and left behind.
void on_root_exit();

}  // namespace concur::multiprocessing::detail
