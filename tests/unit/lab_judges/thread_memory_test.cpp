// The thread-memory judge, fed synthetic measurements: every branch.
#include "experiments/thread_memory.hpp"

#include <gtest/gtest.h>

namespace concur::lab::thread_memory {
namespace {

Measurements thread_of(double rss_kib, double vsize_kib = 8200, int count = 1000) {
  return {true, {"CPython 3.11.2 thread", count, rss_kib, vsize_kib}};
}

TEST(ThreadMemoryJudge, ConfirmsKilobytesResidentEvenWithMegabytesReserved) {
  const Judgement j = judge(thread_of(14.2, 13000));
  EXPECT_EQ(j.verdict, Verdict::kConfirmed);
  EXPECT_NE(j.because.find("14.2 KiB resident (kilobytes)"), std::string::npos) << j.because;
  EXPECT_NE(j.because.find("(megabytes, virtual"), std::string::npos) << j.because;
}

TEST(ThreadMemoryJudge, IsPartlyTrueAtAboutAMegabyte) {
  EXPECT_EQ(judge(thread_of(1500)).verdict, Verdict::kPartlyTrue);
}

TEST(ThreadMemoryJudge, RefutesMegabytesPerThread) {
  EXPECT_EQ(judge(thread_of(8192)).verdict, Verdict::kRefuted);
}

TEST(ThreadMemoryJudge, IsInconclusiveWhenNothingGrew) {
  EXPECT_EQ(judge(thread_of(0)).verdict, Verdict::kInconclusive);
  EXPECT_EQ(judge(thread_of(10, 10, 0)).verdict, Verdict::kInconclusive);
}

TEST(ThreadMemoryJudge, SaysWhenTheCppThreadStoodInForCPython) {
  Measurements m = thread_of(10);
  m.from_cpython = false;
  EXPECT_NE(judge(m).because.find("concur's stand-in"), std::string::npos);
}

TEST(ThreadMemoryScale, NamesTheUnitAFigureIsIn) {
  EXPECT_EQ(scale_of(12), "kilobytes");
  EXPECT_EQ(scale_of(8192), "megabytes");
  EXPECT_EQ(scale_of(2.0 * 1024 * 1024), "gigabytes");
}

}  // namespace
}  // namespace concur::lab::thread_memory
