// lab/experiments/c10k.hpp: the judge of c10k (workload in c10k.cpp).
//
// Claim: one event-loop thread handles 10,000 sockets "instantaneously", on a 1 GB board.
#pragma once

#include <string>

#include "lab.hpp"

namespace concur::lab::c10k {

// The claim's own number of connections.
inline constexpr int kConnections = 10'000;
// "Instantaneously": a round trip within the 0.1 s people perceive as instant.
inline constexpr double kBoundedP99 = 0.1;  // seconds
// "A tiny 1GB Raspberry Pi": the server may take a quarter of it for its connections, leaving the
// rest to the system and to the application's own data.
inline constexpr double kMemoryBudgetMiB = 256;
// The paced load: one message per connection per second, the pace of a chat or notification
// socket, mostly idle; 10,000 requests/s offered with kConnections connections.
inline constexpr double kPacedPeriodS = 1.0;

struct Measurements {
  bool from_cpython = false;  // CPython's asyncio server, else concur's
  std::string who;            // "CPython 3.11.2 asyncio"
  bool finished = false;      // false: a process hung or died, nothing was measured
  std::string failure;        // why it did not finish
  int asked = 0;              // connections tried (fewer than kConnections: --quick, fd limit)
  int connected = 0;
  bool served_all = false;                 // every connection opened and every echo came back right
  std::string first_error;                 // the first failure, when not served_all
  double threads = 0;                      // threads in the server's process
  double p50_s = 0, p99_s = 0, max_s = 0;  // round trips under the paced load
  double burst_per_s = 0;                  // round trips per second, every connection busy
  double per_connection_kib = 0;           // server memory growth per connection
  double offered_per_s = 0;                // the paced load's requests per second
  bool quick = false;
  double scaled_mib() const { return per_connection_kib * kConnections / 1024; }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::c10k
