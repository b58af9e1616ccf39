// The report as a page (report.html) and as data (report.json), rewritten after every experiment.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "report.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace {

// Text for the page, escaped as the pictures' text is.
std::string html_escape(const std::string& text) {
  return svg::escape(text);
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

std::string verdict_text(const RunResult& r) {
  if (!r.error.empty()) return "failed";
  return to_string(r.report.verdict().value_or(Verdict::kInconclusive));
}

std::string source_text(const RunResult& r) {
  if (!r.error.empty() || !r.report.source()) return "";
  return fmt::format("from {}", to_string(*r.report.source()));
}

constexpr const char* kStyle =
    "body{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;color:#222;"
    "line-height:1.45;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0;font-size:.92em}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
    ".verdict{color:#fff;padding:2px 10px;border-radius:4px;font-weight:bold}"
    ".source{color:#555;margin-left:.6em;font-style:italic}"
    ".card{border:1px solid #ccc;border-radius:8px;padding:1em 1.4em;margin:1.4em 0;"
    "box-shadow:0 1px 3px rgba(0,0,0,.08)}"
    ".card h3{margin-top:0}.chart{overflow-x:auto}.chart svg{max-width:100%;height:auto}"
    "blockquote{color:#555;border-left:3px solid #ccc;margin:.4em 0;padding-left:1em}"
    ".because{background:#f7f7f7;padding:.6em 1em;border-radius:6px}"
    "details{margin:.5em 0}summary{cursor:pointer;color:#333}"
    ".header td:first-child{font-weight:bold;white-space:nowrap}";

std::string table_html(const Table& t) {
  std::string html = fmt::format("<p><b>{}</b></p><table><tr>", html_escape(t.title));
  for (const auto& h : t.header) html += "<th>" + html_escape(h) + "</th>";
  html += "</tr>";
  for (const auto& row : t.rows) {
    html += "<tr>";
    for (const auto& cell : row) html += "<td>" + html_escape(cell) + "</td>";
    html += "</tr>";
  }
  return html + "</table>";
}

// One claim, one card: claim, verdict and its source, the chart(s), the explanation, the figures,
// the thresholds with their reasons, notes and files.
std::string card_html(const RunResult& r, const Options& options) {
  namespace fs = std::filesystem;
  std::string html = fmt::format("<section class=\"card\" id=\"{0}\"><h3>{0}</h3>", r.name);
  if (!r.report.claim().empty()) {
    html += fmt::format("<p><b>The claim:</b> {}</p><blockquote>\"{}\"</blockquote>",
                        html_escape(r.report.claim()), html_escape(r.report.quote()));
  }
  html += fmt::format(
      "<p><span class=\"verdict\" style=\"background:{}\">{}</span><span class=\"source\">{}"
      "</span> <small>({:.1f} s)</small></p>",
      verdict_colour(r), verdict_text(r), html_escape(source_text(r)), r.seconds);
  for (const Figure& f : r.report.figures()) {
    std::ofstream(fs::path(options.out_dir) / f.file_name) << f.svg;
    html += fmt::format("<figure class=\"chart\">{}<figcaption>{}</figcaption></figure>", f.svg,
                        html_escape(f.caption));
  }
  if (!r.error.empty()) {
    html += "<p class=\"because\"><b>Failed:</b> " + html_escape(r.error) + "</p>";
  } else if (r.report.verdict()) {
    html += "<p class=\"because\">" + html_escape(r.report.because()) + "</p>";
  }
  for (const std::string& n : r.report.notes()) html += "<p><i>" + html_escape(n) + "</i></p>";
  if (!r.report.tables().empty()) {
    html += "<details open><summary>The figures</summary>";
    for (const Table& t : r.report.tables()) html += table_html(t);
    html += "</details>";
  }
  if (!r.report.thresholds().empty()) {
    Table t{"Thresholds the verdict was judged against", {"name", "value", "why this number"}, {}};
    for (const Threshold& th : r.report.thresholds()) {
      t.rows.push_back({th.name, fmt::format("{:g}", th.value), th.reason});
    }
    html += "<details><summary>Thresholds</summary>" + table_html(t) + "</details>";
  }
  for (const Attachment& a : r.report.attachments()) {
    std::ofstream(fs::path(options.out_dir) / a.file_name) << a.content;
    html +=
        fmt::format("<p>File: <a href=\"{0}\">{0}</a> ({1})</p>", a.file_name, html_escape(a.what));
  }
  return html + "</section>";
}

std::string header_html(const RunHeader& h, std::size_t done) {
  std::string pythons;
  for (const std::string& p : h.pythons)
    pythons += (pythons.empty() ? "" : "<br>") + html_escape(p);
  return fmt::format(
      "<h1>concur-lab: the tutorial's claims, measured</h1>"
      "<table class=\"header\">"
      "<tr><td>date</td><td>{}</td></tr><tr><td>commit</td><td>{}</td></tr>"
      "<tr><td>command</td><td><code>{}</code></td></tr><tr><td>machine</td><td>{}</td></tr>"
      "<tr><td>cores</td><td>{}</td></tr><tr><td>CPython</td><td>{}</td></tr>"
      "<tr><td>workloads</td><td>{}</td></tr><tr><td>experiments done</td><td>{}</td></tr>"
      "</table>",
      html_escape(h.date), html_escape(h.commit), html_escape(h.command_line),
      html_escape(h.machine), html_escape(h.cores), pythons,
      h.quick ? "--quick (small: verdicts that need the full size say inconclusive)" : "full",
      done);
}

}  // namespace

void write_outputs(const std::vector<RunResult>& results, const RunHeader& header,
                   const Options& options) {
  namespace fs = std::filesystem;
  fs::create_directories(options.out_dir);
  std::string html = fmt::format(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>concur-lab report</title><style>{}</style></head><body>",
      kStyle);
  html += header_html(header, results.size());
  html += "<h2>Summary</h2><table><tr><th>experiment</th><th>verdict</th><th>from</th></tr>";
  for (const RunResult& r : results) {
    html += fmt::format(
        "<tr><td><a href=\"#{0}\">{0}</a></td><td><span class=\"verdict\" "
        "style=\"background:{1}\">{2}</span></td><td>{3}</td></tr>",
        r.name, verdict_colour(r), verdict_text(r),
        r.report.source() ? to_string(*r.report.source()) : "");
  }
  html += "</table>";
  // The caller runs experiments chapter by chapter; a heading whenever the chapter changes.
  std::optional<Chapter> chapter;
  for (const RunResult& r : results) {
    if (chapter != r.chapter) {
      chapter = r.chapter;
      html += fmt::format("<h2>{}. {}</h2>", static_cast<int>(r.chapter),
                          html_escape(to_string(r.chapter)));
    }
    html += card_html(r, options);
  }
  html += "</body></html>\n";
  // Written beside, then renamed: a reader (or a crash) never sees half a file.
  const fs::path out(options.out_dir);
  std::ofstream(out / "report.html.tmp") << html;
  fs::rename(out / "report.html.tmp", out / "report.html");
  std::ofstream(out / "report.json.tmp") << to_json(header, results).dump(2) << '\n';
  fs::rename(out / "report.json.tmp", out / "report.json");
}

}  // namespace concur::lab
