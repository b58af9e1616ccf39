// Tests of asyncio::shield (concur/asyncio/tasks.hpp), from CPython's
// Lib/test/test_asyncio/test_tasks.py (the shield cases).
#include <gtest/gtest.h>

#include "asyncio_task_helpers.hpp"

namespace {

using namespace concur::testing::task_helpers;

// ---------------------------------------------------------------------------------------------
// shield

using ShieldTest = AsyncioTest;

TEST_F(ShieldTest, PassesTheResultAndTheException) {
  auto main_task = [&]() -> Task<void> {
    int v = co_await asyncio::shield(value_after(1ms, 5));
    EXPECT_EQ(v, 5);
    EXPECT_THROW_MSG((void)co_await asyncio::shield(fail_after(1ms, "shielded failure")), MyError,
                     "shielded failure");
  };
  run(main_task());
}

TEST_F(ShieldTest, CancellingTheOuterTaskLeavesTheInnerRunning) {
  auto shielded = [](Task<int> inner) -> Task<int> { co_return co_await asyncio::shield(inner); };
  auto main_task = [&]() -> Task<void> {
    Task<int> inner = asyncio::create_task(value_after(10ms, 7));
    Task<int> outer = asyncio::create_task(shielded(inner));
    co_await turns(2);
    outer.cancel();
    EXPECT_THROW((void)co_await outer, CancelledError);
    EXPECT_TRUE(outer.cancelled());
    EXPECT_FALSE(inner.done());
    EXPECT_EQ(inner.cancelling(), 0);
    int v = co_await inner;
    EXPECT_EQ(v, 7);
  };
  run(main_task());
}

TEST_F(ShieldTest, CancelledInnerTaskCancelsTheOuter) {
  auto shielded = [](Task<int> inner) -> Task<int> { co_return co_await asyncio::shield(inner); };
  auto main_task = [&]() -> Task<void> {
    Task<int> inner = asyncio::create_task(value_after(kLong, 7));
    Task<int> outer = asyncio::create_task(shielded(inner));
    co_await turns(2);
    inner.cancel();
    EXPECT_THROW((void)co_await outer, CancelledError);
    EXPECT_TRUE(outer.cancelled());
  };
  run(main_task());
}

}  // namespace
