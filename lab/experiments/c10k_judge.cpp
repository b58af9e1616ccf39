// The judge of c10k (c10k.hpp): kept apart from the workload (c10k.cpp), which is long enough.
#include <fmt/format.h>

#include "c10k.hpp"

namespace concur::lab {
namespace c10k {

std::vector<Threshold> thresholds() {
  return {{"connections", kConnections, "the claim's own number"},
          {"bounded_p99_s", kBoundedP99, "\"instantaneously\": within the 0.1 s felt as instant"},
          {"memory_budget_mib", kMemoryBudgetMiB,
           "a quarter of the tutorial's 1 GB board for 10,000 connections"},
          {"paced_period_s", kPacedPeriodS,
           "the paced load: one message per connection per second, a mostly idle socket"}};
}

Judgement judge(const Measurements& m) {
  if (!m.finished) {
    return {Verdict::kInconclusive, fmt::format("The run of {} with {} connections did not "
                                                "finish: {}",
                                                m.who, m.asked, m.failure)};
  }
  const std::string numbers = fmt::format(
      "{} served {} of {} connections from another process, with {:.0f} thread(s) in its process; "
      "under the paced load ({:.0f} requests/s) its p50 / p99 / max round trip took {} / {} / {}, "
      "the burst ran {:.0f} round trips/s, and each connection cost {:.1f} KiB of server memory "
      "({:.0f} MiB for {}).",
      m.who, m.connected, m.asked, m.threads, m.offered_per_s, format_seconds(m.p50_s),
      format_seconds(m.p99_s), format_seconds(m.max_s), m.burst_per_s, m.per_connection_kib,
      m.scaled_mib(), kConnections);
  if (!m.served_all) {
    return {Verdict::kRefuted, numbers + " Not every connection was served: " + m.first_error};
  }
  const bool prompt = m.p99_s <= kBoundedP99;
  if (!prompt || m.scaled_mib() > kMemoryBudgetMiB) {
    std::string why;
    if (!prompt) {
      why = fmt::format("the p99 latency is over {}", format_seconds(kBoundedP99));
      if (m.burst_per_s < m.offered_per_s) {
        why += fmt::format(
            " (its own capacity, {:.0f} round trips/s in the burst, was below the "
            "{:.0f} requests/s of the paced load, so requests queued)",
            m.burst_per_s, m.offered_per_s);
      }
    } else {
      why =
          fmt::format("{} connections would need over {:.0f} MiB", kConnections, kMemoryBudgetMiB);
    }
    return {Verdict::kPartlyTrue, numbers + " Every connection was served, but " + why + "."};
  }
  if (m.asked < kConnections) {
    return {Verdict::kInconclusive,
            numbers + fmt::format(" All served, promptly and in little memory, but with {} "
                                  "connections, not {} ({}).",
                                  m.asked, kConnections,
                                  m.quick ? "--quick" : "the descriptor limit allowed no more")};
  }
  return {Verdict::kConfirmed, numbers};
}

}  // namespace c10k

}  // namespace concur::lab
