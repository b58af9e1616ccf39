// Tests of asyncio::gather (concur/asyncio/tasks.hpp): result order, mixed types, failures and
// cancellation, as CPython's Lib/test/test_asyncio/test_tasks.py (the gather cases) checks them.
#include <gtest/gtest.h>

#include "asyncio_task_helpers.hpp"

namespace {

using namespace concur::testing::task_helpers;

// ---------------------------------------------------------------------------------------------
// gather

using GatherTest = AsyncioTest;

TEST_F(GatherTest, ResultsInArgumentOrderNotCompletionOrder) {
  auto main_task = [&]() -> Task<void> {
    asyncio::Event e1, e2, e3;
    std::vector<int> finished;
    auto child = [&finished](asyncio::Event* release, int value) -> Task<int> {
      co_await release->wait();
      finished.push_back(value);
      co_return value;
    };
    auto tasks = vec(child(&e1, 1), child(&e2, 2), child(&e3, 3));
    Task<void> releaser = asyncio::create_task(release_in_order({&e2, &e3, &e1}));
    std::vector<int> results = co_await asyncio::gather(std::move(tasks));
    EXPECT_EQ(results, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(finished, (std::vector<int>{2, 3, 1}));
    co_await releaser;
  };
  run(main_task());
}

TEST_F(GatherTest, VariadicOfMixedTypes) {
  auto text = []() -> Task<std::string> {
    co_await asyncio::sleep(0ns);
    co_return "two";
  };
  auto nothing = []() -> Task<void> { co_await asyncio::sleep(1ms); };
  auto main_task = [&]() -> Task<void> {
    auto [a, b, c] = co_await asyncio::gather(value_after(2ms, 1), text(), nothing());
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, "two");
    EXPECT_EQ(c, std::monostate{});
  };
  run(main_task());
}

TEST_F(GatherTest, EmptyVector) {
  auto main_task = [&]() -> Task<void> {
    std::vector<int> none = co_await asyncio::gather(std::vector<Task<int>>());
    EXPECT_TRUE(none.empty());
    auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, std::vector<Task<int>>());
    EXPECT_TRUE(outcomes.empty());
  };
  run(main_task());
}

TEST_F(GatherTest, LazyChildrenRunConcurrently) {
  asyncio::Event ready;
  auto waiter = [&]() -> Task<int> {
    co_await ready.wait();
    co_return 1;
  };
  auto setter = [&]() -> Task<int> {
    co_await asyncio::sleep(1ms);
    ready.set();
    co_return 2;
  };
  auto main_task = [&]() -> Task<void> {
    // If gather ran them one after the other, the first would wait for ever.
    auto both = co_await asyncio::wait_for(asyncio::gather(waiter(), setter()), kLong);
    EXPECT_EQ(std::get<0>(both), 1);
    EXPECT_EQ(std::get<1>(both), 2);
  };
  run(main_task());
}

TEST_F(GatherTest, FirstExceptionPropagatesAndTheOthersKeepRunning) {
  auto main_task = [&]() -> Task<void> {
    Task<int> slow = asyncio::create_task(value_after(20ms, 5));
    Task<int> failing = asyncio::create_task(fail_after(1ms, "first failure"));
    auto children = vec(failing, slow);
    EXPECT_THROW_MSG((void)co_await asyncio::gather(std::move(children)), MyError, "first failure");
    EXPECT_FALSE(slow.done()) << "gather does not wait for the others";
    int v = co_await slow;
    EXPECT_EQ(v, 5);
    EXPECT_FALSE(slow.cancelled());
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(GatherTest, CancelledChildMakesGatherRaiseCancelledErrorButNotCancelTheCaller) {
  auto main_task = [&]() -> Task<void> {
    Task<int> victim = asyncio::create_task(value_after(kLong, 1));
    Task<int> other = asyncio::create_task(value_after(5ms, 2));
    co_await turns(1);
    victim.cancel();
    auto children = vec(victim, other);
    EXPECT_THROW((void)co_await asyncio::gather(std::move(children)), CancelledError);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
    co_await asyncio::sleep(0ns);  // the caller goes on: it was not cancelled
    int v = co_await other;
    EXPECT_EQ(v, 2);
  };
  run(main_task());
}

TEST_F(GatherTest, ReturnExceptionsCollectsValuesErrorsAndCancellations) {
  auto main_task = [&]() -> Task<void> {
    Task<int> cancelled = asyncio::create_task(value_after(kLong, 3));
    co_await turns(1);
    cancelled.cancel();
    auto children = vec(value_after(1ms, 1), fail_after(2ms, "second"), cancelled);
    std::vector<asyncio::Outcome<int>> out =
        co_await asyncio::gather(asyncio::return_exceptions, std::move(children));
    EXPECT_EQ(out.size(), 3u);
    if (out.size() == 3) {
      EXPECT_TRUE(out[0].ok());
      EXPECT_EQ(out[0].value(), 1);
      EXPECT_FALSE(out[1].ok());
      EXPECT_FALSE(out[1].cancelled());
      EXPECT_TRUE(is_a<MyError>(out[1].error()));
      EXPECT_THROW((void)out[1].value(), MyError);
      EXPECT_FALSE(out[2].ok());
      EXPECT_TRUE(out[2].cancelled());
    }
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(GatherTest, CancellingTheGatheringTaskCancelsEveryChild) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto children = vec(asyncio::create_task(sleeper(kLong, &cancels)),
                        asyncio::create_task(sleeper(kLong, &cancels)),
                        asyncio::create_task(sleeper(kLong, &cancels)));
    std::vector<Task<void>> handles = children;
    Task<void> g = asyncio::create_task(asyncio::gather(std::move(children)));
    co_await turns(2);
    EXPECT_TRUE(g.cancel("gather cancelled"));
    EXPECT_THROW_MSG(co_await g, CancelledError, "gather cancelled");
    // gather ends with the first child that ends cancelled (as asyncio's "first to raise");
    // every child had its cancellation requested, and the rest finish unwinding soon.
    for (Task<void>& h : handles) EXPECT_EQ(h.cancelling(), 1);
    co_await turns(2);
    EXPECT_EQ(cancels, 3);
    for (Task<void>& h : handles) EXPECT_TRUE(h.cancelled());
  };
  run(main_task());
}

TEST_F(GatherTest, CancellingAReturnExceptionsGatherRaisesCancelledError) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto children = vec(sleeper(kLong, &cancels), sleeper(kLong, &cancels));
    auto g = asyncio::create_task(asyncio::gather(asyncio::return_exceptions, std::move(children)));
    co_await turns(2);
    g.cancel();
    EXPECT_THROW((void)co_await g, CancelledError);
    EXPECT_EQ(cancels, 2);
  };
  run(main_task());
}

TEST_F(GatherTest, ChildThatIgnoresTheCancelKeepsGatherWaiting) {
  // Cancelling gather only requests the children's cancellation: gather ends when they do.
  auto main_task = [&]() -> Task<void> {
    int swallowed = 0;
    auto children = vec(swallow_cancel(kLong, 7, &swallowed), value_after(kLong, 1));
    auto g = asyncio::create_task(asyncio::gather(std::move(children)));
    co_await turns(2);
    g.cancel();
    EXPECT_THROW((void)co_await g, CancelledError);
    EXPECT_EQ(swallowed, 1);
  };
  run(main_task());
}

}  // namespace
