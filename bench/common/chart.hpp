// bench/common/chart.hpp: a line chart of how a cost grows with load, as standalone SVG text, for
// the load-curve benchmarks (issue 22) to write into docs/.
//
// One series per implementation (concur and its peers) on the same axes; each point is marked and
// carries a <title> with its exact value, so a browser shows it on hover. Either axis may be
// logarithmic (loads that grow by powers of ten). A point whose y is NaN is skipped and breaks
// the line (a load a peer could not run). No dependency beyond the standard library, so any bench
// program can draw its own chart.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace concur::bench {

struct ChartAxis {
  std::string label;  // "tasks queued at once", with the unit: "server CPU per request (µs)"
  bool log = false;   // logarithmic (every value must then be > 0; others are skipped)
};

struct ChartSeries {
  std::string name;                               // "concur", "oneTBB task_group"
  std::vector<std::pair<double, double>> points;  // (x, y), in the order to join them
  bool dashed = false;                            // e.g. a floor or an oversubscribed stretch
};

struct LineChart {
  std::string title;
  ChartAxis x;
  ChartAxis y;
  std::vector<ChartSeries> series;
  std::string caption;  // one line under the chart: the machine, the date, what was held fixed
};

// The chart as an SVG document.
std::string render_svg(const LineChart& chart);

// Writes render_svg(chart) to `path`; throws std::runtime_error naming the path if it cannot.
void write_svg(const LineChart& chart, const std::string& path);

}  // namespace concur::bench
