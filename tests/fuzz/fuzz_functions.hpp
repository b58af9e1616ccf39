// The functions call_fuzz registers, and fuzz_seeds encodes calls of (both must agree on names
// and signatures for the seeds to reach the arguments' decoding).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "concur/multiprocessing/registry.hpp"

namespace concur_fuzz {

// Wraps around as the fuzzer picks any two ints (signed overflow would be this function's bug).
inline int add(int a, int b) {
  return static_cast<int>(static_cast<unsigned>(a) + static_cast<unsigned>(b));
}
inline std::string join(std::vector<std::string> parts, std::string separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}
inline double total(std::map<std::string, std::vector<double>> accounts) {
  double sum = 0;
  for (const auto& [name, values] : accounts) {
    for (double v : values) sum += v;
  }
  return sum;
}
inline void nothing() {}

}  // namespace concur_fuzz

CONCUR_REGISTER(concur_fuzz::add);
CONCUR_REGISTER(concur_fuzz::join);
CONCUR_REGISTER(concur_fuzz::total);
CONCUR_REGISTER(concur_fuzz::nothing);
