// task_group_limited() (concur/asyncio/task_group_limited.hpp): a TaskGroup whose children run
// at most `limit` at a time (the bounded fan-out of Python issue gh-115201), with TaskGroup's
// failure and cancellation semantics (CPython's test_taskgroup.py as the model) and one more
// rule: a child cancelled while it waits for a slot never runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "asyncio_fan_out_helpers.hpp"
#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace concur::testing::fan_out;
using asyncio::LimitedTaskGroup;
using concur::ExceptionGroup;
using concur::testing::AsyncioTest;

using TaskGroupLimited = AsyncioTest;

TEST_F(TaskGroupLimited, AtMostLimitRunAtOnceStartingInCreationOrder) {
  Tally t;
  std::size_t most_seen_by_group = 0;
  auto body = [&]() -> Task<void> {
    std::vector<Task<int>> children;
    co_await asyncio::task_group_limited(3, [&](LimitedTaskGroup& tg) -> Task<void> {
      // Uneven naps, so that later children may end before earlier ones.
      for (int i = 0; i < 10; ++i) {
        children.push_back(tg.create_task(job(&t, i, std::chrono::milliseconds(1 + (i * 7) % 5))));
      }
      EXPECT_EQ(tg.size(), 10u) << "every child is a task at once";
      EXPECT_EQ(tg.limit(), 3u);
      while (tg.size() > 0) {
        most_seen_by_group = std::max(most_seen_by_group, tg.running());
        co_await asyncio::sleep(1ms);
      }
    });
    for (int i = 0; i < 10; ++i) EXPECT_EQ(children[i].result(), i * 10);
  };
  run(body());
  EXPECT_EQ(t.most, 3);
  EXPECT_LE(most_seen_by_group, 3u);
  EXPECT_EQ(t.started, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(t.finished.size(), 10u);
}

TEST_F(TaskGroupLimited, ALimitOfOneRunsThemOneAfterAnother) {
  Tally t;
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group_limited(1, [&](LimitedTaskGroup& tg) -> Task<void> {
      for (int i = 0; i < 5; ++i) tg.create_task(job(&t, i, 1ms));
      co_return;
    });
  };
  run(body());
  EXPECT_EQ(t.most, 1);
  EXPECT_EQ(t.finished, (std::vector<int>{0, 1, 2, 3, 4}));
}

// test_taskgroup.py's test_taskgroup_01/02 semantics, plus: the waiting ones never start.
TEST_F(TaskGroupLimited, TheFirstFailureCancelsTheRunningAndTheWaitingNeverRun) {
  Tally t;
  bool body_cancelled = false;
  auto body = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group_limited(2, [&](LimitedTaskGroup& tg) -> Task<void> {
        tg.create_task(job(&t, 0, 1ms, /*fail=*/true));
        tg.create_task(job(&t, 1, kLong));
        for (int i = 2; i < 6; ++i) tg.create_task(job(&t, i, kLong));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
          body_cancelled = true;
          throw;
        }
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 1u);
    }
    EXPECT_EQ(groups, 1);
  };
  const auto start = std::chrono::steady_clock::now();
  run(body());
  EXPECT_LT(std::chrono::steady_clock::now() - start, kLong / 4);
  EXPECT_TRUE(body_cancelled);
  // Job 0 failed while job 1 ran; the failure released 0's slot, and the child first in line may
  // have been handed it before the cancellation reached it. No other job started.
  ASSERT_GE(t.started.size(), 2u);
  EXPECT_LE(t.started.size(), 3u);
  EXPECT_EQ(t.started[0], 0);
  EXPECT_EQ(t.started[1], 1);
  EXPECT_EQ(t.cancelled.size(), t.started.size() - 1) << "every started job but 0 was cancelled";
  EXPECT_EQ(t.running, 0);
}

TEST_F(TaskGroupLimited, CancellingTheParentCancelsRunningAndWaitingChildren) {
  Tally t;
  auto body = [&]() -> Task<void> {
    Task<void> parent = asyncio::create_task([&]() -> Task<void> {
      co_await asyncio::task_group_limited(2, [&](LimitedTaskGroup& tg) -> Task<void> {
        for (int i = 0; i < 5; ++i) tg.create_task(job(&t, i, kLong));
        co_return;
      });
    }());
    while (t.started.size() < 2) co_await asyncio::sleep(1ms);
    parent.cancel();
    EXPECT_THROW(co_await parent, CancelledError);
    EXPECT_TRUE(parent.cancelled());
  };
  run(body());
  EXPECT_EQ(t.started, (std::vector<int>{0, 1}));
  EXPECT_EQ(t.cancelled.size(), 2u);
  EXPECT_EQ(t.running, 0);
}

// Python 3.15's TaskGroup.cancel(): the group ends without CancelledError.
TEST_F(TaskGroupLimited, CancelEndsTheGroupQuietlyAndWaitingChildrenNeverRun) {
  Tally t;
  bool after = false;
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group_limited(1, [&](LimitedTaskGroup& tg) -> Task<void> {
      for (int i = 0; i < 4; ++i) tg.create_task(job(&t, i, kLong));
      while (t.started.empty()) co_await asyncio::sleep(1ms);
      tg.cancel();
      co_return;
    });
    after = true;
  };
  run(body());
  EXPECT_TRUE(after);
  EXPECT_EQ(t.started, (std::vector<int>{0}));
  EXPECT_EQ(t.cancelled, (std::vector<int>{0}));
}

TEST_F(TaskGroupLimited, AChildCancelledWhileWaitingForASlotNeverRunsAndTheOthersGoOn) {
  Tally t;
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group_limited(1, [&](LimitedTaskGroup& tg) -> Task<void> {
      tg.create_task(job(&t, 0, 5ms));
      Task<int> waiting = tg.create_task(job(&t, 1, 1ms));
      tg.create_task(job(&t, 2, 1ms));
      co_await asyncio::sleep(0ms);
      waiting.cancel();
      EXPECT_THROW(co_await waiting, CancelledError);
    });
  };
  run(body());
  EXPECT_EQ(t.started, (std::vector<int>{0, 2}));
  EXPECT_EQ(t.finished, (std::vector<int>{0, 2}));
}

TEST_F(TaskGroupLimited, ARunningTaskAndALimitOfZeroAreRefused) {
  auto body = [&]() -> Task<void> {
    EXPECT_THROW(
        co_await asyncio::task_group_limited(0, [](LimitedTaskGroup&) -> Task<void> { co_return; }),
        std::invalid_argument);
    Tally t;
    co_await asyncio::task_group_limited(2, [&](LimitedTaskGroup& tg) -> Task<void> {
      Task<int> running = asyncio::create_task(job(&t, 0, 1ms));
      EXPECT_THROW(tg.create_task(std::move(running)), std::invalid_argument);
      // Refused, it stays with the caller, still running (ASan caught the first version of this
      // test, which let it run on after `t` was gone).
      EXPECT_TRUE(running.valid());
      if (running.valid()) {
        EXPECT_EQ(co_await running, 0);
      }
    });
    EXPECT_EQ(t.finished, (std::vector<int>{0}));
  };
  run(body());
}

TEST_F(TaskGroupLimited, AFailureOfTheBodyCancelsEveryChild) {
  Tally t;
  auto body = [&]() -> Task<void> {
    EXPECT_THROW(co_await asyncio::task_group_limited(2,
                                                      [&](LimitedTaskGroup& tg) -> Task<void> {
                                                        for (int i = 0; i < 4; ++i)
                                                          tg.create_task(job(&t, i, kLong));
                                                        co_await asyncio::sleep(1ms);
                                                        throw std::runtime_error("body failed");
                                                      }),
                 ExceptionGroup);
  };
  run(body());
  EXPECT_EQ(t.started, (std::vector<int>{0, 1}));
  EXPECT_EQ(t.cancelled.size(), 2u);
}

}  // namespace
