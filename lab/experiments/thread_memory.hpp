// lab/experiments/thread_memory.hpp: the judge of thread-memory (workload in thread_memory.cpp).
//
// Claim: a thread costs kilobytes of RAM. RAM is what a thread keeps resident (its stack pages
// touched, its thread structures); its virtual size (the stack reserved, mostly never touched)
// is measured and shown beside it, and judged on the same scale in the table, but it is address
// space, not RAM, so it does not decide the verdict.
#pragma once

#include <string>
#include <vector>

#include "evidence.hpp"

namespace concur::lab::thread_memory {

// "Kilobytes": a figure in kilobytes is below one mebibyte.
inline constexpr double kKilobytesBelowKiB = 1024;
// Up to a few mebibytes it is "about a megabyte": partly true; beyond, plainly megabytes.
inline constexpr double kFewMegabytesKiB = 4 * 1024;

// What one thread (or task) of one runtime added to its process, measured with `count` of them.
struct PerUnit {
  std::string who;       // "CPython 3.11.2 thread"
  int count = 0;         // how many were alive at the measurement
  double rss_kib = 0;    // VmRSS growth / count
  double vsize_kib = 0;  // VmSize growth / count
};

struct Measurements {
  bool from_cpython = false;  // the subject is a CPython thread (else a C++ std::thread)
  PerUnit thread;             // the subject
};

// "kilobytes" / "megabytes" / "gigabytes", for the table's judgement of each figure.
std::string scale_of(double kib);

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::thread_memory
