// The fork-with-lock judge, fed synthetic measurements: every branch.
#include "experiments/fork_with_lock.hpp"

#include <gtest/gtest.h>

namespace concur::lab::fork_with_lock {
namespace {

Measurements measured(bool held_stuck, std::optional<bool> default_stuck) {
  Measurements m;
  m.who = "CPython 3.11.2";
  m.control_finished = true;
  m.copy_intact = true;
  m.held_lock_stuck = held_stuck;
  m.default_method = "fork";
  m.default_stuck = default_stuck;
  return m;
}

TEST(ForkWithLockJudge, IsInconclusiveWhenEvenTheControlChildHung) {
  Measurements m = measured(true, true);
  m.control_finished = false;
  EXPECT_EQ(judge(m).verdict, Verdict::kInconclusive);
}

TEST(ForkWithLockJudge, RefutesACopyThatLostTheParentsData) {
  Measurements m = measured(false, false);
  m.copy_intact = false;
  EXPECT_EQ(judge(m).verdict, Verdict::kRefuted);
}

TEST(ForkWithLockJudge, ConfirmsWhenTheChildTookTheHeldLock) {
  EXPECT_EQ(judge(measured(false, false)).verdict, Verdict::kConfirmed);
}

TEST(ForkWithLockJudge, IsPartlyTrueWhenTheDefaultStartMethodAvoidsTheHang) {
  Measurements m = measured(true, false);
  m.default_method = "forkserver";
  const Judgement j = judge(m);
  EXPECT_EQ(j.verdict, Verdict::kPartlyTrue);
  EXPECT_NE(j.because.find("forkserver"), std::string::npos) << j.because;
}

TEST(ForkWithLockJudge, RefutesWhenTheForkedChildHangsOnTheLock) {
  EXPECT_EQ(judge(measured(true, true)).verdict, Verdict::kRefuted);
  EXPECT_EQ(judge(measured(true, std::nullopt)).verdict, Verdict::kRefuted);
}

}  // namespace
}  // namespace concur::lab::fork_with_lock
