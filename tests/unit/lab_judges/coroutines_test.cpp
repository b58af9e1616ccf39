// The judges of context-switch and c10k, fed synthetic figures (lab/experiments/<name>.hpp).
#include "experiments/c10k.hpp"
#include "experiments/context_switch.hpp"
#include "judge_test_support.hpp"

namespace concur::lab {
namespace {

TEST(ContextSwitchJudge, AnOrderOfMagnitudeConfirmsTheClaim) {
  EXPECT_EQ(context_switch::judge({true, 1e-6, 0.5e-6, 12e-6}).verdict, Verdict::kConfirmed);
}

TEST(ContextSwitchJudge, ACheaperButNotMassivelyCheaperHandOverIsPartlyTrue) {
  // CPython 3.11 here: thread switch / Event hand-over between about 1.3x and 2x.
  EXPECT_EQ(context_switch::judge({true, 10e-6, 8e-6, 18e-6}).verdict, Verdict::kPartlyTrue);
}

TEST(ContextSwitchJudge, OnlyTheBareYieldMuchCheaperIsPartlyTrue) {
  EXPECT_EQ(context_switch::judge({true, 10e-6, 0.5e-6, 10e-6}).verdict, Verdict::kPartlyTrue);
}

TEST(ContextSwitchJudge, NoCheaperCoroutineRefutesTheClaim) {
  const Judgement j = context_switch::judge({true, 10e-6, 9e-6, 10e-6});
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_NE(j.because.find("Neither coroutine form"), std::string::npos) << j.because;
}

TEST(ContextSwitchJudge, AModestlyCheaperYieldStillRefutesButIsNamed) {
  // Seen pinned to one core: Event hand-over level with a thread switch, yield 1.61x cheaper. The
  // explanation must not say that no form was cheaper.
  const Judgement j = context_switch::judge({true, 5.95e-6, 3.66e-6, 5.88e-6});
  EXPECT_EQ(j.verdict, Verdict::kRefuted);
  EXPECT_EQ(j.because.find("Neither coroutine form"), std::string::npos) << j.because;
  EXPECT_NE(j.because.find("the bare yield only 1.61x"), std::string::npos) << j.because;
}

c10k::Measurements served(int connections) {
  c10k::Measurements m;
  m.from_cpython = true;
  m.who = "CPython asyncio";
  m.finished = true;
  m.asked = m.connected = connections;
  m.served_all = true;
  m.threads = 1;
  m.p50_s = 0.002;
  m.p99_s = 0.02;
  m.max_s = 0.05;
  m.burst_per_s = 20'000;
  m.per_connection_kib = 10;  // 98 MiB for 10,000
  m.offered_per_s = connections / c10k::kPacedPeriodS;
  return m;
}

TEST(C10kJudge, TenThousandServedPromptlyInLittleMemoryConfirmTheClaim) {
  EXPECT_EQ(c10k::judge(served(10'000)).verdict, Verdict::kConfirmed);
}

TEST(C10kJudge, FewerConnectionsThanTheClaimIsInconclusive) {
  c10k::Measurements m = served(1'000);
  m.quick = true;
  const Judgement j = c10k::judge(m);
  EXPECT_EQ(j.verdict, Verdict::kInconclusive);
  EXPECT_NE(j.because.find("--quick"), std::string::npos);
}

TEST(C10kJudge, ARunThatDidNotFinishIsInconclusive) {
  c10k::Measurements m;
  m.who = "CPython asyncio";
  m.failure = "the server died";
  EXPECT_EQ(c10k::judge(m).verdict, Verdict::kInconclusive);
}

TEST(C10kJudge, ASlowServerIsPartlyTrueAndSaysWhetherItWasOverloaded) {
  c10k::Measurements m = served(10'000);
  m.p99_s = 0.5;
  m.burst_per_s = 8'000;
  const Judgement j = c10k::judge(m);
  EXPECT_EQ(j.verdict, Verdict::kPartlyTrue);
  EXPECT_NE(j.because.find("requests queued"), std::string::npos);
}

TEST(C10kJudge, TooMuchMemoryIsPartlyTrue) {
  c10k::Measurements m = served(10'000);
  m.per_connection_kib = 100;  // 977 MiB for 10,000
  EXPECT_EQ(c10k::judge(m).verdict, Verdict::kPartlyTrue);
}

TEST(C10kJudge, ConnectionsNotServedRefuteTheClaim) {
  c10k::Measurements m = served(10'000);
  m.connected = 9'000;
  m.served_all = false;
  m.first_error = "connect: Connection refused";
  EXPECT_EQ(c10k::judge(m).verdict, Verdict::kRefuted);
}

}  // namespace
}  // namespace concur::lab
