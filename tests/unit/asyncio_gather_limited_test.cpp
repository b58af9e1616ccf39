// gather_limited() (concur/asyncio/gather_limited.hpp): gather() with at most `limit` children
// running at once (the bounded fan-out of Python issue gh-115201), with gather()'s results,
// failure and cancellation semantics (CPython's test_tasks.py gather cases as the model).
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
using concur::testing::AsyncioTest;

using GatherLimited = AsyncioTest;

TEST_F(GatherLimited, AtMostLimitRunAtOnceInOrderAndResultsKeepInputOrder) {
  Tally t;
  auto body = [&]() -> Task<void> {
    std::vector<Task<int>> jobs;
    // Uneven naps, so that later jobs may finish before earlier ones.
    for (int i = 0; i < 10; ++i)
      jobs.push_back(job(&t, i, std::chrono::milliseconds(1 + (i * 7) % 5)));
    std::vector<int> got = co_await asyncio::gather_limited(3, std::move(jobs));
    std::vector<int> want;
    for (int i = 0; i < 10; ++i) want.push_back(i * 10);
    EXPECT_EQ(got, want);
  };
  run(body());
  EXPECT_EQ(t.most, 3);
  EXPECT_EQ(t.started, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST_F(GatherLimited, ALimitAboveTheCountRunsThemAllAtOnce) {
  Tally t;
  auto body = [&]() -> Task<void> {
    std::vector<Task<int>> jobs;
    for (int i = 0; i < 4; ++i) jobs.push_back(job(&t, i, 1ms));
    EXPECT_EQ((co_await asyncio::gather_limited(100, std::move(jobs))).size(), 4u);
  };
  run(body());
  EXPECT_EQ(t.most, 4);
}

TEST_F(GatherLimited, TheFirstFailureCancelsTheRunningAndNeverStartsTheRest) {
  Tally t;
  auto body = [&]() -> Task<void> {
    std::vector<Task<int>> jobs;
    jobs.push_back(job(&t, 0, kLong));
    jobs.push_back(job(&t, 1, 1ms, /*fail=*/true));
    for (int i = 2; i < 8; ++i) jobs.push_back(job(&t, i, kLong));
    EXPECT_THROW_MSG(co_await asyncio::gather_limited(2, std::move(jobs)), std::runtime_error,
                     "job 1 failed");
  };
  run(body());
  EXPECT_EQ(t.started, (std::vector<int>{0, 1})) << "a job started after the failure";
  EXPECT_EQ(t.cancelled, (std::vector<int>{0}));
  EXPECT_EQ(t.running, 0) << "it returned before the running jobs had ended";
}

TEST_F(GatherLimited, CancellingTheGatherCancelsTheRunningAndNeverStartsTheRest) {
  Tally t;
  auto body = [&]() -> Task<void> {
    std::vector<Task<int>> jobs;
    for (int i = 0; i < 6; ++i) jobs.push_back(job(&t, i, kLong));
    Task<std::vector<int>> g = asyncio::create_task(asyncio::gather_limited(2, std::move(jobs)));
    co_await asyncio::sleep(1ms);
    EXPECT_EQ(t.running, 2);
    g.cancel();
    EXPECT_THROW(co_await g, CancelledError);
    EXPECT_TRUE(g.cancelled());
  };
  run(body());
  EXPECT_EQ(t.started, (std::vector<int>{0, 1}));
  std::sort(t.cancelled.begin(), t.cancelled.end());
  EXPECT_EQ(t.cancelled, (std::vector<int>{0, 1}));
  EXPECT_EQ(t.running, 0);
}

TEST_F(GatherLimited, VoidTasksAndAnEmptyListWork) {
  int done = 0;
  auto body = [&]() -> Task<void> {
    std::vector<Task<void>> jobs;
    for (int i = 0; i < 5; ++i) {
      jobs.push_back([](int* d) -> Task<void> {
        co_await asyncio::sleep(0ns);
        ++*d;
      }(&done));
    }
    co_await asyncio::gather_limited(2, std::move(jobs));
    EXPECT_TRUE((co_await asyncio::gather_limited(2, std::vector<Task<int>>{})).empty());
  };
  run(body());
  EXPECT_EQ(done, 5);
}

TEST_F(GatherLimited, ALimitOfZeroAndARunningTaskAreRefused) {
  Tally t;
  auto body = [&]() -> Task<void> {
    std::vector<Task<int>> none;
    none.push_back(job(&t, 0, 0ns));
    EXPECT_THROW_MSG(co_await asyncio::gather_limited(0, std::move(none)), std::invalid_argument,
                     "limit must be at least 1");
    std::vector<Task<int>> started;
    started.push_back(asyncio::create_task(job(&t, 1, 0ns)));
    Task<int> keep = started.front();
    EXPECT_THROW_MSG(co_await asyncio::gather_limited(2, std::move(started)), std::invalid_argument,
                     "already running");
    EXPECT_EQ(co_await keep, 10);
  };
  run(body());
}

}  // namespace
