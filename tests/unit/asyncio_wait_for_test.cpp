// Tests of asyncio::wait_for (concur/asyncio/tasks.hpp), carried over from CPython's
// Lib/test/test_asyncio/test_waitfor.py.
#include <gtest/gtest.h>

#include "asyncio_task_helpers.hpp"

namespace {

using namespace concur::testing::task_helpers;

// ---------------------------------------------------------------------------------------------
// wait_for

using WaitForTest = AsyncioTest;

TEST_F(WaitForTest, CompletesBeforeTheTimeout) {
  auto main_task = [&]() -> Task<void> {
    int a = co_await asyncio::wait_for(value_after(1ms, 3), kLong);
    EXPECT_EQ(a, 3);
    int b = co_await asyncio::wait_for(value_after(1ms, 4), std::nullopt);
    EXPECT_EQ(b, 4);
    Task<int> spawned = asyncio::create_task(value_after(1ms, 5));
    int c = co_await asyncio::wait_for(spawned, kLong);
    EXPECT_EQ(c, 5);
    EXPECT_THROW_MSG((void)co_await asyncio::wait_for(fail_after(0ns, "inner"), kLong), MyError,
                     "inner");
  };
  run(main_task());
}

TEST_F(WaitForTest, ExpiryCancelsTheTaskAndWaitsForItToUnwind) {
  auto main_task = [&]() -> Task<void> {
    bool unwound = false;
    auto inner = [&]() -> Task<int> {
      bool cancelled = false;
      try {
        co_await asyncio::sleep(kLong);
      } catch (const CancelledError&) {
        cancelled = true;
      }
      if (cancelled) {
        co_await asyncio::sleep(1ms);  // slow cleanup: wait_for must wait for it
        unwound = true;
        throw CancelledError("unwound");
      }
      co_return 1;
    };
    auto start = Clock::now();
    Task<int> t = asyncio::create_task(inner());
    EXPECT_THROW((void)co_await asyncio::wait_for(t, 2ms), TimeoutError);
    EXPECT_TRUE(unwound);
    EXPECT_TRUE(t.cancelled());
    EXPECT_LT(Clock::now() - start, kLong / 4);
  };
  run(main_task());
}

TEST_F(WaitForTest, ZeroTimeout) {
  auto main_task = [&]() -> Task<void> {
    bool ran = false;
    EXPECT_THROW(co_await asyncio::wait_for(set_flag(&ran), 0ns), TimeoutError);
    EXPECT_FALSE(ran) << "a coroutine is not started with a zero timeout";

    Task<int> finished = asyncio::create_task(value_after(0ns, 6));
    co_await finished;
    int v = co_await asyncio::wait_for(finished, 0ns);
    EXPECT_EQ(v, 6);

    for (auto timeout : {0ns, -1000000000ns}) {
      int cancels = 0;
      Task<void> running = asyncio::create_task(sleeper(kLong, &cancels));
      co_await turns(1);
      EXPECT_THROW(co_await asyncio::wait_for(running, timeout), TimeoutError);
      EXPECT_TRUE(running.cancelled());
      EXPECT_EQ(cancels, 1);
    }

    int swallowed = 0;
    Task<int> stubborn = asyncio::create_task(swallow_cancel(kLong, 9, &swallowed));
    co_await turns(1);
    int w = co_await asyncio::wait_for(stubborn, 0ns);
    EXPECT_EQ(w, 9) << "a task that swallows the cancel wins over a zero timeout";
  };
  run(main_task());
}

TEST_F(WaitForTest, ATaskThatIgnoresItsCancellationWins) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    int v = co_await asyncio::wait_for(swallow_cancel(kLong, 42, &cancels), 2ms);
    EXPECT_EQ(v, 42);
    Task<int> spawned = asyncio::create_task(swallow_cancel(kLong, 43, &cancels));
    int w = co_await asyncio::wait_for(spawned, 2ms);
    EXPECT_EQ(w, 43);
    EXPECT_EQ(cancels, 2);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(WaitForTest, CancellingTheWaiterCancelsTheTask) {
  // CPython issue #23219, with and without a timeout.
  auto main_task = [&]() -> Task<void> {
    for (std::optional<std::chrono::nanoseconds> timeout :
         {std::optional<std::chrono::nanoseconds>(kLong),
          std::optional<std::chrono::nanoseconds>()}) {
      Task<int> inner = asyncio::create_task(value_after(kLong, 1));
      Task<int> w = asyncio::create_task(asyncio::wait_for(inner, timeout));
      co_await turns(1);
      w.cancel();
      EXPECT_THROW((void)co_await w, CancelledError);
      EXPECT_TRUE(inner.cancelled());
    }
  };
  run(main_task());
}

TEST_F(WaitForTest, ExceptionRaisedDuringTheCancellationPropagates) {
  auto inner = []() -> Task<void> {
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
    }
    throw OtherError("raised while cancelled");
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(inner());
    EXPECT_THROW(co_await asyncio::wait_for(t, 1ms), OtherError);
  };
  run(main_task());
}

TEST_F(WaitForTest, WaiterCancelledBeforeStartLeavesTheTaskRunning) {
  // CPython's test_wait_for_self_cancellation.
  auto inner = []() -> Task<int> {
    for (int i = 0; i < 2; ++i) {
      try {
        co_await asyncio::sleep(2ms);
      } catch (const CancelledError&) {
      }
    }
    co_return 42;
  };
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(inner());
    Task<int> w = asyncio::create_task(asyncio::wait_for(t, 1ms));
    w.cancel();
    EXPECT_THROW((void)co_await w, CancelledError);
    int v = co_await t;
    EXPECT_EQ(v, 42);
  };
  run(main_task());
}

TEST_F(WaitForTest, ALaterCancelIsNotEatenByAFinishedWaitFor) {
  // CPython issue #86296.
  bool reached_end = false;
  auto body = [&]() -> Task<void> {
    int v = co_await asyncio::wait_for(value_after(0ns, 1), kLong);
    EXPECT_EQ(v, 1);
    co_await asyncio::sleep(kLong);
    reached_end = true;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(body());
    co_await turns(3);
    EXPECT_FALSE(t.done());
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(reached_end);
  };
  run(main_task());
}

}  // namespace
