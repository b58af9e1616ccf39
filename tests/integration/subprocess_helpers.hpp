// tests/integration/subprocess_helpers.hpp: running the helper programs the integration tests
// need (tests/integration/*_helper and friends), and reading what they leave behind.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace concur::testing {

inline std::string temp_path(const std::string& stem) {
  return "/tmp/concur-test-" + stem + "-" + std::to_string(getpid());
}

// Runs a helper program built next to the tests (CONCUR_TEST_HELPERS_DIR).
inline support::CommandResult run_helper(const std::string& name, std::vector<std::string> args,
                                         std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{std::string(CONCUR_TEST_HELPERS_DIR) + "/" + name};
  argv.insert(argv.end(), args.begin(), args.end());
  return support::run_command(argv, timeout);
}

inline int count_lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

inline std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    closedir(dir);
  }
  return names;
}

}  // namespace concur::testing
