// The judge of refcount-race, fed synthetic counts (lab/experiments/refcount_race.hpp).
#include "experiments/refcount_race.hpp"

#include "judge_test_support.hpp"

namespace concur::lab {
namespace {

using refcount_race::judge;
using refcount_race::Measurements;

TEST(RefcountRaceJudge, LostUpdatesThatFreeHeldObjectsConfirmTheClaim) {
  Measurements m;
  m.all_cores = {120, 2, 5};
  m.one_core_cpu = 0;
  EXPECT_EQ(judge(m).verdict, Verdict::kConfirmed);
}

TEST(RefcountRaceJudge, OneCoreAloneCanConfirmTheClaim) {
  // Preemption between the load and the store: no second core needed.
  Measurements m;
  m.one_core = {3, 1, 0};
  m.one_core_cpu = 0;
  const Judgement j = judge(m);
  EXPECT_EQ(j.verdict, Verdict::kConfirmed);
  EXPECT_NE(j.because.find("pinned to CPU 0"), std::string::npos);
}

TEST(RefcountRaceJudge, LostUpdatesWithoutAnEarlyFreeArePartlyTrue) {
  Measurements m;
  m.all_cores = {4, 0, 0};
  EXPECT_EQ(judge(m).verdict, Verdict::kPartlyTrue);
}

TEST(RefcountRaceJudge, NothingLostIsInconclusive) {
  EXPECT_EQ(judge(Measurements{}).verdict, Verdict::kInconclusive);
}

TEST(RefcountRaceJudge, ALockThatLosesUpdatesRefutesTheClaim) {
  Measurements m;
  m.all_cores = {120, 2, 5};
  m.locked_lost = 1;
  EXPECT_EQ(judge(m).verdict, Verdict::kRefuted);
}

TEST(RefcountRaceJudge, AtomicCountsThatLoseUpdatesRefuteTheClaim) {
  Measurements m;
  m.others_lost = 2;
  EXPECT_EQ(judge(m).verdict, Verdict::kRefuted);
}

}  // namespace
}  // namespace concur::lab
