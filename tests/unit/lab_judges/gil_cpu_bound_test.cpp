// The judge of gil-cpu-bound, fed synthetic medians (lab/experiments/gil_cpu_bound.hpp).
#include "experiments/gil_cpu_bound.hpp"

#include "judge_test_support.hpp"

namespace concur::lab {
namespace {

using gil_cpu_bound::judge;
using gil_cpu_bound::Measurements;
using testing::parallel;
using testing::sample;

Measurements split(double one_s, double split_s, ParallelControl c = parallel()) {
  return {c, true, 2, sample(one_s), sample(split_s)};
}

TEST(GilCpuBoundJudge, NoGainFromSplittingConfirmsTheClaim) {
  EXPECT_EQ(judge(split(1.0, 1.05)).verdict, Verdict::kConfirmed);
}

TEST(GilCpuBoundJudge, ASmallGainIsPartlyTrue) {
  EXPECT_EQ(judge(split(1.0, 0.75)).verdict, Verdict::kPartlyTrue);
}

TEST(GilCpuBoundJudge, ThreadsThatComputeInParallelRefuteTheClaim) {
  // As a free-threaded CPython does.
  const Judgement j = judge(split(1.0, 0.52));
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_NE(j.because.find("CPython"), std::string::npos);
}

TEST(GilCpuBoundJudge, OneUsableCoreIsInconclusiveWhateverTheFigures) {
  const Judgement j = judge(split(1.0, 1.0, testing::control(1, 1.0)));
  EXPECT_EQ(j.verdict, Verdict::kInconclusive);
  EXPECT_NE(j.because.find("only 1 core"), std::string::npos);
}

TEST(GilCpuBoundJudge, AControlThatShowsNoParallelismIsInconclusive) {
  // Two cores on paper, but the no-lock loop did not run faster (a throttled VM).
  EXPECT_EQ(judge(split(1.0, 0.5, testing::control(2, 1.05))).verdict, Verdict::kInconclusive);
}

TEST(GilCpuBoundJudge, TheVerdictSaysWhenItCameFromConcursModel) {
  Measurements m = split(1.0, 1.0);
  m.from_cpython = false;
  EXPECT_NE(judge(m).because.find("CPython was not measured"), std::string::npos);
}

TEST(GilCpuBoundJudge, EveryThresholdHasAReason) {
  for (const Threshold& t : gil_cpu_bound::thresholds()) EXPECT_FALSE(t.reason.empty()) << t.name;
}

}  // namespace
}  // namespace concur::lab
