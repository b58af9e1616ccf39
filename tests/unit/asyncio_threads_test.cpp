// Tests of concur/asyncio/threads.hpp: to_thread, run_in_executor and wrap_future, the bridges
// between the loop and threads (CPython's test_threads.py and the executor parts of
// test_events.py / test_futures.py), including cancellation and completion from other threads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "concur/futures.hpp"
#include "concur/thread_pool.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::CancelledError;

constexpr auto kLong = 10s;

struct MyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using concur::testing::AsyncioTest;
using concur::testing::turns;

using ThreadsTest = AsyncioTest;

TEST_F(ThreadsTest, ToThreadReturnsTheResultFromAnotherThread) {
  auto main_task = [&]() -> Task<void> {
    int sum = co_await asyncio::to_thread([](int a, int b) { return a + b; }, 2, 3);
    EXPECT_EQ(sum, 5);
    std::thread::id worker = co_await asyncio::to_thread([] { return std::this_thread::get_id(); });
    EXPECT_NE(worker, std::this_thread::get_id());
    std::string text =
        co_await asyncio::to_thread([](std::string s) { return s + "!"; }, std::string("moved in"));
    EXPECT_EQ(text, "moved in!");
    bool ran = false;
    co_await asyncio::to_thread([&ran] { ran = true; });
    EXPECT_TRUE(ran);
    EXPECT_EQ(&asyncio::get_running_loop().default_executor(), &loop.default_executor());
  };
  run(main_task());
}

TEST_F(ThreadsTest, ToThreadRethrowsTheExceptionAsItsOwnType) {
  auto main_task = [&]() -> Task<void> {
    EXPECT_THROW_MSG((void)co_await asyncio::to_thread([]() -> int { throw MyError("in thread"); }),
                     MyError, "in thread");
    EXPECT_THROW(co_await asyncio::to_thread([] { throw std::out_of_range("void fn"); }),
                 std::out_of_range);
  };
  run(main_task());
}

TEST_F(ThreadsTest, TheLoopKeepsRunningWhileAFunctionRuns) {
  concur::testing::Event go;
  auto main_task = [&]() -> Task<void> {
    // The function waits for the loop to do something; if the loop were blocked it never would.
    Task<bool> t = asyncio::create_task(asyncio::to_thread([&go] { return go.wait_for(20s); }));
    co_await asyncio::sleep(1ms);
    EXPECT_FALSE(t.done());
    go.set();
    bool released = co_await t;
    EXPECT_TRUE(released);
  };
  run(main_task());
}

TEST_F(ThreadsTest, RunInExecutorOnItsOwnPool) {
  concur::ThreadPoolExecutor pool(2);
  std::latch both_running(2);
  auto meet = [&both_running](int v) {
    both_running.arrive_and_wait();  // only returns when both run at once, on two workers
    return v * 10;
  };
  auto main_task = [&]() -> Task<void> {
    auto [a, b] =
        co_await asyncio::wait_for(asyncio::gather(asyncio::run_in_executor(pool, meet, 1),
                                                   asyncio::run_in_executor(pool, meet, 2)),
                                   kLong);
    EXPECT_EQ(a, 10);
    EXPECT_EQ(b, 20);
  };
  run(main_task());
  pool.shutdown(true);
}

TEST_F(ThreadsTest, ManyCallsAtOnce) {
  auto main_task = [&]() -> Task<void> {
    std::vector<Task<int>> calls;
    for (int i = 1; i <= 40; ++i) calls.push_back(asyncio::to_thread([](int x) { return x; }, i));
    std::vector<int> results = co_await asyncio::gather(std::move(calls));
    int sum = 0;
    for (int r : results) sum += r;
    EXPECT_EQ(sum, 820);
    EXPECT_EQ(results.front(), 1);
    EXPECT_EQ(results.back(), 40);
  };
  run(main_task());
}

TEST_F(ThreadsTest, CancelWhileWaitingRaisesAtOnce) {
  concur::testing::Event release;
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(asyncio::to_thread([&] {
      started = true;
      release.wait_for(20s);
      finished = true;
    }));
    // Cancelled while the function runs (a call still queued would be cancelled for good and
    // never run: CancellingAQueuedCallMeansItNeverRuns). A fixed sleep was not enough on a
    // loaded machine.
    while (!started.load()) co_await asyncio::sleep(1ms);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(finished.load()) << "the task did not wait for the function";
    release.set();
  };
  run(main_task());
  EXPECT_TRUE(concur::testing::eventually([&] { return finished.load(); }));
}

TEST_F(ThreadsTest, CancellingAQueuedCallMeansItNeverRuns) {
  concur::ThreadPoolExecutor pool(1);
  concur::testing::Event release;
  std::atomic<bool> second_ran{false};
  auto main_task = [&]() -> Task<void> {
    Task<void> first =
        asyncio::create_task(asyncio::run_in_executor(pool, [&] { release.wait_for(20s); }));
    Task<void> second =
        asyncio::create_task(asyncio::run_in_executor(pool, [&] { second_ran = true; }));
    co_await turns(2);
    second.cancel();
    EXPECT_THROW(co_await second, CancelledError);
    release.set();
    co_await first;
  };
  run(main_task());
  pool.shutdown(true);
  EXPECT_FALSE(second_ran.load());
}

TEST_F(ThreadsTest, WrapFutureOfAPromiseCompletedFromAnotherThread) {
  auto main_task = [&]() -> Task<void> {
    concur::Promise<int> p;
    concur::Future<int> f = p.get_future();
    std::thread producer([&p] {
      std::this_thread::sleep_for(2ms);
      p.set_result(42);
    });
    // No timer is armed: only the cross-thread wake-up can resume this task.
    int v = co_await asyncio::wrap_future(f);
    producer.join();
    EXPECT_EQ(v, 42);

    concur::Promise<int> q;
    std::thread failer([&q] {
      std::this_thread::sleep_for(1ms);
      q.set_exception(std::make_exception_ptr(MyError("from the producer")));
    });
    EXPECT_THROW_MSG((void)co_await asyncio::wrap_future(q.get_future()), MyError,
                     "from the producer");
    failer.join();

    concur::Promise<std::string> done;
    done.set_result("already");
    std::string s = co_await asyncio::wrap_future(done.get_future());
    EXPECT_EQ(s, "already");
  };
  run(main_task());
}

TEST_F(ThreadsTest, CancellingAWrapFutureCancelsTheFuture) {
  concur::Promise<int> p;
  concur::Future<int> f = p.get_future();
  auto main_task = [&]() -> Task<void> {
    Task<int> t = asyncio::create_task(asyncio::wrap_future(f));
    co_await turns(1);
    t.cancel();
    EXPECT_THROW((void)co_await t, CancelledError);
    EXPECT_TRUE(f.cancelled());
  };
  run(main_task());
}

TEST_F(ThreadsTest, WrapFutureWithACancelPendingCancelsTheFuture) {
  concur::Promise<int> p;
  concur::Future<int> f = p.get_future();
  bool after = false;
  bool went_on = false;
  auto waiter = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    try {
      (void)co_await asyncio::wrap_future(f);
      after = true;
    } catch (const CancelledError&) {
    }
    co_await asyncio::sleep(0ns);  // the one request was delivered once: no second CancelledError
    went_on = true;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(waiter());
    co_await t;
    EXPECT_FALSE(after);
    EXPECT_TRUE(went_on);
    EXPECT_TRUE(f.cancelled());
    EXPECT_EQ(t.cancelling(), 1);
  };
  run(main_task());
}

TEST_F(ThreadsTest, TheLoopClosesWhileAFunctionStillRuns) {
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  auto main_task = [&]() -> Task<void> {
    asyncio::create_task(asyncio::to_thread([&] {
      started = true;
      std::this_thread::sleep_for(5ms);
      finished = true;
    }));
    // Running, not just queued (a queued call would be cancelled and never run).
    for (int i = 0; i < 20000 && !started.load(); ++i) co_await asyncio::sleep(1ms);
    EXPECT_TRUE(started.load());
  };
  run(main_task());
  EXPECT_EQ(loop.pending_tasks(), 1u);
  loop.close();  // cancels the waiting task, then waits for the executor's threads
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(loop.pending_tasks(), 0u);
}

}  // namespace
