// Tests of concur/asyncio/task.hpp: Task<T>'s states and results, create_task, cancellation
// (messages, uncancel, RAII cleanup), done callbacks and unretrieved exceptions. The cases of
// CPython's Lib/test/test_asyncio/test_tasks.py, carried over, plus what C++ adds (lazy
// coroutines, handles, frame counts).
#include <gtest/gtest.h>

#include <thread>

#include "asyncio_task_helpers.hpp"

namespace {

using namespace concur::testing::task_helpers;

// ---------------------------------------------------------------------------------------------
// Task: states and results

using TaskTest = AsyncioTest;

TEST_F(TaskTest, PendingTaskHasNoResultYet) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(value_after(2ms, 1));
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(t.cancelled());
    EXPECT_THROW(t.result(), InvalidStateError);
    EXPECT_THROW(t.exception(), InvalidStateError);
    int v = co_await t;
    EXPECT_EQ(v, 1);
    EXPECT_TRUE(t.done());
    EXPECT_EQ(t.result(), 1);
    EXPECT_EQ(t.exception(), nullptr);
  };
  run(main_task());
}

TEST_F(TaskTest, FailedTaskRethrowsItsOwnType) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(fail_after(0ns, "boom"));
    EXPECT_THROW_MSG((void)co_await t, MyError, "boom");
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.cancelled());
    EXPECT_THROW_MSG(t.result(), MyError, "boom");
    EXPECT_TRUE(is_a<MyError>(t.exception()));
  };
  run(main_task());
}

TEST_F(TaskTest, CancelledTaskResultAndExceptionThrowCancelledError) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(value_after(kLong, 1));
    co_await turns(1);
    EXPECT_TRUE(t.cancel());
    EXPECT_FALSE(t.done());  // a request: the task has not unwound yet
    EXPECT_THROW((void)co_await t, CancelledError);
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(t.cancelled());
    EXPECT_THROW(t.result(), CancelledError);
    EXPECT_THROW(t.exception(), CancelledError);
    EXPECT_FALSE(t.cancel()) << "cancel() of a done task returns false";
  };
  run(main_task());
}

TEST_F(TaskTest, RunUntilCompleteReturnsTheValueAndRethrows) {
  EXPECT_EQ(run(value_after(0ns, 5)), 5);
  EXPECT_THROW_MSG(run(fail_after(0ns, "out")), MyError, "out");
}

TEST_F(TaskTest, MoveOnlyResult) {
  auto make = []() -> Task<std::unique_ptr<int>> {
    co_await asyncio::sleep(0ns);
    co_return std::make_unique<int>(17);
  };
  auto main_task = [&]() -> Task<void> {
    std::unique_ptr<int> inline_result = co_await make();
    EXPECT_EQ(*inline_result, 17);
    std::unique_ptr<int> spawned_result = co_await asyncio::create_task(make());
    EXPECT_EQ(*spawned_result, 17);
  };
  run(main_task());
}

TEST_F(TaskTest, EmptyHandleIsInvalidState) {
  Task<int> empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_THROW(empty.result(), InvalidStateError);
  EXPECT_THROW(empty.done(), InvalidStateError);
  auto main_task = [&]() -> Task<void> { EXPECT_THROW((void)co_await empty, InvalidStateError); };
  run(main_task());
}

TEST_F(TaskTest, LazyCoroutineRunsInlineInTheAwaitingTask) {
  auto main_task = [&]() -> Task<void> {
    asyncio::detail::TaskBase* outer = asyncio::current_task();
    EXPECT_NE(outer, nullptr);
    asyncio::detail::TaskBase* seen = nullptr;
    auto inner = [&]() -> Task<int> {
      seen = asyncio::current_task();
      co_await asyncio::sleep(0ns);
      co_return 3;
    };
    int v = co_await inner();
    EXPECT_EQ(v, 3);
    EXPECT_EQ(seen, outer) << "an awaited coroutine is part of the awaiting task";
    EXPECT_EQ(loop.pending_tasks(), 1u) << "no task was created for it";
  };
  run(main_task());
  EXPECT_EQ(asyncio::current_task(), nullptr);
}

TEST_F(TaskTest, CreateTaskStartsOnALaterTurnNotAtOnce) {
  auto main_task = [&]() -> Task<void> {
    bool ran = false;
    Task<void> t = asyncio::create_task(set_flag(&ran));
    EXPECT_FALSE(ran);
    EXPECT_EQ(loop.pending_tasks(), 2u);
    co_await asyncio::sleep(0ns);
    EXPECT_TRUE(ran);
    EXPECT_TRUE(t.done());
  };
  run(main_task());
}

TEST_F(TaskTest, CreateTaskOutsideALoopIsRuntimeError) {
  EXPECT_THROW_MSG(asyncio::create_task(value_after(0ns, 1)), RuntimeError,
                   "no running event loop");
}

TEST_F(TaskTest, CurrentTaskIsTheTaskRunning) {
  EXPECT_EQ(asyncio::current_task(), nullptr);
  asyncio::detail::TaskBase* seen = nullptr;
  auto body = [&]() -> Task<void> {
    seen = asyncio::current_task();
    co_return;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(body());
    co_await t;
    EXPECT_EQ(seen, t.promise());
    EXPECT_EQ(asyncio::current_task(), asyncio::current_task());
    EXPECT_NE(asyncio::current_task(), t.promise());
  };
  run(main_task());
}

TEST_F(TaskTest, Names) {
  auto main_task = [&]() -> Task<void> {
    Task<int> a = asyncio::create_task(value_after(0ns, 1));
    Task<int> b = asyncio::create_task(value_after(0ns, 2), "worker");
    EXPECT_EQ(a.get_name().rfind("Task-", 0), 0u) << a.get_name();
    EXPECT_EQ(b.get_name(), "worker");
    a.set_name("renamed");
    EXPECT_EQ(a.get_name(), "renamed");
    co_await a;
    co_await b;
  };
  run(main_task());
}

TEST_F(TaskTest, SeveralTasksAwaitOneTask) {
  auto main_task = [&]() -> Task<void> {
    Task<int> shared = asyncio::create_task(value_after(1ms, 8));
    Task<int> a = asyncio::create_task(await_task(shared));
    Task<int> b = asyncio::create_task(await_task(shared));
    auto both = co_await asyncio::gather(a, b);
    EXPECT_EQ(std::get<0>(both), 8);
    EXPECT_EQ(std::get<1>(both), 8);
    Task<int> failing = asyncio::create_task(fail_after(1ms, "shared failure"));
    Task<int> c = asyncio::create_task(await_task(failing));
    Task<int> d = asyncio::create_task(await_task(failing));
    EXPECT_THROW((void)co_await c, MyError);
    EXPECT_THROW((void)co_await d, MyError);
  };
  run(main_task());
}

TEST_F(TaskTest, StartingACoroutineTwiceIsRuntimeError) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(value_after(0ns, 1));
    EXPECT_THROW_MSG(asyncio::create_task(t), RuntimeError, "already been started");
    co_await t;
    Task<int> awaited = value_after(0ns, 2);
    co_await awaited;
    EXPECT_THROW_MSG(asyncio::create_task(awaited), RuntimeError, "already been started");
  };
  run(main_task());
}

TEST_F(TaskTest, AwaitingALazyCoroutineFromTwoTasksIsRuntimeError) {
  auto main_task = [&]() -> Task<void> {
    Task<int> lazy = value_after(2ms, 9);
    Task<int> first = asyncio::create_task(await_task(lazy));
    Task<int> second = asyncio::create_task(await_task(lazy));
    int v = co_await first;
    EXPECT_EQ(v, 9);
    EXPECT_THROW_MSG((void)co_await second, RuntimeError, "already being awaited");
  };
  run(main_task());
}

TEST_F(TaskTest, ATaskAwaitingItselfIsRuntimeError) {
  auto await_self = [](Task<void>* self, std::string* error) -> Task<void> {
    try {
      co_await *self;
    } catch (const RuntimeError& e) {
      *error = e.what();
    }
  };
  auto main_task = [&]() -> Task<void> {
    std::string error;
    Task<void> t;
    t = asyncio::create_task(await_self(&t, &error));
    co_await t;
    EXPECT_TRUE(contains(error, "cannot await itself")) << error;
  };
  run(main_task());
}

TEST_F(TaskTest, CancelOfALazyCoroutineIsInvalidState) {
  Task<int> lazy = value_after(0ns, 1);
  EXPECT_THROW(lazy.cancel(), InvalidStateError);
}

// ---------------------------------------------------------------------------------------------
// Task: cancellation

TEST_F(TaskTest, CancelBeforeStartNeverRunsTheBody) {
  auto main_task = [&]() -> Task<void> {
    bool ran = false;
    Task<void> t = asyncio::create_task(set_flag(&ran));
    EXPECT_TRUE(t.cancel());
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(ran);
    EXPECT_TRUE(t.cancelled());
  };
  run(main_task());
}

TEST_F(TaskTest, CancelInterruptsASleep) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto start = Clock::now();
    Task<void> t = asyncio::create_task(sleeper(kLong, &cancels));
    co_await turns(1);
    EXPECT_EQ(cancels, 0);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_EQ(cancels, 1) << "the task saw CancelledError at its sleep";
    EXPECT_LT(Clock::now() - start, kLong / 4);
  };
  run(main_task());
}

TEST_F(TaskTest, CancelWithAMessage) {
  auto main_task = [&]() -> Task<void> {
    std::string seen;
    auto body = [&]() -> Task<void> {
      try {
        co_await asyncio::sleep(kLong);
      } catch (const CancelledError& e) {
        seen = e.what();
        throw;
      }
    };
    Task<void> t = asyncio::create_task(body());
    co_await turns(1);
    t.cancel("stop now");
    EXPECT_THROW_MSG(co_await t, CancelledError, "stop now");
    EXPECT_EQ(seen, "stop now");
    // Before the start too.
    Task<int> u = asyncio::create_task(value_after(kLong, 1));
    u.cancel("never started");
    EXPECT_THROW_MSG((void)co_await u, CancelledError, "never started");
  };
  run(main_task());
}

TEST_F(TaskTest, CancelWhileAwaitingATaskCancelsThatTask) {
  auto main_task = [&]() -> Task<void> {
    int inner_cancels = 0;
    Task<void> inner = asyncio::create_task(sleeper(kLong, &inner_cancels));
    Task<void> outer = asyncio::create_task(await_task(inner));
    co_await turns(1);
    outer.cancel("outer cancelled");
    EXPECT_THROW_MSG(co_await outer, CancelledError, "outer cancelled");
    EXPECT_TRUE(inner.cancelled());
    EXPECT_EQ(inner_cancels, 1);
    EXPECT_TRUE(outer.cancelled());
  };
  run(main_task());
}

TEST_F(TaskTest, CancelledWhileAwaitingAnInnerTaskThatSwallowsIt) {
  // As asyncio: the request goes to the inner task; when that one catches it and returns a
  // value, the outer task gets the value (its cancelling() count still says 1).
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    Task<int> inner = asyncio::create_task(swallow_cancel(kLong, 42, &cancels));
    Task<int> outer = asyncio::create_task(await_task(inner));
    co_await turns(1);
    outer.cancel();
    int v = co_await outer;
    EXPECT_EQ(v, 42);
    EXPECT_EQ(cancels, 1);
    EXPECT_FALSE(outer.cancelled());
    EXPECT_EQ(outer.cancelling(), 1);
    EXPECT_EQ(inner.cancelling(), 1);
  };
  run(main_task());
}

TEST_F(TaskTest, TaskThatSwallowsCancelledErrorReturnsNormally) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    Task<int> t = asyncio::create_task(swallow_cancel(kLong, 7, &cancels));
    co_await turns(1);
    EXPECT_TRUE(t.cancel());
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 2);
    int v = co_await t;
    EXPECT_EQ(v, 7);
    EXPECT_EQ(cancels, 1) << "two requests, one CancelledError";
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 2);
    EXPECT_EQ(t.uncancel(), 1);
    EXPECT_EQ(t.uncancel(), 0);
    EXPECT_EQ(t.uncancel(), 0);
  };
  run(main_task());
}

TEST_F(TaskTest, SelfCancelThenAwaitThrowsAtTheAwait) {
  bool after_sleep = false;
  bool caught = false;
  auto body = [&]() -> Task<int> {
    asyncio::current_task()->cancel();
    EXPECT_EQ(asyncio::current_task()->cancelling(), 1);
    try {
      co_await asyncio::sleep(kLong);  // throws at once
      after_sleep = true;
    } catch (const CancelledError&) {
      caught = true;
      throw;
    }
    co_return 1;
  };
  auto main_task = [&]() -> Task<void> {
    auto start = Clock::now();
    Task<int> t = asyncio::create_task(body());
    EXPECT_THROW((void)co_await t, CancelledError);
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(caught) << "the pending cancel is delivered at the sleep";
    EXPECT_FALSE(after_sleep);
    EXPECT_LT(Clock::now() - start, kLong / 4);
  };
  run(main_task());
}

TEST_F(TaskTest, SelfCancelThenReturnEndsCancelled) {
  // asyncio: a task cancelled during its last step ends cancelled, its return value dropped.
  auto body = []() -> Task<std::string> {
    asyncio::current_task()->cancel();
    co_return std::string("dropped");
  };
  auto main_task = [&]() -> Task<void> {
    Task<std::string> t = asyncio::create_task(body());
    EXPECT_THROW((void)co_await t, CancelledError);
    EXPECT_TRUE(t.cancelled());
  };
  run(main_task());
}

TEST_F(TaskTest, UncancelWithdrawsAPendingRequest) {
  auto body = []() -> Task<int> {
    asyncio::detail::TaskBase* me = asyncio::current_task();
    me->cancel();
    EXPECT_EQ(me->uncancel(), 0);
    co_await asyncio::sleep(1ms);  // not cancelled any more
    co_return 5;
  };
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(body());
    int v = co_await t;
    EXPECT_EQ(v, 5);
    EXPECT_FALSE(t.cancelled());
  };
  run(main_task());
}

TEST_F(TaskTest, CancelledAwaitOfAFinishedTaskStillDeliversTheCancel) {
  // A task cancelled while it runs gets CancelledError at its next suspension, even one that
  // would complete at once (awaiting a task that is already done does not suspend, though: it
  // must then get the value, and the cancel at the following real suspension).
  auto main_task = [&]() -> Task<void> {
    Task<int> done = asyncio::create_task(value_after(0ns, 1));
    co_await done;
    asyncio::current_task()->cancel();
    int v = co_await done;  // already done: no suspension
    EXPECT_EQ(v, 1);
    EXPECT_THROW(co_await asyncio::sleep(0ns), CancelledError);
    EXPECT_EQ(asyncio::current_task()->uncancel(), 0);
  };
  run(main_task());
}

TEST_F(TaskTest, CancelledTaskRunsItsRaiiCleanup) {
  struct Guard {
    int* count;
    ~Guard() { ++*count; }
  };
  int destroyed = 0;
  auto body = [&]() -> Task<void> {
    Guard g{&destroyed};
    co_await asyncio::sleep(kLong);
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(body());
    co_await turns(1);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_EQ(destroyed, 1);
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// Task: done callbacks and unretrieved exceptions

TEST_F(TaskTest, DoneCallbacksRunInOrderAndSoonNotSynchronously) {
  auto main_task = [&]() -> Task<void> {
    std::vector<int> order;
    Task<int> t = asyncio::create_task(value_after(1ms, 3));
    for (int i = 1; i <= 3; ++i) {
      t.add_done_callback([&order, i](const Task<int>& done) {
        EXPECT_TRUE(done.done());
        EXPECT_EQ(done.result(), 3);
        order.push_back(i);
      });
    }
    EXPECT_TRUE(order.empty());
    co_await t;
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    t.add_done_callback([&order](const Task<int>&) { order.push_back(4); });
    EXPECT_EQ(order.size(), 3u) << "a callback added to a done task runs soon, not now";
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(order.size(), 4u);
  };
  run(main_task());
}

TEST_F(TaskTest, DoneCallbackSeesCancellation) {
  auto main_task = [&]() -> Task<void> {
    bool saw_cancelled = false;
    Task<int> t = asyncio::create_task(value_after(kLong, 3));
    t.add_done_callback([&](const Task<int>& done) { saw_cancelled = done.cancelled(); });
    co_await turns(1);
    t.cancel();
    EXPECT_THROW((void)co_await t, CancelledError);
    co_await asyncio::sleep(0ns);
    EXPECT_TRUE(saw_cancelled);
  };
  run(main_task());
}

TEST_F(TaskTest, ThrowingDoneCallbackIsReportedAndTheOthersRun) {
  auto main_task = [&]() -> Task<void> {
    int ran = 0;
    Task<int> t = asyncio::create_task(value_after(0ns, 1));
    t.add_done_callback([](const Task<int>&) { throw MyError("callback failed"); });
    t.add_done_callback([&](const Task<int>&) { ++ran; });
    co_await t;
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(ran, 1);
  };
  run(main_task());
  std::vector<std::string> got = take_reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0], "done callback")) << got[0];
  EXPECT_TRUE(contains(got[0], "callback failed")) << got[0];
}

TEST_F(TaskTest, UnretrievedExceptionIsReportedWhenTheLastHandleGoes) {
  auto main_task = [&]() -> Task<void> {
    asyncio::create_task(fail_after(0ns, "nobody looked"), "forgotten");
    co_await turns(2);
  };
  run(main_task());
  std::vector<std::string> got = take_reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0], "Task exception was never retrieved")) << got[0];
  EXPECT_TRUE(contains(got[0], "forgotten")) << got[0];
  EXPECT_TRUE(contains(got[0], "nobody looked")) << got[0];
}

TEST_F(TaskTest, RetrievedOrCancelledTasksAreNotReported) {
  auto main_task = [&]() -> Task<void> {
    Task<int> a = asyncio::create_task(fail_after(0ns, "seen by exception()"));
    Task<int> b = asyncio::create_task(fail_after(0ns, "seen by result()"));
    Task<int> c = asyncio::create_task(value_after(kLong, 1));
    co_await turns(2);
    EXPECT_TRUE(is_a<MyError>(a.exception()));
    EXPECT_THROW(b.result(), MyError);
    c.cancel();
    co_await turns(2);
    EXPECT_TRUE(c.cancelled());
  };
  run(main_task());
  EXPECT_TRUE(reports.empty());
}

TEST_F(TaskTest, ManyTasksLeaveNoFrameBehind) {
  std::int64_t before = asyncio::detail::live_frames();
  auto main_task = [&]() -> Task<void> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 200; ++i) {
      tasks.push_back(i % 3 == 0 ? fail_after(0ns, "x") : value_after(0ns, i));
    }
    auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, std::move(tasks));
    EXPECT_EQ(outcomes.size(), 200u);
    std::vector<Task<int>> sleepers;
    for (int i = 0; i < 50; ++i) sleepers.push_back(asyncio::create_task(value_after(kLong, i)));
    co_await turns(1);
    for (Task<int>& t : sleepers) t.cancel();
    co_await turns(2);
  };
  run(main_task());
  EXPECT_EQ(asyncio::detail::live_frames(), before);
}

// The frame allocator across threads: frames made on one thread and freed on another, threads
// that end with blocks on their lists. The counts stay right, and what the ended threads left is
// used again: a later burst maps no chunk and takes nothing from the heap.
TEST_F(TaskTest, FramesFreedOnOtherThreadsOrLeftByEndedThreadsAreCountedAndReused) {
  auto burst = [](int n) -> Task<void> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < n; ++i) tasks.push_back(asyncio::create_task(value_after(0ns, i)));
    co_await asyncio::gather(std::move(tasks));
  };
  const auto before = asyncio::detail::frame_stats();
  std::vector<Task<int>> made;
  std::thread maker([&] {
    for (int i = 0; i < 1000; ++i) made.push_back(value_after(0ns, i));  // never started
    asyncio::run(burst(5000));
  });
  maker.join();
  EXPECT_EQ(asyncio::detail::frame_stats().live_frames, before.live_frames + 1000);
  EXPECT_GT(asyncio::detail::frame_stats().chunk_bytes, 0);
  std::thread freer([&] { made.clear(); });
  freer.join();
  const auto mid = asyncio::detail::frame_stats();
  EXPECT_EQ(mid.live_frames, before.live_frames);
  EXPECT_EQ(mid.live_bytes, before.live_bytes);
  asyncio::run(burst(5000));
  const auto after = asyncio::detail::frame_stats();
  EXPECT_EQ(after.live_frames, before.live_frames);
  EXPECT_EQ(after.chunk_bytes, mid.chunk_bytes);
  EXPECT_EQ(after.heap_bytes, mid.heap_bytes);
}

}  // namespace
