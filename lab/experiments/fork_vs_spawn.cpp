// fork-vs-spawn: how the start methods differ, and what the main guard is for.
//
// Claim (in our words): on Linux fork() copies the process safely; on Windows a new process
// re-runs the whole script, so a Process.start() outside `if __name__ == '__main__':` starts
// another process that starts another, a fork bomb that freezes the machine.
//
// Workload: (1) the time to start a process that does nothing and see it exit, median of
// kStarts (kQuickStarts with --quick), for fork, spawn and forkserver, in concur and in CPython;
// (2) a program that starts a spawn child without the guard: concur-lab itself, run in a mode
// that skips main_guard(), and a CPython script without the `if __name__` check; how many times
// did the program's main body run, and how did the child end?
//
// Verdict: the re-run is real in both (the body runs in the child). The fork bomb is confirmed
// if the body ran more than kBombRuns times in either, refuted when both stopped at the child
// (as concur's guard check and CPython's "bootstrapping phase" check do).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <concur/multiprocessing/process.hpp>
#include <fstream>
#include <vector>

#include "lab.hpp"
#include "stats.hpp"
#include "subprocess.hpp"
#include "svg.hpp"

namespace {

void start_and_exit() {}
CONCUR_REGISTER(start_and_exit);

}  // namespace

namespace concur::lab {
namespace {

constexpr int kStarts = 20;
constexpr int kQuickStarts = 5;
constexpr int kBombRuns = 2;

namespace mp = concur::multiprocessing;
using Clock = std::chrono::steady_clock;

double median_start(mp::StartMethod method, int starts, Report& report) {
  std::vector<double> runs;
  for (int i = 0; i < starts; ++i) {
    const auto t0 = Clock::now();
    mp::Process p({.start_method = method}, start_and_exit);
    p.start();
    p.join();
    runs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    report.check(p.exitcode() == 0, std::string(mp::to_string(method)) + " child exited normally");
  }
  return support::median_of(runs);
}

int count_lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

void run(const Options& options, Report& report) {
  report.claim(
      "On Linux fork() copies the process safely. On Windows a new process re-runs the whole "
      "script, so starting a process outside `if __name__ == '__main__':` starts one that starts "
      "another, a fork bomb that freezes the machine.",
      "creating a \"Fork Bomb\" that instantly paralyzes your PC");
  const int starts = options.quick ? kQuickStarts : kStarts;
  Table starts_table{
      fmt::format("Starting a process that does nothing, to its exit (median of {})", starts),
      {"who", "fork", "spawn", "forkserver"},
      {}};
  const double fork_s = median_start(mp::StartMethod::fork, starts, report);
  const double spawn_s = median_start(mp::StartMethod::spawn, starts, report);
  const double server_s = median_start(mp::StartMethod::forkserver, starts, report);
  starts_table.rows.push_back(
      {"concur", format_seconds(fork_s), format_seconds(spawn_s), format_seconds(server_s)});
  report.measured("concur_fork_s", fork_s, "s");
  report.measured("concur_spawn_s", spawn_s, "s");
  report.measured("concur_forkserver_s", server_s, "s");
  std::vector<svg::Bar> bars{{"concur fork", fork_s * 1e3, 0},
                             {"concur spawn", spawn_s * 1e3, 1},
                             {"concur forkserver", server_s * 1e3, 2}};

  // The guard: concur-lab without it.
  const std::string marks = fmt::format("/tmp/concur-lab-unguarded-{}", getpid());
  std::remove(marks.c_str());
  const auto demo =
      support::run_command({self_path(), kUnguardedDemo, marks}, std::chrono::seconds(60));
  const int concur_runs = count_lines(marks);
  std::remove(marks.c_str());
  report.check(!demo.timed_out, "the unguarded demo finished by itself");
  Table guard{"A program that starts a spawn child with no main guard",
              {"who", "times the main body ran", "how the child ended"},
              {{"concur", std::to_string(concur_runs),
                fmt::format("exit code {}: stopped at its own start(), told to add main_guard()",
                            demo.out.empty() ? "?" : demo.out.substr(0, demo.out.find('\n')))}}};
  int max_runs = concur_runs;

  if (auto python = cpython_for(options, report)) {
    const auto j = python->run_json("fork_vs_spawn.py", {"--starts", std::to_string(starts)},
                                    std::chrono::seconds(600));
    const auto& s = j.at("seconds");
    const std::string who = "CPython " + j.at("version").get<std::string>();
    starts_table.rows.push_back({who, format_seconds(s.at("fork").get<double>()),
                                 format_seconds(s.at("spawn").get<double>()),
                                 format_seconds(s.at("forkserver").get<double>())});
    bars.push_back({"CPython fork", s.at("fork").get<double>() * 1e3, 3});
    bars.push_back({"CPython spawn", s.at("spawn").get<double>() * 1e3, 4});
    bars.push_back({"CPython forkserver", s.at("forkserver").get<double>() * 1e3, 5});
    const auto& u = j.at("unguarded");
    const int py_runs = u.at("script_runs").get<int>();
    max_runs = std::max(max_runs, py_runs);
    guard.rows.push_back({who, std::to_string(py_runs), u.at("stderr_tail").get<std::string>()});
  }
  report.table(std::move(starts_table));
  report.table(std::move(guard));
  report.figure({"fork-vs-spawn.svg", "Median time to start a process and see it exit.",
                 svg::bars("Process start-up by method", "ms", bars)});

  const std::string numbers = fmt::format(
      "Without the guard, the main body ran {} time{} in the worst case (the program and its "
      "child): the child does re-run the script, but it stopped at its own attempt to start a "
      "process instead of starting another. Starting a process took {} by fork, {} by spawn and "
      "{} by forkserver here.",
      max_runs, max_runs == 1 ? "" : "s", format_seconds(fork_s), format_seconds(spawn_s),
      format_seconds(server_s));
  if (max_runs > kBombRuns) {
    report.verdict(Verdict::kConfirmed, numbers + " The recursion went on: a fork bomb.");
  } else {
    report.verdict(Verdict::kRefuted,
                   numbers +
                       " No fork bomb: CPython refuses to start a process while the child "
                       "is still importing its script (and concur while main_guard() has "
                       "not run); the guard is still needed, or the child errors out.");
  }
}

const bool registered = register_experiment(
    {"fork-vs-spawn", "start-up cost of fork/spawn/forkserver, and the main guard", run});

}  // namespace
}  // namespace concur::lab
