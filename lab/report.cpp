// The registry of experiments, and how a report is printed, saved as JSON and rendered as HTML.
#include "report.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "cores.hpp"
#include "machine.hpp"
#include "subprocess.hpp"

namespace concur::lab {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::kConfirmed:
      return "confirmed";
    case Verdict::kPartlyTrue:
      return "partly true";
    case Verdict::kRefuted:
      return "refuted";
    case Verdict::kInconclusive:
      return "inconclusive";
  }
  return "?";
}

const char* to_string(Source s) {
  switch (s) {
    case Source::kCPython:
      return "CPython";
    case Source::kConcurModel:
      return "concur's model (CPython not measured)";
    case Source::kNative:
      return "native";
  }
  return "?";
}

const char* to_string(Chapter c) {
  switch (c) {
    case Chapter::kKitchen:
      return "One kitchen, one knife: threads and CPU-bound work";
    case Chapter::kThreadsForIo:
      return "Threads for waiting: I/O releases the lock";
    case Chapter::kWhyTheLock:
      return "Why the lock exists: reference counts";
    case Chapter::kCpuBound:
      return "CPU-bound work: separate processes";
    case Chapter::kNativeKernels:
      return "The native-kernel loophole (NumPy)";
    case Chapter::kMainGuard:
      return "The main guard";
    case Chapter::kCoroutines:
      return "Coroutines: one thread, cooperative switches";
  }
  return "?";
}

void Report::threshold(const Threshold& t) {
  thresholds_.push_back(t);
}

void Report::verdict(Verdict v, std::string because, Source source) {
  verdict_ = v;
  because_ = std::move(because);
  source_ = source;
}

void Report::verdict(const Judgement& j, Source source) {
  verdict(j.verdict, j.because, source);
}

void Report::measured(const std::string& name, double value, const std::string& unit) {
  measured_[name] = {value, unit};
}

void Report::check(bool ok, const std::string& what) {
  if (!ok) throw CheckFailed("self-check failed: " + what);
}

namespace {

std::vector<Experiment>& registry() {
  static std::vector<Experiment> all;
  return all;
}

}  // namespace

bool register_experiment(Experiment e) {
  registry().push_back(std::move(e));
  return true;
}

const std::vector<Experiment>& experiments() {
  return registry();
}

std::optional<support::Python> cpython_for(const Options& options, Report& report) {
  support::Python python(options.python);
  if (python.unavailable()) {
    report.note("CPython skipped: " + *python.unavailable());
    return std::nullopt;
  }
  return python;
}

std::string format_seconds(double seconds) {
  if (std::isnan(seconds)) return "-";
  const double a = std::fabs(seconds);
  if (a >= 1) return fmt::format("{:.2f} s", seconds);
  if (a >= 1e-3) return fmt::format("{:.1f} ms", seconds * 1e3);
  if (a >= 1e-6) return fmt::format("{:.2f} us", seconds * 1e6);
  return fmt::format("{:.1f} ns", seconds * 1e9);
}

std::string format_ratio(double x) {
  if (std::isnan(x)) return "-";
  return x >= 10 ? fmt::format("{:.0f}x", x) : fmt::format("{:.2f}x", x);
}

// ---------------------------------------------------------------------------------------------

RunHeader make_header(int argc, char** argv, const Options& options) {
  RunHeader h;
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  h.date = date;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) h.command_line += ' ';
    h.command_line += argv[i];
  }
  h.commit = "unknown";
#ifdef CONCUR_SOURCE_DIR
  try {
    const auto git = support::run_command(
        {"git", "-C", CONCUR_SOURCE_DIR, "describe", "--always", "--dirty", "--abbrev=12"},
        std::chrono::seconds(20));
    if (!git.timed_out && git.exit_code == 0 && !git.out.empty()) {
      h.commit = git.out.substr(0, git.out.find('\n'));
    }
  } catch (const std::exception&) {
    // no git here: the commit stays unknown
  }
#endif
  h.machine = support::describe(support::machine_info());
  const support::CoreBudget cores = support::core_budget();
  h.cores = cores.explanation;  // "2 usable: 2 of 2 online cores in the affinity mask; ..."
  std::vector<std::string> pythons{options.python};
  pythons.insert(pythons.end(), options.more_pythons.begin(), options.more_pythons.end());
  for (const std::string& path : pythons) {
    support::Python python(path);
    h.pythons.push_back(python.unavailable()
                            ? fmt::format("{}: unusable ({})", path, *python.unavailable())
                            : fmt::format("CPython {} ({})", python.version(), path));
  }
  h.quick = options.quick;
  return h;
}

void print_report(const RunResult& r) {
  fmt::print("\n=== {} ===\n", r.name);
  if (!r.report.claim().empty()) {
    fmt::print("The tutorial says: {}\n  (\"{}\")\n", r.report.claim(), r.report.quote());
  }
  for (const Table& t : r.report.tables()) {
    fmt::print("\n{}\n", t.title);
    std::vector<std::size_t> widths(t.header.size(), 0);
    for (std::size_t c = 0; c < t.header.size(); ++c) widths[c] = t.header[c].size();
    for (const auto& row : t.rows) {
      for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c) {
        widths[c] = std::max(widths[c], row[c].size());
      }
    }
    auto print_row = [&](const std::vector<std::string>& row) {
      fmt::print(" ");
      for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c) {
        fmt::print(" {:<{}}", row[c], widths[c] + 1);
      }
      fmt::print("\n");
    };
    print_row(t.header);
    for (const auto& row : t.rows) print_row(row);
  }
  for (const std::string& n : r.report.notes()) fmt::print("note: {}\n", n);
  for (const Threshold& t : r.report.thresholds()) {
    fmt::print("threshold {} = {:g}: {}\n", t.name, t.value, t.reason);
  }
  for (const Figure& f : r.report.figures())
    fmt::print("picture: {} ({})\n", f.file_name, f.caption);
  if (!r.error.empty()) {
    fmt::print("\nFAILED: {}\n", r.error);
  } else if (auto v = r.report.verdict()) {
    fmt::print("\nVerdict: {} (from {}). {}\n", to_string(*v),
               r.report.source() ? to_string(*r.report.source()) : "source not stated",
               r.report.because());
  }
  std::fflush(stdout);
}

nlohmann::json to_json(const RunResult& r) {
  nlohmann::json j;
  j["name"] = r.name;
  j["claim"] = r.report.claim();
  j["quote"] = r.report.quote();
  j["seconds"] = r.seconds;
  j["chapter"] = static_cast<int>(r.chapter);
  j["chapter_title"] = to_string(r.chapter);
  if (!r.error.empty()) j["error"] = r.error;
  if (auto v = r.report.verdict()) {
    j["verdict"] = to_string(*v);
    j["because"] = r.report.because();
  }
  // A field, not only text: which runtime's figures the verdict came from.
  if (const auto& source = r.report.source()) {
    j["source"] = *source == Source::kCPython       ? "cpython"
                  : *source == Source::kConcurModel ? "concur-model"
                                                    : "native";
    j["source_text"] = to_string(*source);
  }
  for (const Threshold& t : r.report.thresholds()) {
    j["thresholds"].push_back({{"name", t.name}, {"value", t.value}, {"reason", t.reason}});
  }
  for (const auto& [name, value] : r.report.figures_measured()) {
    j["measured"][name] = {{"value", value.first}, {"unit", value.second}};
  }
  for (const Table& t : r.report.tables()) {
    j["tables"].push_back({{"title", t.title}, {"header", t.header}, {"rows", t.rows}});
  }
  for (const Figure& f : r.report.figures()) {
    j["figures"].push_back({{"file", f.file_name}, {"caption", f.caption}});
  }
  for (const Attachment& a : r.report.attachments()) {
    j["files"].push_back({{"file", a.file_name}, {"what", a.what}});
  }
  j["notes"] = r.report.notes();
  return j;
}

nlohmann::json to_json(const RunHeader& h, const std::vector<RunResult>& results) {
  nlohmann::json j;
  j["date"] = h.date;
  j["commit"] = h.commit;
  j["command_line"] = h.command_line;
  j["machine"] = h.machine;
  j["cores"] = h.cores;
  j["pythons"] = h.pythons;
  j["quick"] = h.quick;
  j["experiments"] = nlohmann::json::array();
  for (const RunResult& r : results) j["experiments"].push_back(to_json(r));
  return j;
}

}  // namespace concur::lab
