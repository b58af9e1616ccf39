// The judges of the three "waits overlap" experiments, fed synthetic timings: io-bound-threads,
// asyncio-io-bound and gil-io-release (lab/experiments/<name>.hpp).
#include "experiments/asyncio_io_bound.hpp"
#include "experiments/gil_io_release.hpp"
#include "experiments/io_bound_threads.hpp"
#include "judge_test_support.hpp"

namespace concur::lab {
namespace {

TEST(IoBoundThreadsJudge, TenWaitsInAboutOneConfirmTheClaim) {
  EXPECT_EQ(io_bound_threads::judge({true, 10, 1.0, 10.02, 1.01}).verdict, Verdict::kConfirmed);
}

TEST(IoBoundThreadsJudge, ThreadsThatHelpButTakeSeveralWaitsArePartlyTrue) {
  EXPECT_EQ(io_bound_threads::judge({true, 10, 1.0, 10.0, 3.0}).verdict, Verdict::kPartlyTrue);
}

TEST(IoBoundThreadsJudge, WaitsThatDoNotOverlapRefuteTheClaim) {
  EXPECT_EQ(io_bound_threads::judge({true, 10, 1.0, 10.0, 9.0}).verdict, Verdict::kRefuted);
}

TEST(IoBoundThreadsJudge, TheVerdictNamesConcurWhenCPythonWasNotMeasured) {
  const Judgement j = io_bound_threads::judge({false, 10, 1.0, 10.0, 1.0});
  EXPECT_NE(j.because.find("CPython was not measured"), std::string::npos);
}

TEST(AsyncioIoBoundJudge, TenCoroutinesInAboutOneWaitConfirmTheClaim) {
  EXPECT_EQ(asyncio_io_bound::judge({true, 10, 0.1, 1.01, 0.104}).verdict, Verdict::kConfirmed);
}

TEST(AsyncioIoBoundJudge, CoroutinesThatHelpButTakeSeveralWaitsArePartlyTrue) {
  EXPECT_EQ(asyncio_io_bound::judge({true, 10, 0.1, 1.0, 0.3}).verdict, Verdict::kPartlyTrue);
}

TEST(AsyncioIoBoundJudge, CoroutinesThatWaitInTurnRefuteTheClaim) {
  EXPECT_EQ(asyncio_io_bound::judge({true, 10, 0.1, 1.0, 0.95}).verdict, Verdict::kRefuted);
}

TEST(GilIoReleaseJudge, OverlapOnlyWhenReleasedConfirmsTheClaim) {
  const Judgement j = gil_io_release::judge({10, 0.2, 0.21, 2.01});
  EXPECT_EQ(j.verdict, Verdict::kConfirmed);
  EXPECT_NE(j.because.find("not CPython's"), std::string::npos);  // it says whose lock it was
}

TEST(GilIoReleaseJudge, ReleasingThatHelpsButNotDownToOneWaitIsPartlyTrue) {
  EXPECT_EQ(gil_io_release::judge({10, 0.2, 0.6, 2.0}).verdict, Verdict::kPartlyTrue);
}

TEST(GilIoReleaseJudge, ReleasingThatDoesNotHelpRefutesTheClaim) {
  EXPECT_EQ(gil_io_release::judge({10, 0.2, 1.9, 2.0}).verdict, Verdict::kRefuted);
}

TEST(GilIoReleaseJudge, AHeldLockThatStillOverlapsIsNotAConfirmation) {
  // If holding the lock did not serialise the waits, the experiment showed nothing about it.
  EXPECT_NE(gil_io_release::judge({10, 0.2, 0.21, 0.22}).verdict, Verdict::kConfirmed);
}

}  // namespace
}  // namespace concur::lab
