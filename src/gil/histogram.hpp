// Internal: a log-linear histogram of durations in nanoseconds (8 sub-buckets per power of two,
// so a percentile is within 12.5% of the true value), fixed size, no allocation when recording.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace concur::detail {

class DurationHistogram {
 public:
  void record(std::int64_t ns) {
    const auto v = static_cast<std::uint64_t>(ns < 0 ? 0 : ns);
    ++counts_[index_of(v)];
    ++total_;
    if (v > max_) max_ = v;
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return max_; }

  // The value at percentile p (0-100): the middle of its bucket, or 0 when empty.
  std::uint64_t percentile(double p) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(total_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const std::uint64_t mid = (lower_bound(i) + lower_bound(i + 1)) / 2;
        return mid < max_ ? mid : max_;
      }
    }
    return max_;
  }

 private:
  static constexpr unsigned kSubBits = 3;
  static constexpr unsigned kSub = 1u << kSubBits;

  static std::size_t index_of(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v));
    const unsigned sub = static_cast<unsigned>(v >> (msb - kSubBits)) & (kSub - 1);
    return static_cast<std::size_t>((msb - kSubBits + 1) * kSub + sub);
  }
  static std::uint64_t lower_bound(std::size_t index) {
    if (index < kSub) return index;
    const std::size_t band = index / kSub;  // >= 1
    const std::uint64_t sub = index % kSub;
    const unsigned msb = static_cast<unsigned>(band) + kSubBits - 1;
    if (msb >= 64) return ~std::uint64_t{0};
    return (std::uint64_t{1} << msb) | (sub << (msb - kSubBits));
  }

  std::array<std::uint64_t, (64 - kSubBits + 1) * kSub> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace concur::detail
