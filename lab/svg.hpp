// lab/svg.hpp: the two kinds of picture the lab draws, as standalone SVG text.
//
// timeline(): lanes of spans over time (which thread ran or held what, when), as a Gantt chart.
// bars(): one horizontal bar per value, labelled, for comparing a measurement across variants.
// Both give every mark a <title>, so a browser shows its value on hover.
#pragma once

#include <cmath>
#include <string>
#include <vector>

namespace concur::lab::svg {

// `text` made safe inside SVG or HTML text and attribute values (<, >, &, ").
std::string escape(const std::string& text);

struct Span {
  double start = 0;  // seconds from the chart's origin
  double end = 0;
  int kind = 0;  // picks the colour; see Legend
};

struct Lane {
  std::string label;
  std::vector<Span> spans;
};

struct LegendEntry {
  int kind = 0;
  std::string label;
};

std::string timeline(const std::string& title, const std::vector<Lane>& lanes,
                     const std::vector<LegendEntry>& legend);

struct Bar {
  std::string label;
  double value = 0;
  int kind = 0;
};

// A horizontal value axis with its unit; a log axis when the values span two orders of magnitude
// or more; each bar's value on hover (<title>); `reference` (when not NaN) drawn as a dashed line
// labelled `reference_label` ("alone", "ideal").
std::string bars(const std::string& title, const std::string& unit, const std::vector<Bar>& bars,
                 double reference = NAN, const std::string& reference_label = "alone");

}  // namespace concur::lab::svg
