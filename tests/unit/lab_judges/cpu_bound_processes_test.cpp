// The judge of cpu-bound-processes, fed synthetic medians (cpu_bound_processes.hpp).
#include "experiments/cpu_bound_processes.hpp"

#include "judge_test_support.hpp"

namespace concur::lab {
namespace {

using cpu_bound_processes::judge;
using cpu_bound_processes::Measurements;
using testing::parallel;
using testing::sample;

Measurements processes(double one_s, double many_s, ParallelControl c = parallel()) {
  return {c, true, 2, sample(one_s), sample(many_s)};
}

TEST(CpuBoundProcessesJudge, NearlyLinearSpeedUpConfirmsTheClaim) {
  EXPECT_EQ(judge(processes(1.0, 0.55)).verdict, Verdict::kConfirmed);  // 1.82x of 2x
}

TEST(CpuBoundProcessesJudge, SomeGainShortOfOneCoreEachIsPartlyTrue) {
  EXPECT_EQ(judge(processes(1.0, 0.8)).verdict, Verdict::kPartlyTrue);  // 1.25x
}

TEST(CpuBoundProcessesJudge, ProcessesThatDidNotRunInParallelRefuteTheClaim) {
  EXPECT_EQ(judge(processes(1.0, 0.98)).verdict, Verdict::kRefuted);
}

TEST(CpuBoundProcessesJudge, TheIdealIsTheUsableCoresNotTheProcessCount) {
  // 4 processes on 2 usable cores: 1.5x is 75% of the ideal 2x.
  Measurements m = processes(1.0, 1.0 / 1.5);
  m.processes = 4;
  EXPECT_DOUBLE_EQ(m.ideal(), 2.0);
  EXPECT_EQ(judge(m).verdict, Verdict::kConfirmed);
}

TEST(CpuBoundProcessesJudge, UnderTasksetOnOneCoreTheClaimIsNotJudged) {
  // The case: taskset -c 0 once "confirmed" 1.69x from one noisy pair of runs.
  const Judgement j = judge(processes(1.0, 0.59, testing::control(1, 1.0)));
  EXPECT_EQ(j.verdict, Verdict::kInconclusive);
  EXPECT_NE(j.because.find("2 or more cores"), std::string::npos);
}

TEST(CpuBoundProcessesJudge, AControlThatShowsNoParallelismIsInconclusive) {
  EXPECT_EQ(judge(processes(1.0, 0.5, testing::control(4, 1.1))).verdict, Verdict::kInconclusive);
}

}  // namespace
}  // namespace concur::lab
