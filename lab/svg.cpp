#include "svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace concur::lab::svg {
namespace {

constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                    "#b07aa1", "#76b7b2", "#edc948", "#9c755f"};

const char* colour(int kind) {
  return kPalette[static_cast<unsigned>(kind) % (sizeof kPalette / sizeof kPalette[0])];
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A "nice" step (1, 2 or 5 times a power of ten) that cuts [0, span] into about `parts` ticks.
double tick_step(double span, int parts) {
  const double raw = span / parts;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * power) return m * power;
  }
  return 10 * power;
}

std::string format_tick(double seconds, double step) {
  if (step >= 1) return fmt::format("{:g} s", seconds);
  if (step >= 1e-3) return fmt::format("{:g} ms", seconds * 1e3);
  return fmt::format("{:g} us", seconds * 1e6);
}

}  // namespace

std::string timeline(const std::string& title, const std::vector<Lane>& lanes,
                     const std::vector<LegendEntry>& legend) {
  constexpr int kLabelWidth = 150;
  constexpr int kPlotWidth = 700;
  constexpr int kLaneHeight = 22;
  constexpr int kTop = 40;
  double t_max = 0;
  for (const Lane& lane : lanes) {
    for (const Span& s : lane.spans) t_max = std::max(t_max, s.end);
  }
  if (t_max <= 0) t_max = 1;
  const int height = kTop + static_cast<int>(lanes.size()) * kLaneHeight + 60;
  const int width = kLabelWidth + kPlotWidth + 50;
  auto x_of = [&](double t) { return kLabelWidth + t / t_max * kPlotWidth; };

  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
      width, height, escape(title));
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    const int y = kTop + static_cast<int>(i) * kLaneHeight;
    out += fmt::format("<text x=\"10\" y=\"{}\">{}</text>\n", y + 15, escape(lanes[i].label));
    out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f4f4f4\"/>\n",
                       kLabelWidth, y + 2, kPlotWidth, kLaneHeight - 4);
    for (const Span& s : lanes[i].spans) {
      const double x0 = x_of(s.start);
      const double w = std::max(0.5, x_of(s.end) - x0);
      out += fmt::format(
          "<rect x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\" fill=\"{}\" "
          "stroke=\"#fff\" stroke-width=\"0.5\"/>\n",
          x0, y + 3, w, kLaneHeight - 6, colour(s.kind));
    }
  }
  const int axis_y = kTop + static_cast<int>(lanes.size()) * kLaneHeight + 4;
  const double step = tick_step(t_max, 8);
  for (double t = 0; t <= t_max * 1.0001; t += step) {
    const double x = x_of(t);
    out += fmt::format(
        "<line x1=\"{0:.2f}\" y1=\"{1}\" x2=\"{0:.2f}\" y2=\"{2}\" stroke=\"#888\"/>"
        "<text x=\"{0:.2f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        x, axis_y, axis_y + 5, axis_y + 18, format_tick(t, step));
  }
  int legend_x = kLabelWidth;
  for (const LegendEntry& e : legend) {
    out += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>"
        "<text x=\"{}\" y=\"{}\">{}</text>\n",
        legend_x, axis_y + 28, colour(e.kind), legend_x + 16, axis_y + 38, escape(e.label));
    legend_x += 30 + static_cast<int>(e.label.size()) * 7;
  }
  out += "</svg>\n";
  return out;
}

std::string bars(const std::string& title, const std::string& unit, const std::vector<Bar>& bars) {
  constexpr int kLabelWidth = 260;
  constexpr int kPlotWidth = 480;
  constexpr int kBarHeight = 24;
  constexpr int kTop = 36;
  double v_max = 0;
  for (const Bar& b : bars) v_max = std::max(v_max, b.value);
  if (v_max <= 0) v_max = 1;
  const int height = kTop + static_cast<int>(bars.size()) * kBarHeight + 20;
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
      kLabelWidth + kPlotWidth + 120, height, escape(title));
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const int y = kTop + static_cast<int>(i) * kBarHeight;
    const double w = bars[i].value / v_max * kPlotWidth;
    out += fmt::format(
        "<text x=\"10\" y=\"{}\">{}</text>"
        "<rect x=\"{}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\" fill=\"{}\"/>"
        "<text x=\"{:.2f}\" y=\"{}\">{:.3g} {}</text>\n",
        y + 16, escape(bars[i].label), kLabelWidth, y + 3, std::max(0.5, w), kBarHeight - 6,
        colour(bars[i].kind), kLabelWidth + w + 6, y + 16, bars[i].value, escape(unit));
  }
  out += "</svg>\n";
  return out;
}

}  // namespace concur::lab::svg
