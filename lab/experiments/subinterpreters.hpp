// lab/experiments/subinterpreters.hpp: the judge of subinterpreters (subinterpreters.cpp).
//
// Claim: a standard Python program cannot compute on several cores; it runs on one. Since
// CPython 3.12 (PEP 684) one process can hold several interpreters, each with its own GIL, and
// run them on several threads at once: "four kitchens in one house". Judged on the newest such
// CPython found, only where the control shows this run can compute in parallel.
#pragma once

#include <string>
#include <vector>

#include "evidence.hpp"

namespace concur::lab::subinterpreters {

// Up to this median speed-up, N subinterpreters gained nothing: the noise of a busy VM (as
// gil-cpu-bound's bar for "no faster").
inline constexpr double kNoFaster = 1.15;
// Beyond this they computed in parallel: more than half a second core's worth, plus noise.
inline constexpr double kClearGain = 1.6;

struct Measurements {
  ParallelControl control;
  std::string who;      // "CPython 3.13.0 (own GIL)"; empty when no CPython >= 3.12 was found
  std::string missing;  // what is needed, when `who` is empty
  int threads = 2;
  Sample serial_s;           // the N shares one after another in one subinterpreter
  Sample subinterpreters_s;  // one share in each of N subinterpreters, on N threads at once
  double speedup() const { return serial_s.median() / subinterpreters_s.median(); }
};

std::vector<Threshold> thresholds();
Judgement judge(const Measurements& m);

}  // namespace concur::lab::subinterpreters
