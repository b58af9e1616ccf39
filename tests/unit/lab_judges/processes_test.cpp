// The judges of process-memory and fork-vs-spawn, fed synthetic figures
// (lab/experiments/<name>.hpp).
#include <cmath>

#include "experiments/fork_vs_spawn.hpp"
#include "experiments/process_memory.hpp"
#include "judge_test_support.hpp"

namespace concur::lab {
namespace {

TEST(ProcessMemoryJudge, ForkSharingAndSpawnCopyingIsPartlyTrue) {
  EXPECT_EQ(process_memory::judge({true, 0.01, 1.0}).verdict, Verdict::kPartlyTrue);
}

TEST(ProcessMemoryJudge, AForkedReaderThatCopiesPartOfTheArrayIsPartlyTrue) {
  EXPECT_EQ(process_memory::judge({true, 0.5, 1.0}).verdict, Verdict::kPartlyTrue);
}

TEST(ProcessMemoryJudge, AForkedReaderThatCopiesItAllConfirmsTheClaim) {
  EXPECT_EQ(process_memory::judge({true, 0.95, 1.0}).verdict, Verdict::kConfirmed);
}

TEST(ProcessMemoryJudge, ASpawnedChildWithoutItsOwnCopyRefutesTheClaim) {
  EXPECT_EQ(process_memory::judge({true, 0.01, 0.1}).verdict, Verdict::kRefuted);
}

TEST(ProcessMemoryJudge, TheRefcountExplanationAppearsOnlyWhenTheObjectsWereCopied) {
  process_memory::Measurements m{true, 0.01, 1.0, 1.0};
  EXPECT_NE(process_memory::judge(m).because.find("reference count"), std::string::npos);
  m.fork_objects = 0.05;
  EXPECT_EQ(process_memory::judge(m).because.find("reference count"), std::string::npos);
  m.fork_objects = NAN;
  EXPECT_EQ(process_memory::judge(m).because.find("Python floats"), std::string::npos);
}

TEST(ForkVsSpawnJudge, ARecursionPastTheChildConfirmsTheForkBomb) {
  EXPECT_EQ(fork_vs_spawn::judge({true, 4, ""}).verdict, Verdict::kConfirmed);
}

TEST(ForkVsSpawnJudge, AChildThatStopsRefutesTheForkBombAndQuotesItsError) {
  const Judgement j = fork_vs_spawn::judge(
      {true, 2,
       "RuntimeError: An attempt has been made to start a new process before the "
       "current process has finished its bootstrapping phase."});
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_NE(j.because.find("bootstrapping"), std::string::npos);
  EXPECT_NE(j.because.find("re-running the script"), std::string::npos);
}

TEST(ForkVsSpawnJudge, AChildThatDidNotReRunTheScriptIsSaidSo) {
  const Judgement j = fork_vs_spawn::judge({false, 1, ""});
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_NE(j.because.find("did not re-run"), std::string::npos);
}

}  // namespace
}  // namespace concur::lab
