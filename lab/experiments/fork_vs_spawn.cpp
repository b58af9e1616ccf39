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
// Verdict (fork_vs_spawn.hpp), on CPython's script when it ran (else concur-lab's own unguarded
// mode, and the verdict says so): the fork bomb is confirmed if the main body ran more than
// kBombRuns times, refuted otherwise; the text says whether the child re-ran the body and how it
// ended, from what it printed. The start-up times are shown, not judged.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <concur/multiprocessing/process.hpp>
#include <fstream>
#include <vector>

#include "fork_vs_spawn.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "stats.hpp"
#include "subprocess.hpp"
#include "svg.hpp"

namespace {

void start_and_exit() {}
CONCUR_REGISTER(start_and_exit);

}  // namespace

namespace concur::lab {
namespace fork_vs_spawn {

std::vector<Threshold> thresholds() {
  return {{"bomb_runs", kBombRuns,
           "the program and its child run the body twice; a third run is a grandchild: recursion"}};
}

Judgement judge(const Measurements& m) {
  std::string numbers =
      fmt::format("Without the guard, {}'s main body ran {} time{}",
                  m.from_cpython ? "CPython" : "concur", m.body_runs, m.body_runs == 1 ? "" : "s");
  if (m.body_runs > kBombRuns) {
    return {Verdict::kConfirmed,
            numbers + ": each child started another, the recursion of a fork bomb."};
  }
  numbers += m.body_runs == kBombRuns ? " (the program, and its child re-running the script)"
                                      : " (the child did not re-run it)";
  numbers += m.child_error.empty()
                 ? ", and no grandchild was started."
                 : fmt::format(", and the child stopped with: \"{}\"", m.child_error);
  return {Verdict::kRefuted, numbers +
                                 " No fork bomb; the guard is still needed for the child "
                                 "to do its work."};
}

}  // namespace fork_vs_spawn

namespace {

constexpr int kStarts = 20;
constexpr int kQuickStarts = 5;

namespace mp = concur::multiprocessing;
using Clock = std::chrono::steady_clock;

double median_start(mp::StartMethod method, int starts, Report& report) {
  std::vector<double> runs;
  for (int i = 0; i < starts; ++i) {
    const auto t0 = Clock::now();
    // Earlier experiments may leave threads in this process (a BLAS pool, say): the child here
    // runs nothing and takes no lock, so a fork beside them is safe.
    mp::Process p({.start_method = method, .allow_fork_with_threads = true}, start_and_exit);
    p.start();
    p.join();
    runs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    report.check(p.exitcode() == 0, std::string(mp::to_string(method)) + " child exited normally");
  }
  return support::median_of(runs);
}

// The first line of a child's complaint on stderr that names an error, or "".
std::string first_error_line(const std::string& err) {
  std::size_t at = 0;
  while (at < err.size()) {
    const std::size_t end = std::min(err.find('\n', at), err.size());
    const std::string line = err.substr(at, end - at);
    if (line.find("rror") != std::string::npos || line.find("main_guard") != std::string::npos) {
      return line.size() > 240 ? line.substr(0, 240) + "..." : line;
    }
    at = end + 1;
  }
  return "";
}

int count_lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "A spawned process (Windows' only start method) re-runs the whole script, so starting a "
      "process outside `if __name__ == '__main__':` starts one that starts "
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
                fmt::format("exit code {}",
                            demo.out.empty() ? "?" : demo.out.substr(0, demo.out.find('\n')))}}};
  fork_vs_spawn::Measurements m{false, concur_runs, first_error_line(demo.err)};

  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
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
    m = {true, py_runs, u.at("stderr_tail").get<std::string>()};
    guard.rows.push_back({who, std::to_string(py_runs), u.at("stderr_tail").get<std::string>()});
  }
  report.table(std::move(starts_table));
  report.table(std::move(guard));
  report.figure({"fork-vs-spawn.svg", "Median time to start a process and see it exit.",
                 svg::bars("Process start-up by method", "ms", bars)});
  report.note(fmt::format(
      "concur started a process in {} by fork, {} by spawn and {} by "
      "forkserver (medians of {}).",
      format_seconds(fork_s), format_seconds(spawn_s), format_seconds(server_s), starts));

  for (const Threshold& t : fork_vs_spawn::thresholds()) report.threshold(t);
  report.verdict(fork_vs_spawn::judge(m), m.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"fork-vs-spawn", "start-up cost of fork/spawn/forkserver, and the main guard", run,
     Chapter::kMainGuard, 20});

}  // namespace
}  // namespace concur::lab
