#include "multiprocessing/root.hpp"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace concur::multiprocessing::detail {
namespace {

constexpr const char* kRootVariable = "CONCUR_MP_ROOT";

pid_t g_root = 0;
std::once_flag g_root_once;

// The root is passed only to children concur starts (spawn and forkserver put it in the child's
// environment; a forked child has it in memory), never to unrelated programs this one runs.
void find_root() {
  const char* inherited = std::getenv(kRootVariable);
  const long value = inherited ? std::strtol(inherited, nullptr, 10) : 0;
  if (inherited) unsetenv(kRootVariable);
  if (value > 0 && value != getpid()) {
    g_root = static_cast<pid_t>(value);
    return;
  }
  g_root = getpid();
  std::atexit(on_root_exit);
}

}  // namespace

pid_t program_root_pid() {
  std::call_once(g_root_once, find_root);
  return g_root;
}

bool is_program_root() {
  return program_root_pid() == getpid();
}

std::string root_environment_entry() {
  return std::string(kRootVariable) + "=" + std::to_string(program_root_pid());
}

}  // namespace concur::multiprocessing::detail
