// bench/common/format.cpp: see format.hpp.
#include "format.hpp"

#include <fmt/format.h>

#include <cmath>

namespace concur::bench {

std::string format_number(double v) {
  if (std::isnan(v)) return "-";
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  if (v >= 100) return fmt::format("{:.0f}", v);
  if (v >= 10) return fmt::format("{:.1f}", v);
  return fmt::format("{:.2f}", v);
}

std::string format_bytes(double v) {
  if (std::isnan(v)) return "-";
  if (std::fabs(v) >= 1 << 20) return fmt::format("{:.1f} MiB", v / (1 << 20));
  if (std::fabs(v) >= 1024) return fmt::format("{:.1f} KiB", v / 1024);
  return fmt::format("{:.0f} B", v);
}

std::string format_times(double ratio) {
  return fmt::format("{:.2f}x", ratio);
}

std::string format_advantage(double advantage) {
  const bool better = advantage >= 1;
  return fmt::format("concur is {} {}", format_times(better ? advantage : 1 / advantage),
                     better ? "better" : "worse");
}

}  // namespace concur::bench
