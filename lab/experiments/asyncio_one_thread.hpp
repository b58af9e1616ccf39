// lab/experiments/asyncio_one_thread.hpp: the judge of asyncio-one-thread
// (workload in asyncio_one_thread.cpp).
//
// Claim: an asyncio program uses exactly one thread. Counted in an echo server's process while it
// serves many connections: its OS threads (the most seen at once), and how much of its CPU time
// its main thread spent (other threads, if any, may be idle helpers).
#pragma once

#include <string>
#include <vector>

#include "evidence.hpp"

namespace concur::lab::asyncio_one_thread {

// Other threads that together did less than 5% of the process's CPU work are idle helpers: the
// serving was one thread's.
inline constexpr double kOneThreadShare = 0.95;

struct Measurements {
  std::string who;            // "CPython 3.11.2 asyncio"
  int connections = 0;        // asked for
  bool served = false;        // every connection opened and every echo came back
  int max_threads = 0;        // the most OS threads the server had at once while serving
  double main_cpu_share = 0;  // the main thread's share of the server threads' CPU time
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::asyncio_one_thread
