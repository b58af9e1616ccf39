// The judges of gil-timeline and gil-convoy, fed synthetic figures (lab/experiments/<name>.hpp).
#include <cmath>

#include "experiments/gil_convoy.hpp"
#include "experiments/gil_timeline.hpp"
#include "judge_test_support.hpp"

namespace concur::lab {
namespace {

TEST(GilTimelineJudge, ThreadsMostlyWaitingForTheLockConfirmTheClaim) {
  EXPECT_EQ(gil_timeline::judge({4, false, 0.74}).verdict, Verdict::kConfirmed);
}

TEST(GilTimelineJudge, ALockOftenFreeIsPartlyTrue) {
  EXPECT_EQ(gil_timeline::judge({4, false, 0.3}).verdict, Verdict::kPartlyTrue);
}

TEST(GilTimelineJudge, TwoHoldersAtOnceRefuteTheClaim) {
  EXPECT_EQ(gil_timeline::judge({4, true, 0.74}).verdict, Verdict::kRefuted);
}

TEST(GilConvoyJudge, AnIoThreadAtATenthOfItsSoloRateIsAConvoy) {
  // CPython 3.11 here: about 290/s beside a CPU-bound thread against 120,000/s alone.
  const Judgement j = gil_convoy::judge({true, 5, 120'000, 290, 0.8});
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_NE(j.because.find("io_priority"), std::string::npos);
}

TEST(GilConvoyJudge, SlowedButNotAConvoyIsPartlyTrue) {
  EXPECT_EQ(gil_convoy::judge({true, 5, 1000, 300, NAN}).verdict, Verdict::kPartlyTrue);
}

TEST(GilConvoyJudge, AnIoThreadKeepingHalfItsRateConfirmsTheClaim) {
  const Judgement j = gil_convoy::judge({false, 5, 1000, 800, NAN});
  EXPECT_EQ(j.verdict, Verdict::kConfirmed);
  EXPECT_EQ(j.because.find("io_priority"), std::string::npos);  // not run: not mentioned
}

}  // namespace
}  // namespace concur::lab
