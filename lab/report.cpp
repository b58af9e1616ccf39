// The registry of experiments, and how a report is printed, saved as JSON and rendered as HTML.
#include "report.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>

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
  for (const Figure& f : r.report.figures())
    fmt::print("picture: {} ({})\n", f.file_name, f.caption);
  if (!r.error.empty()) {
    fmt::print("\nFAILED: {}\n", r.error);
  } else if (auto v = r.report.verdict()) {
    fmt::print("\nVerdict: {}. {}\n", to_string(*v), r.report.because());
  }
}

nlohmann::json to_json(const RunResult& r) {
  nlohmann::json j;
  j["name"] = r.name;
  j["claim"] = r.report.claim();
  j["quote"] = r.report.quote();
  j["seconds"] = r.seconds;
  if (!r.error.empty()) j["error"] = r.error;
  if (auto v = r.report.verdict()) {
    j["verdict"] = to_string(*v);
    j["because"] = r.report.because();
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

namespace {

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '&') {
      out += "&amp;";
    } else {
      out += c;
    }
  }
  return out;
}

const char* verdict_colour(const RunResult& r) {
  if (!r.error.empty()) return "#b00020";
  switch (r.report.verdict().value_or(Verdict::kInconclusive)) {
    case Verdict::kConfirmed:
      return "#2e7d32";
    case Verdict::kPartlyTrue:
      return "#ef6c00";
    case Verdict::kRefuted:
      return "#c62828";
    case Verdict::kInconclusive:
      return "#616161";
  }
  return "#616161";
}

}  // namespace

void write_outputs(const std::vector<RunResult>& results, const std::string& machine,
                   const Options& options) {
  namespace fs = std::filesystem;
  fs::create_directories(options.out_dir);
  std::string html = fmt::format(
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>concur-lab report</title>"
      "<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}}"
      "table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;"
      "text-align:left}}.verdict{{color:#fff;padding:2px 8px;border-radius:4px}}"
      "blockquote{{color:#555;border-left:3px solid #ccc;margin:0;padding-left:1em}}</style>"
      "</head><body><h1>concur-lab: the tutorial's claims, measured</h1><p>{}</p>"
      "<p>Run: {}{}</p>",
      html_escape(machine), options.quick ? "--quick (small workloads)" : "full workloads", "");
  html += "<h2>Summary</h2><table><tr><th>experiment</th><th>verdict</th></tr>";
  for (const RunResult& r : results) {
    html += fmt::format(
        "<tr><td><a href=\"#{0}\">{0}</a></td><td><span class=\"verdict\" "
        "style=\"background:{1}\">{2}</span></td></tr>",
        r.name, verdict_colour(r),
        r.error.empty() ? to_string(r.report.verdict().value_or(Verdict::kInconclusive))
                        : "failed");
  }
  html += "</table>";
  for (const RunResult& r : results) {
    html += fmt::format("<h2 id=\"{0}\">{0}</h2>", r.name);
    if (!r.report.claim().empty()) {
      html += fmt::format("<p><b>The tutorial says:</b> {}</p><blockquote>\"{}\"</blockquote>",
                          html_escape(r.report.claim()), html_escape(r.report.quote()));
    }
    for (const Table& t : r.report.tables()) {
      html += fmt::format("<p><b>{}</b></p><table><tr>", html_escape(t.title));
      for (const auto& h : t.header) html += "<th>" + html_escape(h) + "</th>";
      html += "</tr>";
      for (const auto& row : t.rows) {
        html += "<tr>";
        for (const auto& cell : row) html += "<td>" + html_escape(cell) + "</td>";
        html += "</tr>";
      }
      html += "</table>";
    }
    for (const Figure& f : r.report.figures()) {
      std::ofstream(fs::path(options.out_dir) / f.file_name) << f.svg;
      html += fmt::format("<figure>{}<figcaption>{}</figcaption></figure>", f.svg,
                          html_escape(f.caption));
    }
    for (const Attachment& a : r.report.attachments()) {
      std::ofstream(fs::path(options.out_dir) / a.file_name) << a.content;
      html += fmt::format("<p>File: <a href=\"{0}\">{0}</a> ({1})</p>", a.file_name,
                          html_escape(a.what));
    }
    for (const std::string& n : r.report.notes()) html += "<p><i>" + html_escape(n) + "</i></p>";
    if (!r.error.empty()) {
      html += fmt::format(
          "<p><span class=\"verdict\" style=\"background:#b00020\">failed</span> {}"
          "</p>",
          html_escape(r.error));
    } else if (auto v = r.report.verdict()) {
      html += fmt::format("<p><span class=\"verdict\" style=\"background:{}\">{}</span> {}</p>",
                          verdict_colour(r), to_string(*v), html_escape(r.report.because()));
    }
  }
  html += "</body></html>\n";
  std::ofstream(fs::path(options.out_dir) / "report.html") << html;
}

}  // namespace concur::lab
