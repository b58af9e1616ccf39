// Tests of concur/asyncio/loop.hpp: EventLoop (callbacks, timers, the thread-safe door, states,
// close, debug mode, signals) and asyncio::run. The cases of CPython's
// Lib/test/test_asyncio/{test_events,test_base_events,test_runners}.py, carried over.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
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
using concur::RuntimeError;
using Clock = std::chrono::steady_clock;

constexpr auto kLong = 10s;

struct MyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using concur::testing::AsyncioTest;
using concur::testing::contains;
using concur::testing::describe;
using concur::testing::turns;

// The reports that contain `part` (debug mode may add "slow callback" reports of its own when
// the machine is loaded; the tests look for the one they provoked).
std::vector<std::string> matching(const std::vector<std::string>& reports,
                                  const std::string& part) {
  std::vector<std::string> out;
  for (const std::string& r : reports) {
    if (contains(r, part)) out.push_back(r);
  }
  return out;
}

Task<int> value_after(std::chrono::nanoseconds delay, int value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Task<void> wait_event(asyncio::Event& event) {
  co_await event.wait();
}

Task<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

void busy_wait(std::chrono::nanoseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

// ---------------------------------------------------------------------------------------------
// Callbacks and timers

using LoopTest = AsyncioTest;

TEST_F(LoopTest, CallSoonRunsInFifoOrder) {
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    loop.call_soon([this, &order, i] {
      order.push_back(i);
      if (i == 0) {
        // Scheduled by a callback: after the ones already queued.
        loop.call_soon([&] {
          order.push_back(10);
          loop.stop();
        });
      }
    });
  }
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 10}));
  EXPECT_FALSE(loop.is_running());
}

TEST_F(LoopTest, CallLaterRunsByDeadlineAndEqualDeadlinesInOrder) {
  std::vector<int> order;
  Clock::time_point before = Clock::now();
  asyncio::CallbackHandle later = loop.call_later(3ms, [&] { order.push_back(-1); });
  ASSERT_TRUE(later.when().has_value());
  EXPECT_GE(*later.when(), before + 3ms);
  later.cancel();
  // One base time, so that a preemption between these lines cannot reorder the deadlines.
  Clock::time_point base = Clock::now();
  asyncio::CallbackHandle h = loop.call_at(base + 15ms, [&] { order.push_back(3); });
  loop.call_at(base + 1ms, [&] { order.push_back(1); });
  loop.call_at(base + 8ms, [&] { order.push_back(2); });
  loop.call_at(base + 2ms, [&] { order.push_back(21); });
  loop.call_at(base + 2ms, [&] { order.push_back(22); });
  loop.call_at(base + 2ms, [&] { order.push_back(23); });
  loop.call_at(base - 5ms, [&] { order.push_back(0); });  // already due
  loop.call_at(base + 20ms, [&] { loop.stop(); });
  ASSERT_TRUE(h.when().has_value());
  EXPECT_EQ(*h.when(), base + 15ms);
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 21, 22, 23, 2, 3}));
  EXPECT_GE(Clock::now(), *h.when()) << "a timer never fires early";
}

TEST_F(LoopTest, CallbackHandleCancel) {
  std::vector<int> order;
  asyncio::CallbackHandle none;
  EXPECT_FALSE(none.cancelled());
  none.cancel();  // an empty handle: no-op
  asyncio::CallbackHandle h1 = loop.call_soon([&] { order.push_back(1); });
  asyncio::CallbackHandle h2 = loop.call_soon([&] { order.push_back(2); });
  asyncio::CallbackHandle h3 = loop.call_later(1ms, [&] { order.push_back(3); });
  EXPECT_FALSE(h1.when().has_value()) << "call_soon has no deadline";
  h2.cancel();
  h3.cancel();
  h3.cancel();  // idempotent
  EXPECT_TRUE(h2.cancelled());
  EXPECT_TRUE(h3.cancelled());
  EXPECT_FALSE(h1.cancelled());
  loop.call_later(5ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{1}));
  h1.cancel();  // after it ran: nothing to undo
}

TEST_F(LoopTest, ACallbackThatThrowsIsReportedAndTheLoopGoesOn) {
  std::vector<int> order;
  loop.call_soon([] { throw MyError("callback failed"); });
  loop.call_soon([&] { order.push_back(1); });
  loop.call_later(1ms, [] { throw MyError("timer failed"); });
  loop.call_later(2ms, [&] {
    order.push_back(2);
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  std::vector<std::string> got = take_reports();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(contains(got[0], "Exception in the callback scheduled at")) << got[0];
  EXPECT_TRUE(contains(got[0], "asyncio_loop_test.cpp")) << got[0];
  EXPECT_TRUE(contains(got[0], "callback failed")) << got[0];
  EXPECT_TRUE(contains(got[1], "timer failed")) << got[1];
}

TEST_F(LoopTest, WithoutAHandlerReportsGoToStderr) {
  loop.set_exception_handler(nullptr);
  concur::testing::CapturedStderr err;
  loop.call_soon([] { throw MyError("to stderr"); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_TRUE(contains(err.text(), "to stderr")) << err.text();
}

TEST_F(LoopTest, AHandlerThatThrowsFallsBackToStderr) {
  loop.set_exception_handler([](const asyncio::ExceptionContext&) { throw MyError("handler"); });
  concur::testing::CapturedStderr err;
  loop.call_soon([] { throw MyError("original"); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_TRUE(contains(err.text(), "original")) << err.text();
}

TEST_F(LoopTest, TimeIsMonotonic) {
  Clock::time_point a = loop.time();
  Clock::time_point b = loop.time();
  EXPECT_LE(a, b);
  EXPECT_NE(loop.native_handle(), nullptr);
}

// ---------------------------------------------------------------------------------------------
// call_soon_threadsafe

TEST_F(LoopTest, CallSoonThreadsafeWakesASleepingLoop) {
  asyncio::Event woken;
  auto main_task = [&]() -> Task<void> {
    std::thread poster([&] {
      std::this_thread::sleep_for(2ms);
      loop.call_soon_threadsafe([&] { woken.set(); });
    });
    // Nothing else will happen on the loop for kLong: only the wake-up ends this early.
    auto start = Clock::now();
    co_await asyncio::wait_for(wait_event(woken), kLong);
    EXPECT_LT(Clock::now() - start, kLong / 4);
    poster.join();
  };
  run(main_task());
}

TEST_F(LoopTest, CallSoonThreadsafeFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kEach = 200;
  int count = 0;  // touched on the loop's thread only
  asyncio::Event all;
  auto main_task = [&]() -> Task<void> {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) {
          loop.call_soon_threadsafe([&] {
            if (++count == kThreads * kEach) all.set();
          });
        }
      });
    }
    co_await asyncio::wait_for(wait_event(all), kLong);
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(count, kThreads * kEach);
  };
  run(main_task());
}

TEST_F(LoopTest, AThrowingThreadsafeCallbackIsReported) {
  loop.call_soon_threadsafe([] { throw MyError("posted"); });
  loop.call_soon_threadsafe([&] { loop.stop(); });
  loop.run_forever();
  std::vector<std::string> got = take_reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0], "call_soon_threadsafe")) << got[0];
  EXPECT_TRUE(contains(got[0], "posted")) << got[0];
}

// ---------------------------------------------------------------------------------------------
// States: running, stopped, closed

TEST_F(LoopTest, RunUntilCompleteReturnsAndRethrows) {
  EXPECT_EQ(run(value_after(1ms, 4)), 4);
  auto failing = []() -> Task<int> {
    co_await asyncio::sleep(0ns);
    throw MyError("main failed");
  };
  EXPECT_THROW_MSG(run(failing()), MyError, "main failed");
  Task<int> spawned = loop.create_task(value_after(0ns, 5), "named");
  EXPECT_EQ(spawned.get_name(), "named");
  EXPECT_EQ(run(spawned), 5);
}

TEST_F(LoopTest, RunIsNotReentrant) {
  bool nested_ran = false;
  auto main_task = [&]() -> Task<void> {
    EXPECT_TRUE(loop.is_running());
    EXPECT_THROW_MSG(loop.run_until_complete(set_flag(&nested_ran)), RuntimeError,
                     "already running");
    EXPECT_THROW_MSG(loop.run_forever(), RuntimeError, "already running");
    asyncio::EventLoop other;
    EXPECT_THROW(other.run_until_complete(set_flag(&nested_ran)), RuntimeError);
    EXPECT_THROW(other.run_forever(), RuntimeError);
    EXPECT_THROW_MSG(loop.close(), RuntimeError, "running");
    co_await turns(2);
  };
  run(main_task());
  EXPECT_FALSE(nested_ran) << "a refused run_until_complete must not schedule the coroutine";
  EXPECT_EQ(loop.pending_tasks(), 0u);
}

TEST_F(LoopTest, ALoopWithTasksDestroyedInsideAnotherRunningLoop) {
  // Its tasks cannot be run to unwind them (this thread runs another loop): they are reported
  // and destroyed, and the destructor does not throw.
  std::vector<std::string> other_reports;
  auto main_task = [&]() -> Task<void> {
    {
      asyncio::EventLoop other;
      other.set_exception_handler([&](const asyncio::ExceptionContext& context) {
        other_reports.push_back(describe(context));
      });
      other.create_task(value_after(kLong, 1), "orphan");
    }
    co_return;
  };
  run(main_task());
  ASSERT_EQ(other_reports.size(), 1u);
  EXPECT_TRUE(contains(other_reports[0], "orphan")) << other_reports[0];
}

TEST_F(LoopTest, AClosedLoopRefusesEverything) {
  asyncio::EventLoop closed;
  closed.close();
  closed.close();  // idempotent
  EXPECT_TRUE(closed.is_closed());
  bool ran = false;
  EXPECT_THROW_MSG(closed.run_until_complete(set_flag(&ran)), RuntimeError, "closed");
  EXPECT_THROW(closed.run_forever(), RuntimeError);
  EXPECT_THROW(closed.call_soon([] {}), RuntimeError);
  EXPECT_THROW(closed.call_later(1ms, [] {}), RuntimeError);
  EXPECT_THROW(closed.call_at(Clock::now(), [] {}), RuntimeError);
  EXPECT_THROW_MSG(closed.call_soon_threadsafe([] {}), RuntimeError, "closed");
  EXPECT_THROW(closed.create_task(set_flag(&ran)), RuntimeError);
  EXPECT_THROW(closed.default_executor(), RuntimeError);
  EXPECT_THROW(closed.add_signal_handler(SIGUSR1, [] {}), RuntimeError);
  EXPECT_FALSE(ran);
}

TEST_F(LoopTest, StopInsideRunUntilCompleteIsRuntimeError) {
  // CPython's test_run_until_complete_stopped; the task survives and can be run to its end.
  Task<int> t = loop.create_task(value_after(2ms, 6));
  loop.call_soon([&] { loop.stop(); });
  EXPECT_THROW_MSG(run(t), RuntimeError, "stopped before");
  EXPECT_FALSE(t.done());
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(run(t), 6);
}

TEST_F(LoopTest, CloseCancelsLeftoverTasksAndRunsTheirCleanup) {
  struct Guard {
    bool* flag;
    ~Guard() { *flag = true; }
  };
  bool cleaned = false;
  bool saw_cancel = false;
  bool never_started_ran = false;
  auto leftover = [&]() -> Task<void> {
    Guard g{&cleaned};
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
      saw_cancel = true;
      throw;
    }
  };
  auto main_task = [&]() -> Task<void> {
    asyncio::create_task(leftover());
    co_await turns(1);
  };
  run(main_task());
  loop.create_task(set_flag(&never_started_ran));
  EXPECT_EQ(loop.pending_tasks(), 2u);
  EXPECT_FALSE(cleaned);
  loop.close();
  EXPECT_TRUE(saw_cancel);
  EXPECT_TRUE(cleaned);
  EXPECT_FALSE(never_started_ran);
  EXPECT_EQ(loop.pending_tasks(), 0u);
}

TEST_F(LoopTest, CloseGivesUpOnATaskThatIgnoresCancellation) {
  int cancels = 0;
  auto stubborn = [&]() -> Task<void> {
    for (;;) {
      try {
        co_await asyncio::sleep(1ms);
      } catch (const CancelledError&) {
        ++cancels;
      }
    }
  };
  auto main_task = [&]() -> Task<void> {
    asyncio::create_task(stubborn(), "stubborn");
    co_await turns(1);
  };
  run(main_task());
  loop.close();
  EXPECT_GE(cancels, 1);
  EXPECT_EQ(loop.pending_tasks(), 0u);
  std::vector<std::string> got = take_reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0], "stubborn")) << got[0];
  EXPECT_TRUE(contains(got[0], "destroyed but it is pending")) << got[0];
}

TEST_F(LoopTest, PendingTasksAndCancelAllTasks) {
  std::vector<Task<int>> tasks;
  for (int i = 0; i < 3; ++i) tasks.push_back(loop.create_task(value_after(kLong, i)));
  run(turns(1));
  EXPECT_EQ(loop.pending_tasks(), 3u);
  loop.cancel_all_tasks();
  run(turns(2));
  EXPECT_EQ(loop.pending_tasks(), 0u);
  for (Task<int>& t : tasks) EXPECT_TRUE(t.cancelled());
}

TEST_F(LoopTest, GetRunningLoop) {
  EXPECT_THROW_MSG(asyncio::get_running_loop(), RuntimeError, "no running event loop");
  EXPECT_EQ(asyncio::current_task(), nullptr);
  auto main_task = [&]() -> Task<void> {
    EXPECT_EQ(&asyncio::get_running_loop(), &loop);
    co_return;
  };
  run(main_task());
  EXPECT_THROW(asyncio::get_running_loop(), RuntimeError);
}

// ---------------------------------------------------------------------------------------------
// Debug mode

TEST_F(LoopTest, DebugModeReportsASlowCallbackAndASlowTaskStep) {
  EXPECT_FALSE(loop.get_debug());
  loop.set_debug(true);
  EXPECT_TRUE(loop.get_debug());
  loop.set_slow_callback_duration(1ms);
  loop.call_soon([] { busy_wait(5ms); });
  const int busy_line = __LINE__ - 1;
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  std::vector<std::string> got =
      matching(take_reports(), "asyncio_loop_test.cpp:" + std::to_string(busy_line));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0], "Executing the callback scheduled at")) << got[0];
  EXPECT_TRUE(contains(got[0], "blocked the event loop")) << got[0];

  auto slow_step = []() -> Task<void> {
    co_await asyncio::sleep(0ns);
    busy_wait(5ms);
  };
  auto main_task = [&]() -> Task<void> { co_await asyncio::create_task(slow_step(), "slowpoke"); };
  run(main_task());
  got = matching(take_reports(), "Executing task slowpoke");
  EXPECT_GE(got.size(), 1u);
}

TEST_F(LoopTest, WithoutDebugModeNothingIsReported) {
  loop.set_slow_callback_duration(1ms);
  loop.call_soon([] { busy_wait(5ms); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_TRUE(reports.empty());
  // Debug mode, but every callback is quick.
  loop.set_debug(true);
  loop.set_slow_callback_duration(kLong);
  loop.call_soon([] {});
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_TRUE(reports.empty());
}

TEST_F(LoopTest, DebugModeReportsATaskThatSwallowedItsCancellation) {
  loop.set_debug(true);
  auto swallower = []() -> Task<int> {
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
    }
    co_return 1;
  };
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(swallower(), "swallower");
    co_await turns(1);
    t.cancel();
    int v = co_await t;
    EXPECT_EQ(v, 1);
  };
  run(main_task());
  std::vector<std::string> got = matching(take_reports(), "cancelled but returned normally");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0], "swallower")) << got[0];
}

// ---------------------------------------------------------------------------------------------
// Signals

TEST_F(LoopTest, SleepWithAResultReturnsItAfterTheDelay) {
  // Python's asyncio.sleep(delay, result) (CPython's test_sleep / test_tasks.py's sleep cases):
  // the value comes back once the delay has passed; a cancellation drops it.
  auto main_task = [&]() -> Task<void> {
    auto start = Clock::now();
    int v = co_await asyncio::sleep(2ms, 42);
    EXPECT_EQ(v, 42);
    EXPECT_GE(Clock::now() - start, 1ms);
    std::string s = co_await asyncio::sleep(0ns, std::string("yielded"));
    EXPECT_EQ(s, "yielded");
    Task<std::unique_ptr<int>> moved = asyncio::create_task([]() -> Task<std::unique_ptr<int>> {
      co_return co_await asyncio::sleep(0ns, std::make_unique<int>(7));
    }());
    std::unique_ptr<int> p = co_await std::move(moved);
    EXPECT_TRUE(p && *p == 7);
    Task<int> cancelled = asyncio::create_task(
        []() -> Task<int> { co_return co_await asyncio::sleep(std::chrono::seconds(10), 1); }());
    co_await asyncio::sleep(0ns);
    cancelled.cancel();
    EXPECT_THROW(co_await cancelled, CancelledError);
  };
  run(main_task());
}

TEST_F(LoopTest, SignalHandler) {
  int calls = 0;
  asyncio::Event got;
  loop.add_signal_handler(SIGUSR1, [&] {
    ++calls;
    got.set();
  });
  auto main_task = [&]() -> Task<void> {
    std::raise(SIGUSR1);
    co_await asyncio::wait_for(wait_event(got), kLong);
    EXPECT_EQ(calls, 1);
  };
  run(main_task());
  EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
  EXPECT_THROW(loop.add_signal_handler(SIGKILL, [] {}), std::invalid_argument);
  EXPECT_THROW(loop.add_signal_handler(0, [] {}), std::invalid_argument);
  EXPECT_THROW(loop.add_signal_handler(SIGUSR2, nullptr), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// asyncio::run

class RunTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(asyncio::detail::live_frames(), frames_before_) << "coroutine frames leaked";
  }
  std::int64_t frames_before_ = asyncio::detail::live_frames();
};

TEST_F(RunTest, ReturnsTheValueAndRethrows) {
  EXPECT_EQ(asyncio::run(value_after(1ms, 3)), 3);
  auto failing = []() -> Task<void> {
    co_await asyncio::sleep(0ns);
    throw MyError("from main");
  };
  EXPECT_THROW_MSG(asyncio::run(failing()), MyError, "from main");
  auto debug = []() -> Task<bool> { co_return asyncio::get_running_loop().get_debug(); };
  EXPECT_TRUE(asyncio::run(debug(), {.debug = true}));
  EXPECT_THROW(asyncio::get_running_loop(), RuntimeError) << "no loop is left running";
}

TEST_F(RunTest, CancelsTheTasksMainLeftBehindAndWaitsForThem) {
  bool cancelled = false;
  bool cleaned_up = false;
  auto hanging = [&]() -> Task<void> {
    bool caught = false;
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
      caught = true;
    }
    cancelled = caught;
    co_await asyncio::sleep(1ms);  // an asynchronous cleanup: run() waits for it
    cleaned_up = true;
    throw CancelledError("done cleaning up");
  };
  auto main_task = [&]() -> Task<int> {
    asyncio::create_task(hanging());
    co_await asyncio::sleep(0ns);
    co_return 9;
  };
  auto start = Clock::now();
  EXPECT_EQ(asyncio::run(main_task()), 9);
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(cleaned_up);
  EXPECT_LT(Clock::now() - start, kLong / 4);
}

TEST_F(RunTest, ReportsAnErrorOfATaskLeftBehind) {
  std::vector<std::string> reports;
  auto hanging = []() -> Task<void> {
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
    }
    throw MyError("failed while cancelled");
  };
  auto main_task = [&]() -> Task<void> {
    asyncio::get_running_loop().set_exception_handler(
        [&](const asyncio::ExceptionContext& context) { reports.push_back(describe(context)); });
    asyncio::create_task(hanging());
    co_await asyncio::sleep(0ns);
  };
  asyncio::run(main_task());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(contains(reports[0], "asyncio::run() shutdown")) << reports[0];
  EXPECT_TRUE(contains(reports[0], "failed while cancelled")) << reports[0];
}

TEST_F(RunTest, SigintCancelsTheMainTaskAndRaisesKeyboardInterrupt) {
  std::string message;
  bool cleaned_up = false;
  auto main_task = [&]() -> Task<void> {
    struct sigaction current {};
    sigaction(SIGINT, nullptr, &current);
    EXPECT_NE(current.sa_handler, SIG_DFL) << "run() handles SIGINT";
    std::raise(SIGINT);
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError& e) {
      message = e.what();
      cleaned_up = true;
      throw;
    }
  };
  auto start = Clock::now();
  EXPECT_THROW_MSG(asyncio::run(main_task()), concur::KeyboardInterrupt, "SIGINT");
  EXPECT_TRUE(cleaned_up);
  EXPECT_TRUE(contains(message, "SIGINT")) << message;
  EXPECT_LT(Clock::now() - start, kLong / 4);
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, SIG_DFL) << "the default action is back after run()";
}

TEST_F(RunTest, HandleSigintOffLeavesSigintAlone) {
  auto main_task = []() -> Task<bool> {
    struct sigaction current {};
    sigaction(SIGINT, nullptr, &current);
    co_return current.sa_handler == SIG_DFL;
  };
  EXPECT_TRUE(asyncio::run(main_task(), {.handle_sigint = false}));
}

TEST_F(RunTest, CannotBeCalledFromARunningLoop) {
  bool inner_ran = false;
  auto inner = [&]() -> Task<void> {
    inner_ran = true;
    co_return;
  };
  auto main_task = [&]() -> Task<void> {
    EXPECT_THROW(asyncio::run(inner()), RuntimeError);
    co_return;
  };
  asyncio::run(main_task());
  EXPECT_FALSE(inner_ran);
}

}  // namespace
