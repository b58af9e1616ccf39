// Tests of asyncio::wait and AsCompleted (concur/asyncio/tasks.hpp): return_when, timeouts and
// cancellation, as CPython's Lib/test/test_asyncio/test_tasks.py checks them. (Duplicates passed
// to either: asyncio_wait_test.cpp.)
#include <gtest/gtest.h>

#include "asyncio_task_helpers.hpp"

namespace {

using namespace concur::testing::task_helpers;

// ---------------------------------------------------------------------------------------------
// wait

using WaitTest = AsyncioTest;

bool holds(const std::vector<Task<int>>& tasks, const Task<int>& t) {
  for (const Task<int>& x : tasks) {
    if (x.promise() == t.promise()) return true;
  }
  return false;
}

TEST_F(WaitTest, AllCompleted) {
  auto main_task = [&]() -> Task<void> {
    Task<int> a = asyncio::create_task(value_after(1ms, 1));
    Task<int> b = asyncio::create_task(value_after(3ms, 2));
    auto r = co_await asyncio::wait(vec(a, b));
    EXPECT_EQ(r.done.size(), 2u);
    EXPECT_TRUE(r.pending.empty());
    EXPECT_TRUE(a.done());
    EXPECT_TRUE(b.done());
  };
  run(main_task());
}

TEST_F(WaitTest, FirstCompleted) {
  auto main_task = [&]() -> Task<void> {
    Task<int> fast = asyncio::create_task(value_after(1ms, 1));
    Task<int> slow1 = asyncio::create_task(value_after(kLong, 2));
    Task<int> slow2 = asyncio::create_task(value_after(kLong, 3));
    auto r =
        co_await asyncio::wait(vec(slow1, fast, slow2), std::nullopt, ReturnWhen::FIRST_COMPLETED);
    EXPECT_EQ(r.done.size(), 1u);
    EXPECT_TRUE(holds(r.done, fast));
    EXPECT_EQ(r.pending.size(), 2u);
    EXPECT_TRUE(holds(r.pending, slow1));
    EXPECT_TRUE(holds(r.pending, slow2));
    slow1.cancel();
    slow2.cancel();
  };
  run(main_task());
}

TEST_F(WaitTest, FirstCompletedWithOneAlreadyDoneReturnsAtOnce) {
  auto main_task = [&]() -> Task<void> {
    Task<int> finished = asyncio::create_task(value_after(0ns, 1));
    co_await finished;
    Task<int> slow = asyncio::create_task(value_after(kLong, 2));
    auto r = co_await asyncio::wait(vec(finished, slow), std::nullopt, ReturnWhen::FIRST_COMPLETED);
    EXPECT_EQ(r.done.size(), 1u);
    EXPECT_EQ(r.pending.size(), 1u);
    slow.cancel();
  };
  run(main_task());
}

TEST_F(WaitTest, FirstExceptionDoesNotCountACancelledChild) {
  auto main_task = [&]() -> Task<void> {
    Task<int> cancelled = asyncio::create_task(value_after(kLong, 1));
    Task<int> failing = asyncio::create_task(fail_after(5ms, "the exception"));
    Task<int> slow = asyncio::create_task(value_after(kLong, 3));
    co_await turns(1);
    cancelled.cancel();
    auto r = co_await asyncio::wait(vec(cancelled, failing, slow), std::nullopt,
                                    ReturnWhen::FIRST_EXCEPTION);
    EXPECT_TRUE(holds(r.done, cancelled));
    EXPECT_TRUE(holds(r.done, failing)) << "the wait ended at the exception, not the cancel";
    EXPECT_TRUE(holds(r.pending, slow));
    EXPECT_TRUE(is_a<MyError>(failing.exception()));
    slow.cancel();
  };
  run(main_task());
}

TEST_F(WaitTest, FirstExceptionWithoutAnyIsAllCompleted) {
  auto main_task = [&]() -> Task<void> {
    Task<int> a = asyncio::create_task(value_after(1ms, 1));
    Task<int> b = asyncio::create_task(value_after(4ms, 2));
    auto r = co_await asyncio::wait(vec(a, b), std::nullopt, ReturnWhen::FIRST_EXCEPTION);
    EXPECT_EQ(r.done.size(), 2u);
    EXPECT_TRUE(r.pending.empty());
  };
  run(main_task());
}

TEST_F(WaitTest, TimeoutReturnsThePendingOnesWithoutError) {
  auto main_task = [&]() -> Task<void> {
    auto start = Clock::now();
    Task<int> fast = asyncio::create_task(value_after(0ns, 1));
    Task<int> slow = asyncio::create_task(value_after(kLong, 2));
    auto r = co_await asyncio::wait(vec(fast, slow), 10ms);
    EXPECT_TRUE(holds(r.done, fast));
    EXPECT_TRUE(holds(r.pending, slow));
    EXPECT_FALSE(slow.done()) << "wait() does not cancel what is left";
    EXPECT_EQ(slow.cancelling(), 0);
    EXPECT_LT(Clock::now() - start, kLong / 4);
    slow.cancel();
  };
  run(main_task());
}

TEST_F(WaitTest, EmptySetIsInvalidArgument) {
  auto main_task = [&]() -> Task<void> {
    EXPECT_THROW((void)co_await asyncio::wait(std::vector<Task<int>>()), std::invalid_argument);
  };
  run(main_task());
}

TEST_F(WaitTest, ACancelPendingIsDeliveredOnceAtTheWait) {
  auto main_task = [&]() -> Task<void> {
    Task<int> child = asyncio::create_task(value_after(kLong, 1));
    asyncio::current_task()->cancel();
    bool returned = false;
    try {
      (void)co_await asyncio::wait(vec(child));
      returned = true;
    } catch (const CancelledError&) {
    }
    EXPECT_FALSE(returned) << "wait() returned although the task was cancelled";
    co_await asyncio::sleep(0ns);  // delivered once: the task goes on after catching it
    EXPECT_FALSE(child.done()) << "wait() leaves the children alone";
    EXPECT_EQ(asyncio::current_task()->uncancel(), 0);
    child.cancel();
  };
  run(main_task());
}

TEST_F(WaitTest, CancellingTheWaiterLeavesTheChildrenAlone) {
  auto main_task = [&]() -> Task<void> {
    Task<int> child = asyncio::create_task(value_after(5ms, 4));
    auto w = asyncio::create_task(asyncio::wait(vec(child)));
    co_await turns(1);
    w.cancel();
    EXPECT_THROW((void)co_await w, CancelledError);
    EXPECT_FALSE(child.done());
    EXPECT_EQ(child.cancelling(), 0);
    int v = co_await child;
    EXPECT_EQ(v, 4);
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// AsCompleted

using AsCompletedTest = AsyncioTest;

TEST_F(AsCompletedTest, YieldsInCompletionOrder) {
  auto main_task = [&]() -> Task<void> {
    asyncio::Event e1, e2, e3;
    asyncio::AsCompleted<int> ac(vec(value_when(&e3, 3), value_when(&e1, 1), value_when(&e2, 2)));
    Task<void> releaser = asyncio::create_task(release_in_order({&e1, &e2, &e3}));
    std::vector<int> order;
    while (ac.has_next()) {
      Task<int> t = co_await ac.next();
      EXPECT_TRUE(t.done());
      order.push_back(t.result());
    }
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    co_await releaser;
  };
  run(main_task());
}

TEST_F(AsCompletedTest, FailedTaskIsYieldedAndItsResultRethrows) {
  auto main_task = [&]() -> Task<void> {
    asyncio::AsCompleted<int> ac(vec(value_after(5ms, 1), fail_after(0ns, "early")));
    Task<int> first = co_await ac.next();
    EXPECT_THROW(first.result(), MyError);
    Task<int> second = co_await ac.next();
    EXPECT_EQ(second.result(), 1);
    EXPECT_FALSE(ac.has_next());
  };
  run(main_task());
}

TEST_F(AsCompletedTest, TimeoutErrorWhenTheTimeoutPassesFirst) {
  auto main_task = [&]() -> Task<void> {
    auto start = Clock::now();
    Task<int> slow = asyncio::create_task(value_after(kLong, 2));
    asyncio::AsCompleted<int> ac(vec(value_after(0ns, 1), slow), 10ms);
    Task<int> first = co_await ac.next();
    EXPECT_EQ(first.result(), 1);
    EXPECT_THROW_MSG((void)co_await ac.next(), TimeoutError, "1 task(s) still running");
    EXPECT_TRUE(ac.has_next());
    EXPECT_FALSE(slow.done());
    EXPECT_LT(Clock::now() - start, kLong / 4);
    slow.cancel();
  };
  run(main_task());
}

TEST_F(AsCompletedTest, NextWhenNoneIsLeftIsOutOfRange) {
  auto main_task = [&]() -> Task<void> {
    asyncio::AsCompleted<int> ac(vec(value_after(0ns, 1)));
    (void)co_await ac.next();
    EXPECT_FALSE(ac.has_next());
    EXPECT_THROW((void)co_await ac.next(), std::out_of_range);
  };
  run(main_task());
}

}  // namespace
