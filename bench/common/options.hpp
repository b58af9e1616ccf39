// bench/common/options.hpp: the command line every race benchmark (thread_pool_bench, gil_bench,
// process_pool_bench, asyncio_bench) takes, parsed once with CLI11:
//
//   <bench> [--python PATH] [--json FILE] [--quick] [Google Benchmark flags]
//
// Flags the parser does not know (--benchmark_filter=..., --benchmark_min_time=...) are passed on
// to Google Benchmark unchanged, in their order. --help prints every option and exits.
#pragma once

#include <string>
#include <vector>

namespace concur::bench {

struct RaceOptions {
  std::string python;     // the CPython the peers run under (empty if the benchmark has none)
  std::string json_path;  // where to write the table as JSON; empty: nowhere
  bool quick = false;     // small workloads, 3 repetitions: a smoke run, not figures
  // argv[0] and every flag meant for Google Benchmark, in the order given.
  std::vector<std::string> benchmark_args;

  int repetitions() const { return quick ? 3 : 7; }
};

// Whether the benchmark runs CPython peers, and so takes --python.
enum class PythonPeers { none, some };

// Parses argv. On --help (or a bad option) prints the usage and ends the process with CLI11's
// exit code, as CLI11_PARSE does in main(). `description` heads the --help text; `quick` says
// what --quick shrinks.
RaceOptions parse_race_options(int argc, char** argv, const std::string& description,
                               PythonPeers peers, const std::string& quick);

}  // namespace concur::bench
