// `concur-lab __c10k MODE ...`: runs one of the c10k experiment's helper processes
// (lab/experiments/c10k_processes.hpp).
#include <sys/resource.h>

#include <concur/asyncio.hpp>
#include <cstdio>
#include <map>
#include <string>

#include "c10k_processes.hpp"
#include "lab.hpp"

namespace concur::lab {

namespace c10k {

long raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur != lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(lim.rlim_cur);
}

void say(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace c10k

namespace {

std::map<std::string, std::string> parse_flags(int argc, char** argv, int first) {
  std::map<std::string, std::string> flags;
  for (int i = first; i + 1 < argc; i += 2) flags[argv[i]] = argv[i + 1];
  return flags;
}

}  // namespace

int run_c10k_helper(int argc, char** argv) {
  using namespace c10k;
  // argv: concur-lab __c10k MODE [--flag value]...
  if (argc < 3) return 2;
  raise_fd_limit();
  const std::string mode = argv[2];
  const auto flags = parse_flags(argc, argv, 3);
  try {
    const int backlog = flags.count("--backlog") ? std::stoi(flags.at("--backlog")) : kBacklog;
    if (mode == "server-asyncio") {
      asyncio::run(serve_with_loop(backlog), asyncio::RunOptions{.handle_sigint = false});
      return 0;
    }
    if (mode == "server-threads") return serve_with_threads(backlog);
    if (mode == "client") return run_client(flags);
    say("ERROR unknown mode " + mode);
    return 2;
  } catch (const std::exception& e) {
    say(std::string("ERROR ") + e.what());
    return 1;
  }
}

}  // namespace concur::lab
