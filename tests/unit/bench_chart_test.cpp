// Unit tests of bench/common/chart.hpp: the SVG line charts the load-curve benchmarks write.
#include "common/chart.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using concur::bench::ChartSeries;
using concur::bench::LineChart;
using concur::bench::render_svg;
using concur::bench::write_svg;

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The (x, y) pixel pairs of every <circle> mark, in document order.
std::vector<std::pair<double, double>> marks(const std::string& svg) {
  std::vector<std::pair<double, double>> out;
  std::regex circle(R"re(<circle cx="([0-9.]+)" cy="([0-9.]+)")re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator();
       ++it)
    out.emplace_back(std::stod((*it)[1]), std::stod((*it)[2]));
  return out;
}

LineChart two_series() {
  LineChart chart;
  chart.title = "throughput";
  chart.x = {"tasks queued", true};
  chart.y = {"tasks/s", true};
  chart.series = {ChartSeries{"concur", {{1e3, 1e6}, {1e4, 2e6}, {1e5, 4e6}}, false},
                  ChartSeries{"oneTBB", {{1e3, 5e5}, {1e4, 1e6}, {1e5, 1e6}}, true}};
  return chart;
}

TEST(BenchChart, EverySeriesIsALineWithAMarkedPointPerValueAndALegendEntry) {
  std::string svg = render_svg(two_series());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 2);
  EXPECT_EQ(count(svg, "<circle"), 6);
  EXPECT_EQ(count(svg, "stroke-dasharray"), 2);  // the dashed series' line and its legend entry
  EXPECT_NE(svg.find(">concur</text>"), std::string::npos);
  EXPECT_NE(svg.find(">oneTBB</text>"), std::string::npos);
  EXPECT_NE(svg.find("<title>concur: 2e+06 at 10000</title>"), std::string::npos);
  EXPECT_NE(svg.find("(log scale)"), std::string::npos);
}

TEST(BenchChart, ALogAxisSpacesPowersOfTenEvenlyAndHigherValuesAreHigherUp) {
  auto m = marks(render_svg(two_series()));
  ASSERT_EQ(m.size(), 6u);
  // concur's x: 1e3, 1e4, 1e5 evenly spaced, left to right.
  EXPECT_LT(m[0].first, m[1].first);
  EXPECT_NEAR(m[1].first - m[0].first, m[2].first - m[1].first, 0.2);
  // y: 1e6 -> 2e6 -> 4e6 is two equal steps up on a log axis (SVG y grows downwards).
  EXPECT_GT(m[0].second, m[1].second);
  EXPECT_NEAR(m[0].second - m[1].second, m[1].second - m[2].second, 0.2);
  // The same value is at the same height in both series (oneTBB's 1e6 at 1e4, concur's at 1e3).
  EXPECT_NEAR(m[0].second, m[4].second, 0.01);
}

TEST(BenchChart, ALinearYAxisStartsAtZeroSoHeightsCompareAsRatios) {
  LineChart chart;
  chart.x = {"workers", false};
  chart.y = {"speed-up", false};
  chart.series = {ChartSeries{"concur", {{1, 1}, {2, 2}}, false}};
  auto m = marks(render_svg(chart));
  ASSERT_EQ(m.size(), 2u);
  std::regex zero_tick(R"re(<text x="[0-9.]+" y="([0-9.]+)" text-anchor="end">0</text>)re");
  std::smatch zero;
  std::string svg = render_svg(chart);
  ASSERT_TRUE(std::regex_search(svg, zero, zero_tick));
  double zero_y = std::stod(zero[1]) - 4;  // the label sits 4 px below its grid line
  EXPECT_NEAR(zero_y - m[1].second, 2 * (zero_y - m[0].second), 0.3);
}

TEST(BenchChart, AMissingValueBreaksTheLineAndIsNotMarked) {
  LineChart chart;
  chart.x = {"connections", true};
  chart.y = {"us", false};
  chart.series = {ChartSeries{
      "uvloop", {{100, 10}, {1000, 12}, {10000, NAN}, {50000, 15}, {100000, 16}}, false}};
  std::string svg = render_svg(chart);
  EXPECT_EQ(count(svg, "<circle"), 4);
  EXPECT_EQ(count(svg, "<polyline"), 2);  // 100-1000, then 50000-100000
}

TEST(BenchChart, TextIsEscaped) {
  LineChart chart = two_series();
  chart.title = "a <b> & \"c\"";
  chart.series[0].name = "x<y";
  std::string svg = render_svg(chart);
  EXPECT_NE(svg.find("a &lt;b&gt; &amp; &quot;c&quot;"), std::string::npos);
  EXPECT_NE(svg.find("x&lt;y"), std::string::npos);
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
}

TEST(BenchChart, WriteSvgWritesTheFileAndNamesAPathItCannotWrite) {
  auto path = std::filesystem::temp_directory_path() /
              ("concur-chart-" + std::to_string(::getpid()) + ".svg");
  write_svg(two_series(), path.string());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), render_svg(two_series()));
  std::filesystem::remove(path);
  try {
    write_svg(two_series(), "/nonexistent-dir/chart.svg");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/chart.svg"), std::string::npos);
  }
}

}  // namespace
