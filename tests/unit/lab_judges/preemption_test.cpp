// The preemption judge, fed synthetic measurements: every branch.
#include "experiments/preemption.hpp"

#include <gtest/gtest.h>

#include "synthetic_measurements.hpp"

namespace concur::lab::preemption {
namespace {

using testing::sample_of;

Measurements measured(double slice_s, double loss, long switches = 500) {
  Measurements m;
  m.threads = 3;
  m.involuntary_switches = switches;
  m.median_slice_s = slice_s;
  m.wait_per_switch_s = 2 * slice_s;
  m.alone_work = sample_of(100);
  m.shared_work = sample_of(100 * (1 - loss));
  return m;
}

TEST(PreemptionJudge, IsInconclusiveWhenTheThreadsDidNotCompete) {
  EXPECT_EQ(judge(measured(3e-3, 0.01, 2)).verdict, Verdict::kInconclusive);
}

TEST(PreemptionJudge, IsInconclusiveWhenSharingSeemsToAddWorkBeyondNoise) {
  const Judgement j = judge(measured(4e-3, -1.0));  // shared did twice the work of alone
  EXPECT_EQ(j.verdict, Verdict::kInconclusive);
  EXPECT_NE(j.because.find("disturbed"), std::string::npos) << j.because;
  EXPECT_EQ(judge(measured(4e-3, -0.05)).verdict, Verdict::kPartlyTrue);  // within noise
}

TEST(PreemptionJudge, ConfirmsFewMillisecondSlicesThatCostMuch) {
  EXPECT_EQ(judge(measured(3e-3, 0.2)).verdict, Verdict::kConfirmed);
}

TEST(PreemptionJudge, IsPartlyTrueWhenThePausesComeEveryFewMillisecondsButCostLittle) {
  const Judgement j = judge(measured(3e-3, 0.01));
  EXPECT_EQ(j.verdict, Verdict::kPartlyTrue);
  EXPECT_NE(j.because.find("1.0%"), std::string::npos) << j.because;
}

// Sharing did a little more work than one thread alone (within the impossible-gain bound): that
// is noise, and the text says so instead of reporting a cost of -N%.
TEST(PreemptionJudge, ASmallGainIsReportedAsNoCostNotANegativeCost) {
  const Judgement j = judge(measured(3e-3, -0.1));
  EXPECT_EQ(j.verdict, Verdict::kPartlyTrue);
  EXPECT_NE(j.because.find("cost nothing measurable"), std::string::npos) << j.because;
  EXPECT_NE(j.because.find("10.0% more work"), std::string::npos) << j.because;
  EXPECT_EQ(j.because.find("-10"), std::string::npos) << j.because;
}

// A median loss past the threshold whose runs overlap the runs alone (seen pinned to one core:
// 10.8%, with one shared run above the slowest run alone) is not a measured cost.
TEST(PreemptionJudge, ALossWithinTheRunsSpreadIsNotMassive) {
  Measurements m = measured(4e-3, 0.0);
  m.alone_work.values = {118, 142, 150, 139, 145};
  m.shared_work.values = {127, 120, 131, 125, 122};  // median 125 vs 142: 12% by the medians
  const Judgement j = judge(m);
  EXPECT_EQ(j.verdict, Verdict::kPartlyTrue) << j.because;
  EXPECT_NE(j.because.find("runs overlap"), std::string::npos) << j.because;
  EXPECT_NE(j.because.find("not clearly"), std::string::npos) << j.because;
  // The same loss with every shared run below every run alone is massive.
  m.shared_work.values = {110, 112, 115, 108, 114};
  EXPECT_EQ(judge(m).verdict, Verdict::kConfirmed);
}

TEST(PreemptionJudge, IsPartlyTrueWhenCostlyButNotAtTheStatedRhythm) {
  EXPECT_EQ(judge(measured(50e-3, 0.3)).verdict, Verdict::kPartlyTrue);
}

TEST(PreemptionJudge, RefutesLongSlicesThatCostLittle) {
  EXPECT_EQ(judge(measured(50e-3, 0.0)).verdict, Verdict::kRefuted);
  EXPECT_EQ(judge(measured(0.2e-3, 0.0)).verdict, Verdict::kRefuted);
}

}  // namespace
}  // namespace concur::lab::preemption
