// concur-lab: tests each claim of the tutorial on threads, processes, the GIL and coroutines by
// measuring it on this machine, next to real CPython, and says which claims hold.
//
//   concur-lab list                    the experiments, one line each
//   concur-lab run NAME...             run some
//   concur-lab all                     run every experiment
//   concur-lab claims                  the tutorial's claims, each mapped to what tests it
//   options: --quick (small workloads, seconds each), --json FILE, --python PATH (again for more
//   versions), --out DIR (report.html and report.json, rewritten after every experiment)
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

#include <concur/multiprocessing/main_guard.hpp>
#include <string_view>

#include "claims_text.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "report.hpp"

namespace {

using concur::lab::Experiment;
using concur::lab::RunResult;

double expected_seconds(const Experiment& e, const concur::lab::Options& options) {
  return options.quick ? e.expected_seconds / 5 : e.expected_seconds;
}

std::string minutes(double seconds) {
  return seconds < 90 ? fmt::format("{:.0f} s", seconds) : fmt::format("{:.1f} min", seconds / 60);
}

RunResult run_one(const Experiment& e, const concur::lab::Options& options) {
  RunResult result;
  result.name = e.name;
  result.chapter = e.chapter;
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
  app.add_option("--json", json_path,
                 "also write every result as JSON to this file (report.json is always written "
                 "beside report.html)");

  auto* list = app.add_subcommand("list", "list the experiments");
  auto* run = app.add_subcommand("run", "run the named experiments");
  std::vector<std::string> names;
  run->add_option("names", names, "experiment names (see `list`)")->required();
  auto* all = app.add_subcommand("all", "run every experiment");
  auto* claims = app.add_subcommand("claims",
                                    "print the map of the tutorial's claims "
                                    "(docs/CLAIMS.md) to the experiments");
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
  if (claims->parsed()) {
    fmt::print("{}", concur::lab::kClaimsText);
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

  // The tutorial's order, not the command line's: the report tells the story chapter by chapter.
  std::stable_sort(chosen.begin(), chosen.end(), [](const Experiment* a, const Experiment* b) {
    return a->chapter < b->chapter;
  });

  const concur::lab::RunHeader header = concur::lab::make_header(argc, argv, options);
  fmt::print("concur-lab on: {}\ncores: {}\n", header.machine, header.cores);
  for (const std::string& p : header.pythons) fmt::print("python: {}\n", p);
  double total = 0;
  for (const Experiment* e : chosen) total += expected_seconds(*e, options);
  fmt::print("{} experiment{}, about {} in all; the report is rewritten after each one: {}/\n",
             chosen.size(), chosen.size() == 1 ? "" : "s", minutes(total), options.out_dir);
  std::fflush(stdout);
  std::vector<RunResult> results;
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const Experiment& e = *chosen[i];
    fmt::print("\n[{}/{}] {} (about {}) ...\n", i + 1, chosen.size(), e.name,
               minutes(expected_seconds(e, options)));
    std::fflush(stdout);
    concur::lab::progress::begin(e.name, expected_seconds(e, options));
    results.push_back(run_one(e, options));
    concur::lab::progress::end();
    concur::lab::print_report(results.back());
    concur::lab::write_outputs(results, header, options);
  }

  fmt::print("\n=== Summary ===\n");
  int failed = 0;
  for (const RunResult& r : results) {
    const std::string verdict =
        r.error.empty() ? concur::lab::to_string(*r.report.verdict()) : "FAILED";
    const std::string source = r.error.empty() && r.report.source()
                                   ? std::string("from ") + to_string(*r.report.source())
                                   : "";
    fmt::print("  {:<22} {:<13} {:<42} ({:.1f} s)\n", r.name, verdict, source, r.seconds);
    if (!r.error.empty()) ++failed;
  }
  fmt::print("report: {0}/report.html and {0}/report.json\n", options.out_dir);
  if (!json_path.empty()) {
    std::ofstream(json_path) << concur::lab::to_json(header, results).dump(2) << '\n';
    fmt::print("json: {}\n", json_path);
  }
  return failed == 0 ? 0 : 1;
}
