// subinterpreters: can one Python process compute on several cores?
//
// Claim (in our words): standard Python code cannot keep several cores busy: it runs on one.
//
// Workload (lab/python/subinterpreters.py): CPython's counting loop split into N shares (N = the
// control's thread count), run one after another in one subinterpreter, then one share in each of
// N subinterpreters with their own GIL (PEP 684) on N threads at once; for comparison, the same
// shares one after another in the main interpreter and on N of its threads (one shared GIL).
// Repeated and interleaved inside the script. It runs on every CPython 3.12+ given (--python, more
// than once) and, when none is, on those pyenv keeps in ~/.pyenv/versions (said in a note).
//
// Verdict (subinterpreters.hpp): on the newest CPython measured; inconclusive, saying what is
// needed, when no CPython 3.12+ is found.
#include "subinterpreters.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <tuple>

#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace subinterpreters {

std::vector<Threshold> thresholds() {
  return {{"no_faster", kNoFaster,
           "up to this median speed-up the subinterpreters gained nothing: a busy VM's noise"},
          {"clear_gain", kClearGain,
           "beyond this they computed in parallel: half a second core's worth, plus noise"}};
}

Judgement judge(const Measurements& m) {
  if (m.who.empty()) {
    return {Verdict::kInconclusive, "no CPython with per-interpreter GILs was found: " + m.missing};
  }
  if (!m.control.parallel_possible()) return inconclusive_without_parallelism(m.control);
  const std::string text = fmt::format(
      "In {}, {} subinterpreters on {} threads ran the loop {} as fast as one doing every share "
      "(medians: {} vs {}), while {}.",
      m.who, m.threads, m.threads, format_ratio(m.speedup()), m.serial_s.describe_seconds(),
      m.subinterpreters_s.describe_seconds(), m.control.describe());
  if (m.speedup() <= kNoFaster) {
    return {Verdict::kConfirmed, text + " One process still computed on one core at a time."};
  }
  if (m.speedup() <= kClearGain) {
    return {Verdict::kPartlyTrue, text + " Some gain, well short of one core per interpreter."};
  }
  return {Verdict::kRefuted,
          text +
              " One Python process computed on several cores: one kitchen per interpreter, "
              "in one house."};
}

}  // namespace subinterpreters

namespace {

// "3.13.0" -> (3, 13, 0), for comparing versions.
std::tuple<int, int, int> version_key(const std::string& v) {
  int a = 0, b = 0, c = 0;
  std::sscanf(v.c_str(), "%d.%d.%d", &a, &b, &c);
  return {a, b, c};
}

bool has_own_gils(const std::string& version) {
  return version_key(version) >= std::make_tuple(3, 12, 0);
}

struct Candidate {
  std::string path;
  bool from_pyenv = false;
};

// The --python interpreters, then (only if none of those is 3.12+) pyenv's 3.12 and later.
std::vector<Candidate> candidates(const Options& options, Report& report) {
  std::vector<Candidate> out{{options.python, false}};
  for (const std::string& p : options.more_pythons) out.push_back({p, false});
  bool any_new = false;
  for (const Candidate& c : out) {
    const support::Python py(c.path);
    if (!py.unavailable() && has_own_gils(py.version())) any_new = true;
  }
  if (any_new) return out;
  const char* home = std::getenv("HOME");
  const std::filesystem::path versions =
      std::filesystem::path(home ? home : "/") / ".pyenv/versions";
  std::error_code ec;
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(versions, ec)) {
    const std::string name = e.path().filename().string();
    if (has_own_gils(name) && std::filesystem::exists(e.path() / "bin/python3")) {
      found.push_back((e.path() / "bin/python3").string());
    }
  }
  std::sort(found.begin(), found.end());
  for (const std::string& p : found) out.push_back({p, true});
  if (!found.empty()) {
    report.note(fmt::format(
        "No CPython 3.12+ was given with --python, so the lab looked in {} and used what pyenv "
        "keeps there.",
        versions.string()));
  }
  return out;
}

Sample sample_of(const nlohmann::json& values) {
  Sample s;
  for (const auto& v : values) s.values.push_back(v.get<double>());
  return s;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "Standard Python code cannot keep several cores busy: a Python program computes on one "
      "core at a time.",
      "Standard Python scripts physically cannot");
  for (const Threshold& t : subinterpreters::thresholds()) report.threshold(t);
  const ParallelControl& control = parallel_control(options);
  report_control(report, control);
  const int reps = repetitions(options);
  const double seconds = options.quick ? 0.1 : 0.4;

  subinterpreters::Measurements subject;
  subject.control = control;
  subject.threads = control.threads;
  subject.missing =
      "a CPython 3.12 or later (PEP 684: one GIL per interpreter); give one with --python, "
      "e.g. --python ~/.pyenv/versions/3.13.0/bin/python3";
  Table table{fmt::format("The same loop in {} shares: one after another vs one per thread "
                          "(medians of {} interleaved runs)",
                          control.threads, reps),
              {"CPython", "GIL", "shares in one subinterpreter", "one per subinterpreter",
               "speed-up", "main interpreter, shared GIL: speed-up"},
              {}};
  std::vector<svg::Bar> bars{{"no-lock control (C++)", control.speedup(), 0}};
  std::tuple<int, int, int> newest{0, 0, 0};
  for (const Candidate& c : candidates(options, report)) {
    const support::Python py(c.path);
    if (py.unavailable()) {
      report.note(c.path + " was skipped: " + *py.unavailable());
      continue;
    }
    progress::phase("CPython " + py.version() + " (" + c.path + ")");
    const auto j = py.run_json("subinterpreters.py",
                               {"--seconds", fmt::format("{}", seconds), "--threads",
                                std::to_string(control.threads), "--repeat", std::to_string(reps)},
                               std::chrono::seconds(300));
    if (j.contains("skip")) {
      table.rows.push_back(
          {py.version(), "-", "-", "-", "skipped", j.at("skip").get<std::string>()});
      continue;
    }
    const Sample serial = sample_of(j.at("serial_s"));
    const Sample parallel = sample_of(j.at("subinterpreters_s"));
    const Sample main_serial = sample_of(j.at("main_serial_s"));
    const Sample shared = sample_of(j.at("shared_gil_threads_s"));
    const double speedup = serial.median() / parallel.median();
    const double shared_speedup = main_serial.median() / shared.median();
    table.rows.push_back({py.version() + (c.from_pyenv ? " (pyenv)" : ""),
                          j.at("gil").get<std::string>(), serial.describe_seconds(),
                          parallel.describe_seconds(), format_ratio(speedup),
                          format_ratio(shared_speedup)});
    bars.push_back({"CPython " + py.version() + ", subinterpreters", speedup, 1});
    bars.push_back({"CPython " + py.version() + ", threads, one GIL", shared_speedup, 2});
    report.measured("cpython_" + py.version() + "_subinterpreter_speedup", speedup, "x");
    if (version_key(py.version()) > newest) {
      newest = version_key(py.version());
      subject.who = "CPython " + py.version() + " (" + j.at("gil").get<std::string>() + " GIL)";
      subject.serial_s = serial;
      subject.subinterpreters_s = parallel;
    }
  }
  report.table(std::move(table));
  report.figure({"subinterpreters.svg",
                 fmt::format("Speed-up of {} shares run at once over one after another (higher "
                             "is better; the control shows what this run allows).",
                             control.threads),
                 svg::bars("One Python process, several interpreters", "x", bars)});
  report.verdict(subinterpreters::judge(subject), Source::kCPython);
}

const bool registered = register_experiment(
    {"subinterpreters", "CPU-bound loop in N subinterpreters with their own GIL (3.12+)", run,
     Chapter::kKitchen, 20});

}  // namespace
}  // namespace concur::lab
