// The numpy-dot judge, fed synthetic measurements: every branch.
#include "experiments/numpy_dot.hpp"

#include <gtest/gtest.h>

#include "synthetic_measurements.hpp"

namespace concur::lab::numpy_dot {
namespace {

using testing::control_with;
using testing::sample_of;

Measurements measured(double threads_speedup, double one_multiply_cores, double control = 1.9) {
  Measurements m;
  m.control = control_with(control);
  m.from_cpython = true;
  m.blas = "openblas 0.3.21, 2 threads";
  m.one_thread_s = sample_of(1.0);
  m.many_threads_s = sample_of(1.0 / threads_speedup);
  m.one_multiply_cores = one_multiply_cores;
  return m;
}

TEST(NumpyDotJudge, IsInconclusiveWithoutParallelismHere) {
  EXPECT_EQ(judge(measured(1.9, 1.9, /*control=*/1.0)).verdict, Verdict::kInconclusive);
  Measurements one_core = measured(1.0, 1.0);
  one_core.control = control_with(1.0, 1);
  EXPECT_EQ(judge(one_core).verdict, Verdict::kInconclusive);
}

TEST(NumpyDotJudge, IsInconclusiveWhenOtherProgramsStarvedTheMultiply) {
  const Judgement j = judge(measured(0.9, 0.15));
  EXPECT_EQ(j.verdict, Verdict::kInconclusive);
  EXPECT_NE(j.because.find("starved"), std::string::npos) << j.because;
}

TEST(NumpyDotJudge, ConfirmsWhenThreadsScaleAndOneMultiplyUsesEveryCore) {
  const Judgement j = judge(measured(1.8, 1.9));
  EXPECT_EQ(j.verdict, Verdict::kConfirmed);
  EXPECT_NE(j.because.find("1.80x"), std::string::npos) << j.because;
}

TEST(NumpyDotJudge, IsPartlyTrueWhenTheLockIsReleasedButTheBlasRunsOneThread) {
  // Debian's reference BLAS: released, but one core per multiply.
  const Judgement j = judge(measured(1.8, 1.0));
  EXPECT_EQ(j.verdict, Verdict::kPartlyTrue);
  EXPECT_NE(j.because.find("did not use all the cores"), std::string::npos) << j.because;
}

TEST(NumpyDotJudge, IsPartlyTrueWhenThreadsOverlapOnlyInPart) {
  EXPECT_EQ(judge(measured(1.25, 1.0)).verdict, Verdict::kPartlyTrue);
}

TEST(NumpyDotJudge, IsPartlyTrueWhenOneMultiplyUsesEveryCoreButThreadsDoNotOverlap) {
  EXPECT_EQ(judge(measured(1.0, 1.9)).verdict, Verdict::kPartlyTrue);
}

TEST(NumpyDotJudge, RefutesWhenTheLockStaysHeldAndOneCoreIsUsed) {
  const Judgement j = judge(measured(1.0, 1.0));
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_NE(j.because.find("the lock stayed held"), std::string::npos) << j.because;
}

TEST(NumpyDotJudge, SaysWhenTheFiguresCameFromConcursModel) {
  Measurements m = measured(1.8, 1.9);
  m.from_cpython = false;
  EXPECT_NE(judge(m).because.find("concur's model"), std::string::npos);
}

}  // namespace
}  // namespace concur::lab::numpy_dot
