// Tests of asyncio::wait, AsCompleted and gather (concur/asyncio/tasks.hpp) for what Python 3.13
// does with the same task passed twice, and with a gather whose children are done or cancelled.
// Carried over from CPython's Lib/test/test_asyncio/test_tasks.py; the older cases live in
// asyncio_wait_as_completed_test.cpp and asyncio_gather_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::CancelledError;
using concur::ReturnWhen;
using concur::testing::AsyncioTest;
using concur::testing::count_in;
using concur::testing::is_a;
using concur::testing::turns;

constexpr auto kLong = 10s;

Task<int> value_after(std::chrono::nanoseconds delay, int value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Task<int> value_when(asyncio::Event* release, int value) {
  co_await release->wait();
  co_return value;
}

using WaitDuplicatesTest = AsyncioTest;

TEST_F(WaitDuplicatesTest, WaitWithTheSameTaskTwiceWorksOnTheDistinctTasks) {
  // CPython's test_wait_duplicate_coroutines (and wait()'s `fs = set(fs)`).
  auto main_task = [&]() -> Task<void> {
    Task<int> a = asyncio::create_task(value_after(0ns, 1));
    Task<int> b = asyncio::create_task(value_after(1ms, 2));
    std::vector<Task<int>> tasks{a, a, b};  // GCC 12: no braced list inside co_await
    asyncio::WaitResult<int> r = co_await asyncio::wait(std::move(tasks));
    EXPECT_EQ(r.done.size(), 2u);
    EXPECT_TRUE(r.pending.empty());
    int sum = 0;
    for (Task<int>& t : r.done) sum += t.result();
    EXPECT_EQ(sum, 3);
  };
  run(main_task());
}

TEST_F(WaitDuplicatesTest, FirstCompletedWithADuplicateListsThePendingTaskOnce) {
  auto main_task = [&]() -> Task<void> {
    asyncio::Event release;
    Task<int> slow = asyncio::create_task(value_when(&release, 1));
    Task<int> fast = asyncio::create_task(value_after(0ns, 2));
    std::vector<Task<int>> tasks{slow, fast, slow, fast};
    asyncio::WaitResult<int> r =
        co_await asyncio::wait(std::move(tasks), std::nullopt, ReturnWhen::FIRST_COMPLETED);
    EXPECT_EQ(r.done.size(), 1u);
    if (!r.done.empty()) {
      EXPECT_EQ(r.done[0].result(), 2);
    }
    EXPECT_EQ(r.pending.size(), 1u);
    release.set();
    co_await slow;
  };
  run(main_task());
}

TEST_F(WaitDuplicatesTest, AsCompletedYieldsATaskPassedTwiceOnce) {
  // CPython's test_as_completed_duplicate_coroutines: as_completed() works on the set.
  auto main_task = [&]() -> Task<void> {
    Task<int> a = asyncio::create_task(value_after(0ns, 1));
    Task<int> b = asyncio::create_task(value_after(1ms, 2));
    asyncio::AsCompleted<int> ac(std::vector<Task<int>>{a, b, a});
    std::vector<int> got;
    while (ac.has_next()) {
      Task<int> t = co_await ac.next();
      got.push_back(t.result());
    }
    EXPECT_EQ(got, (std::vector<int>{1, 2}));
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// create_task(gather(...)): Python's gathering future

using GatheringTaskTest = AsyncioTest;

TEST_F(GatheringTaskTest, CancelAfterTheChildrenFinishedIsRefusedAndTheResultsKept) {
  // CPython's test_cancel_gather_1 (bpo-26923): cancel() between the last child's end and
  // gather's resumption returns false, and the gathering task ends with the results.
  auto main_task = [&]() -> Task<void> {
    asyncio::Event release;
    Task<std::vector<int>> g;
    std::optional<bool> cancel_result;
    Task<int> child = asyncio::create_task(value_when(&release, 42));
    // Registered before gather's own wait: it runs after the child ends, before gather resumes.
    child.add_done_callback([&](const Task<int>&) { cancel_result = g.cancel(); });
    std::vector<Task<int>> children{child};
    g = asyncio::create_task(asyncio::gather(std::move(children)));
    co_await asyncio::sleep(0ns);
    release.set();
    std::vector<int> result = co_await g;
    EXPECT_EQ(cancel_result, std::optional<bool>(false));
    EXPECT_FALSE(g.cancelled());
    EXPECT_EQ(result, std::vector<int>{42});
    EXPECT_EQ(g.cancelling(), 0);
  };
  run(main_task());
}

TEST_F(GatheringTaskTest, ACancelledChildEndsItWithCancelledErrorNotCancelled) {
  // Python's gather future when a child is cancelled: done, cancelled() false, exception() a
  // CancelledError (test_tasks.py's test_one_cancellation / outer.set_exception); a task that
  // awaits gather ends cancelled, in Python too.
  auto wrapper = [](Task<int> child) -> Task<void> {
    std::vector<Task<int>> children{std::move(child)};
    co_await asyncio::gather(std::move(children));
  };
  auto main_task = [&]() -> Task<void> {
    asyncio::Event never;
    Task<int> c1 = asyncio::create_task(value_when(&never, 1));
    Task<int> c2 = asyncio::create_task(value_when(&never, 2));
    std::vector<Task<int>> children{c1};
    Task<std::vector<int>> g = asyncio::create_task(asyncio::gather(std::move(children)));
    Task<void> w = asyncio::create_task(wrapper(c2));
    co_await asyncio::sleep(0ns);
    c1.cancel();
    c2.cancel();
    EXPECT_THROW(co_await g, CancelledError);
    EXPECT_TRUE(g.done());
    EXPECT_FALSE(g.cancelled());
    EXPECT_TRUE(is_a<CancelledError>(g.exception()));
    EXPECT_THROW(co_await w, CancelledError);
    EXPECT_TRUE(w.cancelled());
  };
  run(main_task());
}

TEST_F(GatheringTaskTest, CancellingItWhileChildrenRunCancelsThemAndEndsWithCancelledError) {
  // Python: gather(...).cancel() returns True, cancels the children, and the gather future ends
  // with a CancelledError exception, not cancelled() (checked on 3.12 and 3.13).
  auto main_task = [&]() -> Task<void> {
    asyncio::Event never;
    Task<int> child = asyncio::create_task(value_when(&never, 1));
    std::vector<Task<int>> children{child};
    Task<std::vector<asyncio::Outcome<int>>> g =
        asyncio::create_task(asyncio::gather(asyncio::return_exceptions, std::move(children)));
    co_await asyncio::sleep(0ns);
    EXPECT_TRUE(g.cancel());
    EXPECT_THROW(co_await g, CancelledError);
    EXPECT_TRUE(child.cancelled());
    EXPECT_FALSE(g.cancelled());
    EXPECT_TRUE(is_a<CancelledError>(g.exception()));
    EXPECT_FALSE(g.cancel()) << "done";
  };
  run(main_task());
}

}  // namespace
