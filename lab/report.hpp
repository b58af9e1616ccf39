// lab/report.hpp: how concur-lab shows what its experiments found: on the terminal, as JSON, and
// as an HTML page with the pictures (Options::out_dir/report.html).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lab.hpp"

namespace concur::lab {

struct RunResult {
  std::string name;
  Report report;
  std::string error;  // why the experiment failed, if it did
  double seconds = 0;
};

void print_report(const RunResult& result);
nlohmann::json to_json(const RunResult& result);
// Writes report.html and every figure's SVG under options.out_dir.
void write_outputs(const std::vector<RunResult>& results, const std::string& machine,
                   const Options& options);

}  // namespace concur::lab
