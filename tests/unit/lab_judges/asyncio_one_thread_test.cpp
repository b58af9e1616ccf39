// The asyncio-one-thread judge, fed synthetic measurements: every branch.
#include "experiments/asyncio_one_thread.hpp"

#include <gtest/gtest.h>

namespace concur::lab::asyncio_one_thread {
namespace {

Measurements measured(int threads, double main_share, bool served = true) {
  return {"CPython 3.11.2 asyncio", 1000, served, threads, main_share};
}

TEST(AsyncioOneThreadJudge, IsInconclusiveWhenTheServerDidNotServeEveryConnection) {
  EXPECT_EQ(judge(measured(1, 1.0, false)).verdict, Verdict::kInconclusive);
}

TEST(AsyncioOneThreadJudge, ConfirmsOneThread) {
  const Judgement j = judge(measured(1, 1.0));
  EXPECT_EQ(j.verdict, Verdict::kConfirmed);
  EXPECT_NE(j.because.find("1 OS thread"), std::string::npos) << j.because;
}

TEST(AsyncioOneThreadJudge, IsPartlyTrueWhenOtherThreadsExistButIdle) {
  EXPECT_EQ(judge(measured(5, 0.99)).verdict, Verdict::kPartlyTrue);
}

TEST(AsyncioOneThreadJudge, RefutesWhenOtherThreadsShareTheWork) {
  EXPECT_EQ(judge(measured(5, 0.5)).verdict, Verdict::kRefuted);
}

}  // namespace
}  // namespace concur::lab::asyncio_one_thread
