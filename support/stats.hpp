// support/stats.hpp: medians and percentiles for the lab and the benchmarks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace concur::support {

// Linear interpolation between closest ranks; NaN for no values.
inline double percentile_of(std::vector<double> values, double p) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = static_cast<std::size_t>(std::ceil(rank));
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

inline double median_of(std::vector<double> values) {
  return percentile_of(std::move(values), 50);
}

}  // namespace concur::support
