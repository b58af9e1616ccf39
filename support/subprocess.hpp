// support/subprocess.hpp: run a program, capture what it prints, stop it if it overruns.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace concur::support {

struct CommandResult {
  int exit_code = -1;      // the exit status, or -signal if it was killed by one
  bool timed_out = false;  // killed by us (SIGKILL) after the timeout
  std::string out;
  std::string err;
};

// Runs argv[0] (searched on PATH when it has no '/') with the given arguments, stdin from
// /dev/null. Never throws for the program's own failure: look at the result. Throws
// std::runtime_error only if the program could not be started at all.
CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

}  // namespace concur::support
