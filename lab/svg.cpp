#include "svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "markup.hpp"

namespace concur::lab::svg {
namespace {

constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                    "#b07aa1", "#76b7b2", "#edc948", "#9c755f"};

const char* colour(int kind) {
  return kPalette[static_cast<unsigned>(kind) % (sizeof kPalette / sizeof kPalette[0])];
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

// A value for people: 386,412 rather than 3.86e+05; three significant digits below 1,000.
std::string format_value(double v) {
  if (!(std::fabs(v) >= 1000)) return fmt::format("{:.3g}", v);
  std::string digits = fmt::format("{:.0f}", std::fabs(v));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

}  // namespace

std::string escape(const std::string& text) {
  return support::escape_markup(text);
}

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
  const double step = tick_step(t_max, 8);

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
          "stroke=\"#fff\" stroke-width=\"0.5\"><title>{}: {} to {}</title></rect>\n",
          x0, y + 3, w, kLaneHeight - 6, colour(s.kind), escape(lanes[i].label),
          format_tick(s.start, step), format_tick(s.end, step));
    }
  }
  const int axis_y = kTop + static_cast<int>(lanes.size()) * kLaneHeight + 4;
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

std::string bars(const std::string& title, const std::string& unit, const std::vector<Bar>& bars,
                 double reference, const std::string& reference_label) {
  constexpr int kLabelWidth = 260;
  constexpr int kPlotWidth = 480;
  constexpr int kBarHeight = 24;
  constexpr int kTop = 48;  // room for the reference line's label under the title
  double v_max = 0;
  double v_min = INFINITY;
  for (const Bar& b : bars) {
    v_max = std::max(v_max, b.value);
    if (b.value > 0) v_min = std::min(v_min, b.value);
  }
  if (!std::isnan(reference) && reference > 0) {
    v_max = std::max(v_max, reference);
    v_min = std::min(v_min, reference);
  }
  if (v_max <= 0) v_max = 1;
  // Values two or more orders of magnitude apart would leave the small bars invisible on a
  // linear axis: draw them on a log axis, from the decade below the smallest value.
  const bool log_scale = v_min > 0 && std::isfinite(v_min) && v_max / v_min >= 100;
  const double lo = log_scale ? std::pow(10.0, std::floor(std::log10(v_min))) : 0;
  const double hi = log_scale ? std::pow(10.0, std::ceil(std::log10(v_max))) : v_max * 1.08;
  auto x_of = [&](double v) {
    if (log_scale) {
      return kLabelWidth + (std::log10(std::max(v, lo)) - std::log10(lo)) /
                               (std::log10(hi) - std::log10(lo)) * kPlotWidth;
    }
    return kLabelWidth + v / hi * kPlotWidth;
  };
  const int axis_y = kTop + static_cast<int>(bars.size()) * kBarHeight + 2;
  const int height = axis_y + 40;
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
      kLabelWidth + kPlotWidth + 130, height, escape(title));
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const int y = kTop + static_cast<int>(i) * kBarHeight;
    const double w = x_of(bars[i].value) - kLabelWidth;
    out += fmt::format(
        "<g><title>{1}: {8} {9}</title><text x=\"10\" y=\"{0}\">{1}</text>"
        "<rect x=\"{2}\" y=\"{3}\" width=\"{4:.2f}\" height=\"{5}\" fill=\"{6}\"/>"
        "<text x=\"{7:.2f}\" y=\"{0}\">{8} {9}</text></g>\n",
        y + 16, escape(bars[i].label), kLabelWidth, y + 3, std::max(0.5, w), kBarHeight - 6,
        colour(bars[i].kind), kLabelWidth + std::max(0.5, w) + 6, format_value(bars[i].value),
        escape(unit));
  }
  // The value axis, with its unit.
  out += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#888\"/>\n",
                     kLabelWidth, axis_y, kLabelWidth + kPlotWidth);
  std::vector<double> ticks;
  if (log_scale) {
    for (double t = lo; t <= hi * 1.0001; t *= 10) ticks.push_back(t);
  } else {
    const double step = tick_step(hi, 6);
    for (double t = 0; t <= hi * 1.0001; t += step) ticks.push_back(t);
  }
  for (double t : ticks) {
    out += fmt::format(
        "<line x1=\"{0:.2f}\" y1=\"{1}\" x2=\"{0:.2f}\" y2=\"{2}\" stroke=\"#888\"/>"
        "<text x=\"{0:.2f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        x_of(t), axis_y, axis_y + 5, axis_y + 18, format_value(t));
  }
  // Under the last tick's label, ending where the axis ends: beside it, a wide last label
  // ("1,000") ran into the unit.
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}{}</text>\n",
                     kLabelWidth + kPlotWidth, axis_y + 33, escape(unit),
                     log_scale ? " (log scale)" : "");
  if (!std::isnan(reference) && reference > 0) {
    const double x = x_of(reference);
    out += fmt::format(
        "<g><title>{3}: {4} {5}</title><line x1=\"{0:.2f}\" y1=\"{1}\" x2=\"{0:.2f}\" "
        "y2=\"{2}\" stroke=\"#222\" stroke-dasharray=\"4 3\" stroke-width=\"1.5\"/>"
        "<text x=\"{0:.2f}\" y=\"{6}\" text-anchor=\"middle\" font-size=\"11\">{3}</text></g>\n",
        x, kTop - 4, axis_y, escape(reference_label), format_value(reference), escape(unit),
        kTop - 6);
  }
  out += "</svg>\n";
  return out;
}

}  // namespace concur::lab::svg
