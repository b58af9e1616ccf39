// bench/common/busy_work.hpp: the ~1 µs task of thread_pool_bench's fan-out (c), shared with
// fan_out_breakdown so that both time the same work.
#pragma once

#include <cstdint>

namespace concur::bench {

// xorshift rounds: pure arithmetic, no memory traffic; `iterations` is calibrated by the caller
// (about 300 make 1 µs here).
inline std::uint64_t busy_work(std::uint64_t seed, std::uint64_t iterations) {
  std::uint64_t x = seed | 1;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

}  // namespace concur::bench
