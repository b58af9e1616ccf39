// Tests of concur/asyncio/task.hpp and concur/asyncio/tasks.hpp: Task<T>, create_task,
// cancellation, gather, wait, AsCompleted, shield, timeout, wait_for and TaskGroup.
// The cases of CPython's Lib/test/test_asyncio/{test_tasks,test_taskgroups,test_timeouts,
// test_waitfor}.py, carried over, plus what C++ adds (lazy coroutines, handles, frame counts).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::CancelledError;
using concur::ExceptionGroup;
using concur::InvalidStateError;
using concur::ReturnWhen;
using concur::RuntimeError;
using concur::TimeoutError;
using Clock = std::chrono::steady_clock;

// Long enough that a test that waits for it to pass has failed; the tests only ever wait for it
// to be interrupted, and check that it was with a generous ratio.
constexpr auto kLong = 10s;

struct MyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct OtherError : std::logic_error {
  using std::logic_error::logic_error;
};

using concur::testing::AsyncioTest;
using concur::testing::contains;
using concur::testing::count_in;
using concur::testing::is_a;
using concur::testing::turns;

// ---------------------------------------------------------------------------------------------
// Coroutines the tests run. Plain functions (not lambdas), so that their frames own copies of
// their arguments.

Task<int> value_after(std::chrono::nanoseconds delay, int value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Task<int> fail_after(std::chrono::nanoseconds delay, std::string what) {
  co_await asyncio::sleep(delay);
  throw MyError(what);
}

// Sleeps; counts in *cancels a CancelledError that interrupts it (and re-throws it).
Task<void> sleeper(std::chrono::nanoseconds delay, int* cancels) {
  try {
    co_await asyncio::sleep(delay);
  } catch (const CancelledError&) {
    ++*cancels;
    throw;
  }
}

// Catches its cancellation and returns `value` instead.
Task<int> swallow_cancel(std::chrono::nanoseconds delay, int value, int* cancels) {
  try {
    co_await asyncio::sleep(delay);
  } catch (const CancelledError&) {
    ++*cancels;
  }
  co_return value;
}

// Returns `value` once `release` is set (the tests choose the order of completion with these,
// not with timers, so that a loaded machine cannot reorder them).
Task<int> value_when(asyncio::Event* release, int value) {
  co_await release->wait();
  co_return value;
}

// Sets the events one by one, letting the loop run a few turns after each.
Task<void> release_in_order(std::vector<asyncio::Event*> events) {
  for (asyncio::Event* e : events) {
    co_await asyncio::sleep(0ns);
    co_await asyncio::sleep(0ns);
    e->set();
  }
}

template <class T>
Task<T> await_task(Task<T> task) {
  co_return co_await task;
}

Task<void> nap(std::chrono::nanoseconds delay) {
  co_await asyncio::sleep(delay);
}

Task<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

template <class T, class... Ts>
std::vector<Task<T>> vec(Task<T> first, Ts... rest) {
  std::vector<Task<T>> out;
  out.push_back(std::move(first));
  (out.push_back(std::move(rest)), ...);
  return out;
}

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

// ---------------------------------------------------------------------------------------------
// timeout / timeout_at

using TimeoutTest = AsyncioTest;

TEST_F(TimeoutTest, ExpiryRaisesTimeoutErrorAndTheBodySawCancelledError) {
  auto main_task = [&]() -> Task<void> {
    auto start = Clock::now();
    bool body_cancelled = false;
    bool expired_inside = false;
    auto body = [&](asyncio::Timeout& scope) -> Task<void> {
      try {
        co_await asyncio::sleep(kLong);
      } catch (const CancelledError&) {
        body_cancelled = true;
        expired_inside = scope.expired();
        throw;
      }
    };
    EXPECT_THROW(co_await asyncio::timeout(5ms, body), TimeoutError);
    EXPECT_TRUE(body_cancelled);
    EXPECT_TRUE(expired_inside);
    EXPECT_LT(Clock::now() - start, kLong / 4);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0) << "the timeout withdrew its cancel";
  };
  run(main_task());
}

TEST_F(TimeoutTest, TimeoutAtExpiry) {
  auto main_task = [&]() -> Task<void> {
    Clock::time_point deadline = Clock::now() + 5ms;
    std::optional<Clock::time_point> seen;
    auto body = [&](asyncio::Timeout& scope) -> Task<void> {
      seen = scope.when();
      co_await asyncio::sleep(kLong);
    };
    EXPECT_THROW(co_await asyncio::timeout_at(deadline, body), TimeoutError);
    EXPECT_EQ(seen, deadline);
  };
  run(main_task());
}

TEST_F(TimeoutTest, CompletionBeforeTheDeadline) {
  auto main_task = [&]() -> Task<void> {
    std::optional<Clock::time_point> when;
    auto body = [&](asyncio::Timeout& scope) -> Task<int> {
      when = scope.when();
      co_await asyncio::sleep(1ms);
      EXPECT_FALSE(scope.expired());
      co_return 11;
    };
    Clock::time_point before = Clock::now();
    int v = co_await asyncio::timeout(kLong, body);
    EXPECT_EQ(v, 11);
    EXPECT_TRUE(when.has_value() && *when > before);
    // The deadline passes later: nothing happens to the task.
    int w = co_await asyncio::timeout(3ms, value_after(0ns, 12));
    EXPECT_EQ(w, 12);
    co_await asyncio::sleep(6ms);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(TimeoutTest, NoDeadline) {
  auto main_task = [&]() -> Task<void> {
    bool had_when = true;
    auto body = [&](asyncio::Timeout& scope) -> Task<void> {
      had_when = scope.when().has_value();
      co_await asyncio::sleep(1ms);
      EXPECT_FALSE(scope.expired());
    };
    co_await asyncio::timeout(std::nullopt, body);
    EXPECT_FALSE(had_when);
    co_await asyncio::timeout_at(std::nullopt, body);
  };
  run(main_task());
}

TEST_F(TimeoutTest, ForeignExceptionPassesThrough) {
  auto main_task = [&]() -> Task<void> {
    auto body = []() -> Task<void> {
      throw MyError("foreign");
      co_return;
    };
    EXPECT_THROW_MSG(co_await asyncio::timeout(kLong, body), MyError, "foreign");
    // An exception raised while unwinding from the timeout's cancel wins over TimeoutError.
    auto crash = []() -> Task<void> {
      try {
        co_await asyncio::sleep(kLong);
      } catch (const CancelledError&) {
      }
      throw OtherError("raised during cancellation");
    };
    EXPECT_THROW(co_await asyncio::timeout(2ms, crash), OtherError);
  };
  run(main_task());
}

TEST_F(TimeoutTest, BodyThatSwallowsTheCancelReturnsItsValue) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    int v = co_await asyncio::timeout(2ms, swallow_cancel(kLong, 3, &cancels));
    EXPECT_EQ(v, 3);
    EXPECT_EQ(cancels, 1);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(TimeoutTest, OuterCancelInsideATimeoutStaysCancelledError) {
  auto guarded = [](int* cancels) -> Task<void> {
    co_await asyncio::timeout(kLong, sleeper(kLong, cancels));
  };
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    Task<void> t = asyncio::create_task(guarded(&cancels));
    co_await turns(1);
    t.cancel("from outside");
    EXPECT_THROW_MSG(co_await t, CancelledError, "from outside");
    EXPECT_EQ(cancels, 1);
    EXPECT_TRUE(t.cancelled());
  };
  run(main_task());
}

TEST_F(TimeoutTest, SelfCancelInsideAnUnexpiredTimeoutStaysCancelledError) {
  auto main_task = [&]() -> Task<void> {
    auto body = [](asyncio::Timeout& scope) -> Task<void> {
      asyncio::current_task()->cancel();
      co_await asyncio::sleep(kLong);
      EXPECT_FALSE(scope.expired());
    };
    EXPECT_THROW(co_await asyncio::timeout(kLong, body), CancelledError);
    EXPECT_EQ(asyncio::current_task()->uncancel(), 0);
  };
  run(main_task());
}

TEST_F(TimeoutTest, NestedTimeoutsWithTheSameDeadlineOnlyTheOutermostRaises) {
  auto main_task = [&]() -> Task<void> {
    Clock::time_point deadline = Clock::now() + 5ms;
    bool inner_saw_cancel = false;
    auto outer_body = [&]() -> Task<void> {
      try {
        co_await asyncio::timeout_at(deadline, [] { return nap(kLong); });
      } catch (const CancelledError&) {
        inner_saw_cancel = true;
        throw;
      }
    };
    EXPECT_THROW(co_await asyncio::timeout_at(deadline, outer_body), TimeoutError);
    EXPECT_TRUE(inner_saw_cancel);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(TimeoutTest, NestedInnerExpiresFirst) {
  auto main_task = [&]() -> Task<void> {
    auto body = []() -> Task<int> {
      bool inner_timed_out = false;
      try {
        co_await asyncio::timeout(2ms, nap(kLong));
      } catch (const TimeoutError&) {
        inner_timed_out = true;
      }
      EXPECT_TRUE(inner_timed_out);
      co_await asyncio::sleep(1ms);  // the outer scope is still fine
      co_return 1;
    };
    int v = co_await asyncio::timeout(kLong, body);
    EXPECT_EQ(v, 1);
  };
  run(main_task());
}

TEST_F(TimeoutTest, NestedOuterExpiresFirst) {
  auto main_task = [&]() -> Task<void> {
    bool inner_saw_cancel = false;
    auto body = [&]() -> Task<void> {
      try {
        co_await asyncio::timeout(kLong, nap(kLong));
      } catch (const TimeoutError&) {
        ADD_FAILURE() << "the inner scope did not expire";
      } catch (const CancelledError&) {
        inner_saw_cancel = true;
        throw;
      }
    };
    EXPECT_THROW(co_await asyncio::timeout(3ms, body), TimeoutError);
    EXPECT_TRUE(inner_saw_cancel);
  };
  run(main_task());
}

TEST_F(TimeoutTest, RescheduleEarlierLaterAndOff) {
  auto main_task = [&]() -> Task<void> {
    auto start = Clock::now();
    auto earlier = [](asyncio::Timeout& scope) -> Task<void> {
      scope.reschedule(Clock::now() + 2ms);
      co_await asyncio::sleep(kLong);
    };
    EXPECT_THROW(co_await asyncio::timeout(kLong, earlier), TimeoutError);
    EXPECT_LT(Clock::now() - start, kLong / 4);

    auto off = [](asyncio::Timeout& scope) -> Task<int> {
      scope.reschedule(std::nullopt);
      EXPECT_FALSE(scope.when().has_value());
      co_await asyncio::sleep(10ms);
      co_return 2;
    };
    int v = co_await asyncio::timeout(1ms, off);
    EXPECT_EQ(v, 2);

    auto later = [](asyncio::Timeout& scope) -> Task<int> {
      Clock::time_point when = Clock::now() + kLong;
      scope.reschedule(when);
      EXPECT_EQ(scope.when(), when);
      co_await asyncio::sleep(10ms);
      co_return 3;
    };
    int w = co_await asyncio::timeout(1ms, later);
    EXPECT_EQ(w, 3);
  };
  run(main_task());
}

TEST_F(TimeoutTest, RescheduleFromAnotherTask) {
  auto main_task = [&]() -> Task<void> {
    asyncio::Timeout* scope_seen = nullptr;
    auto body = [&](asyncio::Timeout& scope) -> Task<void> {
      scope_seen = &scope;
      co_await asyncio::sleep(kLong);
    };
    auto start = Clock::now();
    Task<void> t = asyncio::create_task(asyncio::timeout(kLong, body));
    co_await turns(1);
    EXPECT_NE(scope_seen, nullptr);
    if (scope_seen) scope_seen->reschedule(Clock::now() + 1ms);
    EXPECT_THROW(co_await t, TimeoutError);
    EXPECT_FALSE(t.cancelled());
    EXPECT_LT(Clock::now() - start, kLong / 4);
  };
  run(main_task());
}

TEST_F(TimeoutTest, RescheduleAfterExpiryIsRuntimeError) {
  auto main_task = [&]() -> Task<void> {
    std::string error;
    auto body = [&](asyncio::Timeout& scope) -> Task<void> {
      bool cancelled = false;
      try {
        co_await asyncio::sleep(kLong);
      } catch (const CancelledError&) {
        cancelled = true;
      }
      EXPECT_TRUE(cancelled);
      try {
        scope.reschedule(Clock::now() + kLong);
      } catch (const RuntimeError& e) {
        error = e.what();
      }
      throw CancelledError("re-raised");
    };
    EXPECT_THROW(co_await asyncio::timeout(2ms, body), TimeoutError);
    EXPECT_TRUE(contains(error, "already expired")) << error;
  };
  run(main_task());
}

TEST_F(TimeoutTest, ZeroOrPastDeadlineExpiresAtTheFirstSuspension) {
  // CPython's test_timeout_zero / test_timeout_zero_sleep_zero / test_timeout_in_the_past.
  auto main_task = [&]() -> Task<void> {
    EXPECT_THROW(co_await asyncio::timeout(0ns, nap(kLong)), TimeoutError);
    EXPECT_THROW(co_await asyncio::timeout(0ns, nap(0ns)), TimeoutError);
    EXPECT_THROW(co_await asyncio::timeout(-11s, nap(0ns)), TimeoutError);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
    // A body that never suspends finishes before the deadline can act.
    int v = co_await asyncio::timeout(0ns, []() -> Task<int> { co_return 4; });
    EXPECT_EQ(v, 4);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
    co_await asyncio::sleep(1ms);  // and the task is not cancelled afterwards
  };
  run(main_task());
}

TEST_F(TimeoutTest, TimeoutAfterASwallowedCancellation) {
  // CPython's test_timeout_after_cancellation: the cancelling() count at entry is respected.
  auto main_task = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    bool caught = false;
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
      caught = true;
    }
    EXPECT_TRUE(caught);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 1);
    EXPECT_THROW(co_await asyncio::timeout(1ms, nap(kLong)), TimeoutError);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 1);
    // And a new cancel inside a scope that has not expired stays a CancelledError.
    auto body = []() -> Task<void> {
      asyncio::current_task()->cancel();
      co_await asyncio::sleep(kLong);
    };
    EXPECT_THROW(co_await asyncio::timeout(kLong, body), CancelledError);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 2);
    asyncio::current_task()->uncancel();
    asyncio::current_task()->uncancel();
  };
  run(main_task());
}

TEST_F(TimeoutTest, TheTaskUsingATimeoutIsNotCancelledAfterward) {
  auto outer = []() -> Task<void> {
    bool timed_out = false;
    try {
      co_await asyncio::timeout(1ms, nap(kLong));
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    co_await asyncio::sleep(1ms);
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(outer());
    co_await t;
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 0);
  };
  run(main_task());
}

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

// ---------------------------------------------------------------------------------------------
// TaskGroup

using TaskGroupTest = AsyncioTest;

TEST_F(TaskGroupTest, WaitsForEveryChild) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t1;
    Task<int> t2;
    Task<int> t3;
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      t1 = tg.create_task(value_after(2ms, 42));
      t2 = tg.create_task(value_after(5ms, 11), "second");
      EXPECT_EQ(tg.size(), 2u);
      co_await asyncio::sleep(1ms);
      t3 = tg.create_task(value_after(3ms, 7));  // added later
    });
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
    EXPECT_EQ(t1.result(), 42);
    EXPECT_EQ(t2.result(), 11);
    EXPECT_EQ(t2.get_name(), "second");
    EXPECT_EQ(t3.result(), 7);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, EmptyGroup) {
  auto main_task = [&]() -> Task<void> {
    bool ran = false;
    co_await asyncio::task_group([&](asyncio::TaskGroup&) -> Task<void> {
      ran = true;
      co_return;
    });
    EXPECT_TRUE(ran);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, AnExplicitlyCancelledChildDoesNotAbortTheGroup) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t1;
    Task<int> t2;
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      t1 = tg.create_task(value_after(kLong, 42));
      co_await asyncio::sleep(1ms);
      t1.cancel();
      t2 = tg.create_task(value_after(2ms, 11));
    });
    EXPECT_TRUE(t1.cancelled());
    EXPECT_EQ(t2.result(), 11);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, AFailingChildCancelsItsSiblingsAndTheBody) {
  auto main_task = [&]() -> Task<void> {
    int sibling_cancels = 0;
    bool body_cancelled = false;
    bool after_group = false;
    auto runner = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child failed"));
        tg.create_task(sleeper(kLong, &sibling_cancels));
        tg.create_task(sleeper(kLong, &sibling_cancels));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
          body_cancelled = true;
          throw;
        }
      });
      after_group = true;
    };
    auto start = Clock::now();
    Task<void> r = asyncio::create_task(runner());
    int groups = 0;
    try {
      co_await r;
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 1u);
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_EQ(sibling_cancels, 2);
    EXPECT_TRUE(body_cancelled);
    EXPECT_FALSE(after_group);
    EXPECT_FALSE(r.cancelled()) << "it failed with the group, it was not cancelled";
    EXPECT_LT(Clock::now() - start, kLong / 4);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, ErrorsOfSeveralChildrenAreGathered) {
  auto fails_when_cancelled = []() -> Task<void> {
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
    }
    throw OtherError("failed while being cancelled");
  };
  auto main_task = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fails_when_cancelled());
        tg.create_task(fail_after(1ms, "first"));
        co_return;
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 2u);
      EXPECT_EQ(count_in<MyError>(g), 1);
      EXPECT_EQ(count_in<OtherError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, TheBodysExceptionIsIncludedAndTheChildrenCancelled) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t1;
    Task<int> t2;
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        t1 = tg.create_task(value_after(kLong, 1));
        t2 = tg.create_task(value_after(kLong, 2));
        co_await asyncio::sleep(1ms);
        throw MyError("from the body");
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 1u);
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_TRUE(t1.cancelled());
    EXPECT_TRUE(t2.cancelled());
  };
  run(main_task());
}

TEST_F(TaskGroupTest, BodyAndChildErrorsTogether) {
  // CPython's test_taskgroup_19: the body raises while it is being cancelled for a child's error.
  auto main_task = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child"));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
        }
        throw OtherError("body");
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 2u);
      EXPECT_EQ(count_in<MyError>(g), 1);
      EXPECT_EQ(count_in<OtherError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CancellingTheParentWhileTheGroupWaitsCancelsTheChildren) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto runner = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        for (int i = 0; i < 5; ++i) tg.create_task(sleeper(kLong, &cancels));
        co_return;
      });
    };
    Task<void> r = asyncio::create_task(runner());
    co_await turns(2);
    EXPECT_FALSE(r.done());
    r.cancel("test");
    EXPECT_THROW_MSG(co_await r, CancelledError, "test");
    EXPECT_TRUE(r.cancelled());
    EXPECT_EQ(cancels, 5);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CancellingTheParentWhileTheBodyWaits) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto runner = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        for (int i = 0; i < 5; ++i) tg.create_task(sleeper(kLong, &cancels));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
          cancels += 10;
          throw;
        }
      });
    };
    Task<void> r = asyncio::create_task(runner());
    co_await turns(2);
    r.cancel("test");
    EXPECT_THROW_MSG(co_await r, CancelledError, "test");
    EXPECT_EQ(cancels, 15);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, BodyRaisingOnItsCancellationGivesAnExceptionGroup) {
  // CPython's test_taskgroup_18.
  auto main_task = [&]() -> Task<void> {
    auto runner = []() -> Task<void> {
      co_await asyncio::task_group([](asyncio::TaskGroup&) -> Task<void> {
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
        }
        throw MyError("instead of the cancel");
      });
    };
    Task<void> r = asyncio::create_task(runner());
    co_await turns(2);
    r.cancel();
    int groups = 0;
    try {
      co_await r;
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CreateTaskWhileShuttingDownIsRuntimeError) {
  auto main_task = [&]() -> Task<void> {
    std::string error;
    bool started = false;
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child"));
        bool cancelled = false;
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
          cancelled = true;
        }
        EXPECT_TRUE(cancelled);
        try {
          tg.create_task(set_flag(&started));
        } catch (const RuntimeError& e) {
          error = e.what();
        }
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_TRUE(contains(error, "shutting down")) << error;
    co_await asyncio::sleep(0ns);
    EXPECT_FALSE(started);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CreateTaskOnceTheGroupFinishedIsRuntimeError) {
  // A done callback registered on the last child before it joined the group runs before the
  // group's exit resumes: the group is finished (and still there).
  auto main_task = [&]() -> Task<void> {
    asyncio::TaskGroup* group = nullptr;
    std::string error;
    bool late_started = false;
    Task<int> last = value_after(1ms, 1);
    last.add_done_callback([&](const Task<int>&) {
      try {
        group->create_task(set_flag(&late_started));
      } catch (const RuntimeError& e) {
        error = e.what();
      }
    });
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      group = &tg;
      tg.create_task(last);
      co_return;
    });
    EXPECT_TRUE(contains(error, "finished")) << error;
    co_await asyncio::sleep(0ns);
    EXPECT_FALSE(late_started);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, AChildMayAddASiblingWhileTheGroupExits) {
  auto spawner = [](asyncio::TaskGroup* tg, Task<int>* out) -> Task<void> {
    co_await asyncio::sleep(1ms);
    *out = tg->create_task(value_after(1ms, 5));
  };
  auto main_task = [&]() -> Task<void> {
    Task<int> late;
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.create_task(spawner(&tg, &late));
      co_return;
    });
    EXPECT_TRUE(late.valid());
    if (late.valid()) {
      EXPECT_TRUE(late.done());
      EXPECT_EQ(late.result(), 5);
    }
  };
  run(main_task());
}

TEST_F(TaskGroupTest, NestedGroupErrorIsWrapped) {
  // CPython's test_taskgroup_14.
  auto main_task = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& g1) -> Task<void> {
        g1.create_task(fail_after(kLong, "outer child"));
        co_await asyncio::task_group([](asyncio::TaskGroup& g2) -> Task<void> {
          g2.create_task(fail_after(1ms, "inner child"));
          co_return;
        });
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 1u);
      EXPECT_EQ(count_in<ExceptionGroup>(g), 1);
      if (!g.exceptions().empty()) {
        try {
          std::rethrow_exception(g.exceptions()[0]);
        } catch (const ExceptionGroup& inner) {
          EXPECT_EQ(count_in<MyError>(inner), 1);
        } catch (...) {
        }
      }
    }
    EXPECT_EQ(groups, 1);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, TheGroupWithdrawsItsCancelOfTheParent) {
  auto main_task = [&]() -> Task<void> {
    bool caught = false;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(0ns, "x"));
        co_await asyncio::sleep(kLong);
      });
    } catch (const ExceptionGroup&) {
      caught = true;
    }
    EXPECT_TRUE(caught);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
    co_await asyncio::sleep(1ms);  // not cancelled
  };
  run(main_task());
}

TEST_F(TaskGroupTest, InsideATimeout) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto group = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(sleeper(kLong, &cancels));
        tg.create_task(sleeper(kLong, &cancels));
        co_return;
      });
    };
    auto start = Clock::now();
    EXPECT_THROW(co_await asyncio::timeout(2ms, group()), TimeoutError);
    EXPECT_EQ(cancels, 2);
    EXPECT_LT(Clock::now() - start, kLong / 4);

    // A child's failure inside a timeout is an ExceptionGroup, not a TimeoutError.
    auto failing = []() -> Task<void> {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child"));
        co_await asyncio::sleep(kLong);
      });
    };
    EXPECT_THROW(co_await asyncio::timeout(kLong, failing()), ExceptionGroup);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

}  // namespace
