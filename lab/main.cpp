// concur-lab: tests each claim of the tutorial on threads, processes, the GIL and coroutines by
// measuring it on this machine, next to real CPython, and says which claims hold.
//
//   concur-lab list                    the experiments, one line each
//   concur-lab run NAME...             run some
//   concur-lab all                     run every experiment
//   options: --quick (small workloads, seconds each), --json FILE, --python PATH, --out DIR
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <fstream>

#include <concur/multiprocessing/main_guard.hpp>
#include <string_view>

#include "lab.hpp"
#include "machine.hpp"
#include "report.hpp"

namespace {

using concur::lab::Experiment;
using concur::lab::RunResult;

RunResult run_one(const Experiment& e, const concur::lab::Options& options) {
  RunResult result;
  result.name = e.name;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    e.run(options, result.report);
    if (!result.report.verdict()) result.error = "the experiment gave no verdict";
  } catch (const std::exception& ex) {
    result.error = ex.what();
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  // The fork-vs-spawn experiment runs this program without its guard on purpose, to show what
  // the guard prevents (see lab/experiments/fork_vs_spawn.cpp).
  if (argc > 2 && std::string_view(argv[1]) == concur::lab::kUnguardedDemo) {
    return concur::lab::run_unguarded_demo(argv[2]);
  }
  // The c10k experiment's servers and client run as separate processes of this program.
  if (argc > 2 && std::string_view(argv[1]) == concur::lab::kC10kHelper) {
    return concur::lab::run_c10k_helper(argc, argv);
  }
  // Worker processes of spawn and forkserver re-run this program: they stop here.
  concur::multiprocessing::main_guard(argc, argv);
  CLI::App app{
      "concur-lab: the tutorial's claims about threads, processes, the GIL and "
      "coroutines, measured on this machine next to CPython"};
  app.require_subcommand(1);
  app.fallthrough();  // options may come after the subcommand: `concur-lab all --quick`
  concur::lab::Options options;
  std::string json_path;
  std::vector<std::string> pythons;
  app.add_flag("--quick", options.quick, "small workloads: a few seconds per experiment");
  app.add_option("--python", pythons,
                 "the CPython to compare with (default /usr/bin/python3); give it again to show "
                 "more versions beside the first, e.g. --python /usr/bin/python3 --python "
                 "~/.pyenv/versions/3.13.1/bin/python3");
  app.add_option("--out", options.out_dir, "folder for report.html and the pictures")
      ->capture_default_str();
  app.add_option("--json", json_path, "also write every result as JSON to this file");

  auto* list = app.add_subcommand("list", "list the experiments");
  auto* run = app.add_subcommand("run", "run the named experiments");
  std::vector<std::string> names;
  run->add_option("names", names, "experiment names (see `list`)")->required();
  auto* all = app.add_subcommand("all", "run every experiment");
  CLI11_PARSE(app, argc, argv);
  if (!pythons.empty()) {
    options.python = pythons.front();
    options.more_pythons.assign(pythons.begin() + 1, pythons.end());
  }

  const auto& known = concur::lab::experiments();
  if (list->parsed()) {
    for (const Experiment& e : known) fmt::print("{:<22} {}\n", e.name, e.summary);
    return 0;
  }
  std::vector<const Experiment*> chosen;
  if (all->parsed()) {
    for (const Experiment& e : known) chosen.push_back(&e);
  } else {
    for (const std::string& name : names) {
      auto it = std::find_if(known.begin(), known.end(),
                             [&](const Experiment& e) { return e.name == name; });
      if (it == known.end()) {
        fmt::print(stderr, "concur-lab: no experiment named '{}'; `concur-lab list` shows them\n",
                   name);
        return 2;
      }
      chosen.push_back(&*it);
    }
  }

  const std::string machine = concur::support::describe(concur::support::machine_info());
  fmt::print("concur-lab on: {}\n", machine);
  std::vector<RunResult> results;
  for (const Experiment* e : chosen) {
    results.push_back(run_one(*e, options));
    concur::lab::print_report(results.back());
  }

  fmt::print("\n=== Summary ===\n");
  int failed = 0;
  for (const RunResult& r : results) {
    const std::string verdict =
        r.error.empty() ? concur::lab::to_string(*r.report.verdict()) : "FAILED";
    fmt::print("  {:<22} {:<13} ({:.1f} s)\n", r.name, verdict, r.seconds);
    if (!r.error.empty()) ++failed;
  }
  concur::lab::write_outputs(results, machine, options);
  fmt::print("report: {}/report.html\n", options.out_dir);
  if (!json_path.empty()) {
    nlohmann::json j;
    j["machine"] = machine;
    j["quick"] = options.quick;
    for (const RunResult& r : results) j["experiments"].push_back(concur::lab::to_json(r));
    std::ofstream(json_path) << j.dump(2) << '\n';
    fmt::print("json: {}\n", json_path);
  }
  return failed == 0 ? 0 : 1;
}
