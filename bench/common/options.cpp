// bench/common/options.cpp: see options.hpp.
#include "options.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

#include "python.hpp"

namespace concur::bench {
namespace {

// Google Benchmark's own flags: --benchmark_* and its verbosity, --v=N.
bool is_benchmark_flag(const std::string& arg) {
  return arg.rfind("--benchmark_", 0) == 0 || arg.rfind("--v=", 0) == 0;
}

}  // namespace

RaceOptions parse_race_options(int argc, char** argv, const std::string& description,
                               PythonPeers peers, const std::string& quick) {
  RaceOptions options;
  CLI::App app{description};
  if (peers == PythonPeers::some) {
    options.python = support::kDefaultPython;
    app.add_option("--python", options.python, "the CPython interpreter the Python peers run under")
        ->type_name("PATH")
        ->capture_default_str();
  }
  app.add_option("--json", options.json_path, "also write the table as JSON to this file")
      ->type_name("FILE");
  app.add_flag("--quick", options.quick, quick + "; 3 repetitions instead of 7 (a smoke run)");
  // Everything else is Google Benchmark's (--benchmark_filter=REGEX, ...), passed on as given.
  app.allow_extras();
  app.footer(
      "Other flags go to Google Benchmark, e.g. --benchmark_filter=REGEX (cases are named "
      "<scenario>/<peer>).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  options.benchmark_args.push_back(argv[0]);
  for (std::string& extra : app.remaining()) {
    // Google Benchmark ignores a flag it does not know: a typo would run the whole race.
    if (!is_benchmark_flag(extra)) {
      std::exit(app.exit(CLI::ExtrasError("unknown option '" + extra +
                                              "': see --help; Google Benchmark's flags start "
                                              "with --benchmark_",
                                          CLI::ExitCodes::ExtrasError)));
    }
    options.benchmark_args.push_back(std::move(extra));
  }
  return options;
}

}  // namespace concur::bench
