// Eager tasks (Python 3.12's eager_task_factory, 3.14's create_task(eager_start=...)): the
// coroutine runs inside create_task() until its first suspension. Cases of CPython's
// test_asyncio/test_eager_task_factory.py carried over (test_eager_task_factory_set,
// test_await_future_during_eager_step, test_eager_completion, test_current_task,
// test_exception, test_cancellation_after_eager_step_blocks, test_eager_start_false).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::CancelledError;
using concur::testing::AsyncioTest;

using EagerTask = AsyncioTest;

Task<int> logged(std::vector<std::string>* log, std::chrono::nanoseconds nap) {
  log->push_back("child starts");
  co_await asyncio::sleep(nap);
  log->push_back("child resumes");
  co_return 7;
}

TEST_F(EagerTask, RunsUntilItsFirstSuspensionInsideCreateTask) {
  std::vector<std::string> log;
  auto body = [&]() -> Task<void> {
    log.push_back("before");
    auto t = asyncio::create_task(logged(&log, 1ms), {.eager_start = true});
    log.push_back("after create_task");
    EXPECT_FALSE(t.done());
    EXPECT_EQ(co_await t, 7);
  };
  run(body());
  EXPECT_EQ(log, (std::vector<std::string>{"before", "child starts", "after create_task",
                                           "child resumes"}));
}

TEST_F(EagerTask, AScheduledTaskHasNotStartedWhenCreateTaskReturns) {
  std::vector<std::string> log;
  auto body = [&]() -> Task<void> {
    auto t = asyncio::create_task(logged(&log, 1ms), {.eager_start = false});
    log.push_back("after create_task");
    co_await t;
  };
  run(body());
  EXPECT_EQ(log.front(), "after create_task");
}

Task<int> immediate(int v) {
  co_return v * 2;
}

TEST_F(EagerTask, ATaskThatNeverSuspendsIsDoneWhenCreateTaskReturns) {
  auto body = [&]() -> Task<void> {
    auto t = asyncio::create_task(immediate(21), {.eager_start = true});
    EXPECT_TRUE(t.done());
    EXPECT_EQ(t.result(), 42);
    co_return;
  };
  run(body());
}

Task<void> check_current(asyncio::detail::TaskBase** seen) {
  *seen = asyncio::current_task();
  co_return;
}

TEST_F(EagerTask, CurrentTaskIsTheNewTaskDuringTheEagerStepAndTheCallerAfter) {
  auto body = [&]() -> Task<void> {
    asyncio::detail::TaskBase* me = asyncio::current_task();
    asyncio::detail::TaskBase* seen = nullptr;
    auto t = asyncio::create_task(check_current(&seen), {.eager_start = true});
    EXPECT_EQ(seen, &t.base());
    EXPECT_EQ(asyncio::current_task(), me);
    co_await t;
  };
  run(body());
}

Task<int> throws_at_once() {
  throw std::runtime_error("eager failure");
  co_return 0;
}

TEST_F(EagerTask, AnExceptionOfTheEagerStepIsTheTasksResult) {
  auto body = [&]() -> Task<void> {
    auto t = asyncio::create_task(throws_at_once(), {.eager_start = true});
    EXPECT_TRUE(t.done());
    EXPECT_THROW_MSG((void)t.result(), std::runtime_error, "eager failure");
    co_return;
  };
  run(body());
}

TEST_F(EagerTask, ACancelAfterTheEagerStepSuspendedReachesIt) {
  std::vector<std::string> log;
  auto body = [&]() -> Task<void> {
    auto t = asyncio::create_task(logged(&log, 10s), {.eager_start = true});
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(t.cancelled());
  };
  run(body());
  EXPECT_EQ(log, (std::vector<std::string>{"child starts"}));
}

TEST_F(EagerTask, TheLoopWideSettingMakesEveryTaskEagerUnlessItSaysOtherwise) {
  std::vector<std::string> log;
  loop.set_eager_tasks(true);
  auto body = [&]() -> Task<void> {
    auto t = asyncio::create_task(immediate(1));
    EXPECT_TRUE(t.done()) << "create_task() without eager_start follows the loop";
    auto s = asyncio::create_task(logged(&log, 1ms), {.eager_start = false});
    EXPECT_TRUE(log.empty()) << "eager_start = false overrides the loop";
    co_await s;
  };
  run(body());
  loop.set_eager_tasks(false);
}

}  // namespace
