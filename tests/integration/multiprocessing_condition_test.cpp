// multiprocessing::Condition with real processes: the cases of CPython's _test_multiprocessing.py
// _TestCondition (test_notify, test_notify_all, test_notify_n, test_timeout, test_waitfor,
// test_waitfor_timeout) carried over, plus the errors Python raises for misuse.
#include <gtest/gtest.h>

#include <chrono>
#include <concur/errors.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/multiprocessing/synchronize.hpp>
#include <mutex>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;

// Counts itself as sleeping, waits on the condition (30 s at most), counts itself as woken.
void sleep_on(mp::Condition cond, mp::SharedArray<int> counts) {
  std::lock_guard hold(cond);
  counts[0] += 1;                      // sleeping
  if (cond.wait(30s)) counts[1] += 1;  // woken by a notify
}
CONCUR_REGISTER(sleep_on);

// test_waitfor's child: waits until the shared value is 4, then reports what wait_for returned.
void wait_for_four(mp::Condition cond, mp::SharedArray<int> state) {
  std::lock_guard hold(cond);
  const bool reached = cond.wait_for([&] { return state[0] == 4; }, 30s);
  state[1] = reached ? 1 : -1;
}
CONCUR_REGISTER(wait_for_four);

namespace {

// Waits (outside the condition) until `pred` holds, bounded.
template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

std::vector<mp::Process> start_sleepers(int n, mp::Condition& cond, mp::SharedArray<int>& counts) {
  std::vector<mp::Process> sleepers;
  for (int i = 0; i < n; ++i) {
    sleepers.emplace_back(mp::ProcessOptions{.start_method = mp::StartMethod::forkserver}, sleep_on,
                          cond, counts);
    sleepers.back().start();
  }
  return sleepers;
}

int at(mp::SharedArray<int>& a, std::size_t i) {
  return a[i];
}

// test_notify: each notify() wakes one sleeper.
TEST(Condition, NotifyWakesOneSleeperAtATime) {
  mp::Condition cond;
  mp::SharedArray<int> counts(2);
  auto sleepers = start_sleepers(2, cond, counts);
  ASSERT_TRUE(eventually([&] { return at(counts, 0) == 2; }));
  {
    std::lock_guard hold(cond);  // a sleeper counted itself before waiting, under the lock
    cond.notify();
  }
  ASSERT_TRUE(eventually([&] { return at(counts, 1) >= 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(at(counts, 1), 1) << "one notify() woke more than one sleeper";
  {
    std::lock_guard hold(cond);
    cond.notify();
  }
  ASSERT_TRUE(eventually([&] { return at(counts, 1) == 2; }));
  for (auto& p : sleepers) p.join();
}

// test_notify_all and test_notify_n.
TEST(Condition, NotifyNWakesNAndNotifyAllWakesTheRest) {
  mp::Condition cond;
  mp::SharedArray<int> counts(2);
  auto sleepers = start_sleepers(4, cond, counts);
  ASSERT_TRUE(eventually([&] { return at(counts, 0) == 4; }));
  {
    std::lock_guard hold(cond);
    cond.notify(2);
  }
  ASSERT_TRUE(eventually([&] { return at(counts, 1) >= 2; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(at(counts, 1), 2);
  {
    std::lock_guard hold(cond);
    cond.notify_all();
  }
  ASSERT_TRUE(eventually([&] { return at(counts, 1) == 4; }));
  for (auto& p : sleepers) p.join();
}

// test_timeout.
TEST(Condition, AWaitNobodyNotifiesTimesOutWithTheLockHeldAgain) {
  mp::Condition cond;
  std::lock_guard hold(cond);
  EXPECT_FALSE(cond.wait(50ms));
  cond.notify();  // still held: no error
}

// test_waitfor: the child waits until the value is 4, set step by step here under the lock.
TEST(Condition, WaitForReturnsOnceThePredicateHolds) {
  mp::Condition cond;
  mp::SharedArray<int> state(2);
  mp::Process child({.start_method = mp::StartMethod::spawn}, wait_for_four, cond, state);
  child.start();
  for (int i = 1; i <= 4; ++i) {
    std::this_thread::sleep_for(20ms);
    std::lock_guard hold(cond);
    state[0] = i;
    cond.notify();
  }
  child.join();
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_EQ(at(state, 1), 1);
}

// test_waitfor_timeout: the predicate's last value comes back when the time is up.
TEST(Condition, WaitForTimesOutWithThePredicatesLastValue) {
  mp::Condition cond;
  std::lock_guard hold(cond);
  int calls = 0;
  const int value = cond.wait_for([&] { return ++calls >= 100 ? 1 : 0; }, 50ms);
  EXPECT_EQ(value, 0);
  EXPECT_GE(calls, 2);
}

TEST(Condition, AnRLockIsHeldAtTheSameDepthAfterAWait) {
  mp::RLock lock;
  mp::Condition cond(lock);
  cond.acquire();
  cond.acquire();
  EXPECT_FALSE(cond.wait(20ms));
  cond.release();
  cond.release();  // both levels were restored: two releases, no error
  EXPECT_THROW(cond.release(), concur::RuntimeError);
}

TEST(Condition, WaitAndNotifyWithoutTheLockAreRuntimeErrors) {
  mp::Condition cond{mp::Lock()};
  EXPECT_THROW_MSG(cond.wait(10ms), concur::RuntimeError, "un-acquired lock");
  EXPECT_THROW_MSG(cond.notify(), concur::RuntimeError, "un-acquired lock");
  EXPECT_THROW_MSG(cond.notify_all(), concur::RuntimeError, "un-acquired lock");
}

}  // namespace

int main(int argc, char** argv) {
  mp::main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
