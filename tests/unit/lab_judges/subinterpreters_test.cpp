// The subinterpreters judge, fed synthetic measurements: every branch.
#include "experiments/subinterpreters.hpp"

#include <gtest/gtest.h>

#include "synthetic_measurements.hpp"

namespace concur::lab::subinterpreters {
namespace {

using testing::control_with;
using testing::sample_of;

Measurements measured(double speedup, double control = 1.9) {
  Measurements m;
  m.control = control_with(control);
  m.who = "CPython 3.13.0 (own GIL)";
  m.serial_s = sample_of(1.0);
  m.subinterpreters_s = sample_of(1.0 / speedup);
  return m;
}

TEST(SubinterpretersJudge, IsInconclusiveSayingWhatItNeedsWithoutCPython312) {
  Measurements m = measured(1.9);
  m.who.clear();
  m.missing = "a CPython 3.12 or later";
  const Judgement j = judge(m);
  EXPECT_EQ(j.verdict, Verdict::kInconclusive);
  EXPECT_NE(j.because.find("3.12 or later"), std::string::npos) << j.because;
}

TEST(SubinterpretersJudge, IsInconclusiveWithoutParallelismHere) {
  EXPECT_EQ(judge(measured(1.9, 1.0)).verdict, Verdict::kInconclusive);
}

TEST(SubinterpretersJudge, ConfirmsWhenSubinterpretersGainNothing) {
  EXPECT_EQ(judge(measured(1.0)).verdict, Verdict::kConfirmed);
}

TEST(SubinterpretersJudge, IsPartlyTrueOnSomeGain) {
  EXPECT_EQ(judge(measured(1.4)).verdict, Verdict::kPartlyTrue);
}

TEST(SubinterpretersJudge, RefutesWhenOneProcessComputesOnSeveralCores) {
  const Judgement j = judge(measured(1.9));
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_NE(j.because.find("1.90x"), std::string::npos) << j.because;
}

}  // namespace
}  // namespace concur::lab::subinterpreters
