#include "common/chart.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "markup.hpp"

namespace concur::bench {
namespace {

// Plot area inside the picture; room on the left for tick labels, below for the x label and
// the caption, on the right for the legend.
constexpr double kWidth = 760, kHeight = 440;
constexpr double kLeft = 78, kRight = 560, kTop = 44, kBottom = 372;

// Colour-blind-safe (Okabe-Ito), concur first.
constexpr const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                    "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string escape(const std::string& text) {
  return support::escape_markup(text);
}

bool usable(double v, bool log) {
  return std::isfinite(v) && (!log || v > 0);
}

// Maps values of one axis onto pixels, linearly or by their logarithm.
struct Scale {
  double lo, hi;  // in axis units (log10 of the value when log)
  bool log;
  double p0, p1;  // pixels for lo and hi

  double unit(double v) const { return log ? std::log10(v) : v; }
  double px(double v) const { return p0 + (unit(v) - lo) / (hi - lo) * (p1 - p0); }
};

Scale make_scale(const LineChart& chart, bool x_axis, double p0, double p1) {
  const ChartAxis& axis = x_axis ? chart.x : chart.y;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& s : chart.series)
    for (const auto& [x, y] : s.points) {
      double v = x_axis ? x : y;
      if (!usable(x, chart.x.log) || !usable(y, chart.y.log)) continue;
      double u = axis.log ? std::log10(v) : v;
      lo = std::min(lo, u);
      hi = std::max(hi, u);
    }
  if (!std::isfinite(lo)) lo = 0, hi = 1;  // nothing to draw: an empty frame
  if (axis.log) {
    lo = std::floor(lo);
    hi = std::ceil(hi);
    if (hi <= lo) hi = lo + 1;
  } else {
    // A linear y axis starts at zero, so that heights compare as ratios.
    if (!x_axis) lo = std::min(lo, 0.0);
    if (hi <= lo) hi = lo + 1;
    hi += (hi - lo) * 0.05;
  }
  return Scale{lo, hi, axis.log, p0, p1};
}

// A number short enough for a tick: 1k, 10M, 0.5, 12.
std::string tick_text(double v) {
  double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:g}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:g}M", v / 1e6);
  if (a >= 1e3) return fmt::format("{:g}k", v / 1e3);
  return fmt::format("{:g}", v);
}

// Tick values: each power of ten on a log axis (with 2 and 5 between when there are few
// decades), about five round steps on a linear one.
std::vector<double> ticks(const Scale& s) {
  std::vector<double> out;
  if (s.log) {
    bool fine = s.hi - s.lo <= 2;
    for (int e = static_cast<int>(s.lo); e <= static_cast<int>(s.hi); ++e)
      for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        double u = e + std::log10(m);
        if (u >= s.lo - 1e-9 && u <= s.hi + 1e-9) out.push_back(std::pow(10.0, u));
      }
    return out;
  }
  double raw = (s.hi - s.lo) / 5;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  for (double v = std::ceil(s.lo / step) * step; v <= s.hi + 1e-9 * step; v += step)
    out.push_back(std::fabs(v) < 1e-12 * step ? 0 : v);
  return out;
}

}  // namespace

std::string render_svg(const LineChart& chart) {
  Scale xs = make_scale(chart, true, kLeft, kRight);
  Scale ys = make_scale(chart, false, kBottom, kTop);
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      kWidth, kHeight, kLeft, escape(chart.title));

  // Grid and ticks.
  for (double v : ticks(xs)) {
    double x = xs.px(v);
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        x, kTop, kBottom, kBottom + 16, tick_text(v));
  }
  for (double v : ticks(ys)) {
    double y = ys.px(v);
    out += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        kLeft, y, kRight, kLeft - 6, y + 4, tick_text(v));
  }
  out += fmt::format(
      "<rect x=\"{0}\" y=\"{1}\" width=\"{2}\" height=\"{3}\" fill=\"none\" stroke=\"#888\"/>\n",
      kLeft, kTop, kRight - kLeft, kBottom - kTop);
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>\n",
                     (kLeft + kRight) / 2, kBottom + 36, escape(chart.x.label),
                     chart.x.log ? " (log scale)" : "");
  out += fmt::format(
      "<text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">{}{}</text>\n",
      (kTop + kBottom) / 2, escape(chart.y.label), chart.y.log ? " (log scale)" : "");

  // Series: a polyline per unbroken run of usable points, a marked circle per point.
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const ChartSeries& s = chart.series[i];
    const char* colour = kColours[i % std::size(kColours)];
    std::string dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
    std::string run, marks;
    auto flush = [&] {
      if (run.find(' ') != std::string::npos)  // two points or more
        out += fmt::format(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n", colour,
            dash, run);
      run.clear();
    };
    for (const auto& [x, y] : s.points) {
      if (!usable(x, chart.x.log) || !usable(y, chart.y.log)) {
        flush();
        continue;
      }
      std::string p = fmt::format("{:.1f},{:.1f}", xs.px(x), ys.px(y));
      run += run.empty() ? p : " " + p;
      marks += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"><title>{}: {:g} at {:g}"
          "</title></circle>\n",
          xs.px(x), ys.px(y), colour, escape(s.name), y, x);
    }
    flush();
    out += marks;
    // Legend entry.
    double ly = kTop + 10 + 20 * static_cast<double>(i);
    out += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>"
        "<text x=\"{5}\" y=\"{6}\">{7}</text>\n",
        kRight + 14, ly, kRight + 40, colour, dash, kRight + 46, ly + 4, escape(s.name));
  }
  if (!chart.caption.empty())
    out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#444\">{}</text>\n", kLeft,
                       kHeight - 14, escape(chart.caption));
  out += "</svg>\n";
  return out;
}

void write_svg(const LineChart& chart, const std::string& path) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) throw std::runtime_error("cannot write the chart to " + path);
  file << render_svg(chart);
  if (!file.flush()) throw std::runtime_error("cannot write the chart to " + path);
}

}  // namespace concur::bench
