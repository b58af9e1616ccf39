// lab/report.hpp: how concur-lab shows what its experiments found: on the terminal, as JSON
// (Options::out_dir/report.json) and as an HTML page with the pictures (report.html).
//
// Both files are rewritten after every experiment, so a run stopped by Ctrl-C or a crash leaves
// the report of what it finished. The page tells the tutorial's story chapter by chapter: each
// claim a card with its verdict and the runtime it came from, the chart, the figures, the
// thresholds with their reasons, and the explanation composed from the measurements.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lab.hpp"

namespace concur::lab {

struct RunResult {
  std::string name;
  Chapter chapter = Chapter::kKitchen;
  Report report;
  std::string error;  // why the experiment failed, if it did
  double seconds = 0;
};

// What the page's header says about this run.
struct RunHeader {
  std::string date;                  // UTC, ISO 8601
  std::string commit;                // `git describe --always --dirty` of the source, or "unknown"
  std::string command_line;          // as typed
  std::string machine;               // support::describe(machine_info())
  std::string cores;                 // the cores this run may use, and why (support::CoreBudget)
  std::vector<std::string> pythons;  // "3.11.2 (/usr/bin/python3)", or why it is unusable
  bool quick = false;
};

// Collects the header (runs git and each CPython once).
RunHeader make_header(int argc, char** argv, const Options& options);

void print_report(const RunResult& result);
nlohmann::json to_json(const RunResult& result);
nlohmann::json to_json(const RunHeader& header, const std::vector<RunResult>& results);
// Writes report.html, report.json and every figure and attachment under options.out_dir.
void write_outputs(const std::vector<RunResult>& results, const RunHeader& header,
                   const Options& options);

}  // namespace concur::lab
