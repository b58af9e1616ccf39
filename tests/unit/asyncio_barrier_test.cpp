// Tests of concur/asyncio/barrier.hpp, Python 3.11's asyncio.Barrier: the cases of CPython's
// Lib/test/test_asyncio/test_locks.py (BarrierTests, 3.13), carried over.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Barrier;
using asyncio::BrokenBarrierError;
using asyncio::Task;
using concur::CancelledError;
using concur::testing::AsyncioTest;

constexpr std::size_t kN = 5;  // CPython's self.N

using BarrierTest = AsyncioTest;

std::vector<std::size_t> iota(std::size_t n) {
  std::vector<std::size_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = i;
  return out;
}

// Runs n copies of coro(barrier, ...) as tasks and gathers their results.
template <class F, class... A>
Task<std::vector<std::size_t>> gather_tasks(std::size_t n, F coro, A... args) {
  std::vector<Task<std::size_t>> tasks;
  for (std::size_t i = 0; i < n; ++i) tasks.push_back(asyncio::create_task(coro(args...)));
  co_return co_await asyncio::gather(std::move(tasks));
}

TEST_F(BarrierTest, PartiesMustBePositive) {
  // CPython's test_barrier_parties.
  EXPECT_THROW_MSG(Barrier(0), std::invalid_argument, "parties must be > 0");
  Barrier b(kN);
  EXPECT_EQ(b.parties(), kN);
  EXPECT_EQ(b.state(), Barrier::State::filling);
}

Task<std::size_t> wait_once(Barrier* b) {
  co_return co_await b->wait();
}

TEST_F(BarrierTest, EachTaskOfARoundGetsADistinctIndex) {
  // CPython's test_context_manager.
  Barrier barrier(3);
  auto main_task = [&]() -> Task<void> {
    std::vector<std::size_t> got = co_await gather_tasks(3, wait_once, &barrier);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, iota(3));
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_FALSE(barrier.broken());
  };
  run(main_task());
}

TEST_F(BarrierTest, OnePartyNeverWaits) {
  // CPython's test_filling_one_task and test_filling_one_task_twice.
  Barrier barrier(1);
  auto main_task = [&]() -> Task<void> {
    EXPECT_EQ(co_await barrier.wait(), 0u);
    Task<std::size_t> t1 = asyncio::create_task(barrier.wait());
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(barrier.n_waiting(), 0u);
    Task<std::size_t> t2 = asyncio::create_task(barrier.wait());
    co_await asyncio::sleep(0ns);
    EXPECT_TRUE(t1.done() && t2.done());
    if (t1.done() && t2.done()) {
      EXPECT_EQ(t1.result(), t2.result());
    }
    EXPECT_FALSE(barrier.broken());
  };
  run(main_task());
}

TEST_F(BarrierTest, FillsTaskByTask) {
  // CPython's test_filling_task_by_task.
  Barrier barrier(3);
  auto main_task = [&]() -> Task<void> {
    Task<std::size_t> t1 = asyncio::create_task(barrier.wait());
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(barrier.n_waiting(), 1u);
    Task<std::size_t> t2 = asyncio::create_task(barrier.wait());
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(barrier.n_waiting(), 2u);
    EXPECT_EQ(barrier.state(), Barrier::State::filling);
    Task<std::size_t> t3 = asyncio::create_task(barrier.wait());
    co_await asyncio::gather(t1, t2, t3);
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_FALSE(barrier.broken());
  };
  run(main_task());
}

Task<std::size_t> wait_twice(Barrier* b, std::vector<bool>* results) {
  co_await b->wait();
  results->push_back(true);
  std::size_t i = co_await b->wait();
  results->push_back(false);
  co_return i;
}

TEST_F(BarrierTest, ATaskCanWaitAgainInTheNextRound) {
  // CPython's test_filling_tasks_wait_twice and test_filling_tasks_check_return_value.
  Barrier barrier(kN);
  std::vector<bool> results;
  auto main_task = [&]() -> Task<void> {
    std::vector<std::size_t> got = co_await gather_tasks(kN, wait_twice, &barrier, &results);
    EXPECT_EQ(results.size(), 2 * kN);
    EXPECT_EQ(static_cast<std::size_t>(std::count(results.begin(), results.end(), true)), kN);
    EXPECT_TRUE(std::all_of(results.begin(), results.begin() + kN, [](bool b) { return b; }))
        << "nobody passed the second wait before all passed the first";
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, iota(kN));
    EXPECT_EQ(barrier.n_waiting(), 0u);
  };
  run(main_task());
}

Task<std::size_t> note_draining(Barrier* b, std::vector<bool>* draining) {
  std::size_t i = co_await b->wait();
  draining->push_back(b->state() == Barrier::State::draining);
  co_return i;
}

TEST_F(BarrierTest, DrainsUntilTheLastTaskHasLeft) {
  // CPython's test_draining_state.
  Barrier barrier(kN);
  std::vector<bool> draining;
  auto main_task = [&]() -> Task<void> {
    co_await gather_tasks(kN, note_draining, &barrier, &draining);
    EXPECT_EQ(draining.size(), kN);
    if (draining.size() != kN) co_return;
    EXPECT_FALSE(draining.back());
    EXPECT_TRUE(std::all_of(draining.begin(), draining.end() - 1, [](bool d) { return d; }));
  };
  run(main_task());
}

Task<std::size_t> rewait_or_block(Barrier* b, Barrier* others, int* rewait) {
  co_await b->wait();
  if (*rewait > 0) {
    --*rewait;
    co_await b->wait();
  } else {
    co_await others->wait();  // the others have left the draining round by now
    co_await b->wait();
  }
  co_return 0;
}

TEST_F(BarrierTest, ATaskWaitingAgainWhileDrainingWaitsForTheNextRound) {
  // CPython's test_blocking_tasks_while_draining.
  Barrier barrier(kN);
  Barrier others(kN - 2);
  int rewait = 2;
  auto main_task = [&]() -> Task<void> {
    co_await gather_tasks(kN, rewait_or_block, &barrier, &others, &rewait);
    EXPECT_EQ(barrier.n_waiting(), 0u);
  };
  run(main_task());
}

Task<void> wait_and_note(Barrier* b, int* passed) {
  co_await b->wait();
  ++*passed;
}

TEST_F(BarrierTest, ACancelledWaiterLeavesTheRound) {
  // CPython's test_filling_tasks_cancel_one.
  Barrier barrier(3);
  int passed = 0;
  auto main_task = [&]() -> Task<void> {
    Task<void> t1 = asyncio::create_task(wait_and_note(&barrier, &passed));
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(barrier.n_waiting(), 1u);
    Task<void> t2 = asyncio::create_task(wait_and_note(&barrier, &passed));
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(barrier.n_waiting(), 2u);
    t1.cancel();
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(barrier.n_waiting(), 1u);
    EXPECT_THROW(co_await t1, CancelledError);
    EXPECT_TRUE(t1.cancelled());
    Task<void> t3 = asyncio::create_task(wait_and_note(&barrier, &passed));
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(barrier.n_waiting(), 2u);
    Task<void> t4 = asyncio::create_task(wait_and_note(&barrier, &passed));
    co_await asyncio::gather(t2, t3, t4);
    EXPECT_EQ(passed, 3);
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_FALSE(barrier.broken());
  };
  run(main_task());
}

Task<std::size_t> wait_expect_broken(Barrier* b, int* broken) {
  try {
    co_await b->wait();
  } catch (const BrokenBarrierError&) {
    ++*broken;
  }
  co_return 0;
}

TEST_F(BarrierTest, ResetBreaksTheWaitersAndRefillsTheBarrier) {
  // CPython's test_reset_barrier and test_reset_barrier_while_tasks_waiting.
  Barrier barrier(kN);
  int broken = 0;
  auto main_task = [&]() -> Task<void> {
    co_await barrier.reset();
    EXPECT_EQ(barrier.state(), Barrier::State::filling);
    std::vector<Task<std::size_t>> tasks;
    for (std::size_t i = 0; i + 1 < kN; ++i) {
      tasks.push_back(asyncio::create_task(wait_expect_broken(&barrier, &broken)));
    }
    co_await asyncio::sleep(0ns);
    Task<void> resetter = asyncio::create_task(barrier.reset());
    co_await asyncio::gather(std::move(tasks));
    co_await resetter;
    EXPECT_EQ(broken, static_cast<int>(kN - 1));
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_EQ(barrier.state(), Barrier::State::filling);
    EXPECT_FALSE(barrier.broken());
  };
  run(main_task());
}

Task<std::size_t> abort_or_rewait(Barrier* b, std::size_t blocking, std::size_t* count,
                                  int* drained_broken, int* blocked_broken) {
  try {
    co_await b->wait();
  } catch (const BrokenBarrierError&) {
    ++*drained_broken;  // waiting to drain when the barrier broke
    co_return 0;
  }
  if (++*count > blocking) {
    co_await b->abort();
  } else {
    try {
      co_await b->wait();
    } catch (const BrokenBarrierError&) {
      ++*blocked_broken;  // already drained, waiting in the next round
    }
  }
  co_return 0;
}

TEST_F(BarrierTest, AbortBreaksEveryWaiterAndLaterWaits) {
  // CPython's test_abort_barrier and test_abort_barrier_when_tasks_half_draining_half_blocking.
  auto main_task = [&]() -> Task<void> {
    Barrier one(1);
    co_await one.abort();
    EXPECT_TRUE(one.broken());
    EXPECT_EQ(one.n_waiting(), 0u);
    EXPECT_THROW_MSG(co_await one.wait(), BrokenBarrierError, "reset() it first");

    Barrier barrier(kN);
    std::size_t blocking = kN / 2;
    std::size_t count = 0;
    int drained_broken = 0;
    int blocked_broken = 0;
    co_await gather_tasks(kN, abort_or_rewait, &barrier, blocking, &count, &drained_broken,
                          &blocked_broken);
    EXPECT_TRUE(barrier.broken());
    // Those still leaving the full round when it broke, and those waiting in the next one.
    EXPECT_EQ(drained_broken, static_cast<int>(blocking));
    EXPECT_EQ(blocked_broken, static_cast<int>(kN - blocking - 1));
    EXPECT_EQ(barrier.n_waiting(), 0u);
  };
  run(main_task());
}

}  // namespace
