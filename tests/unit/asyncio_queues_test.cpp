// Tests of concur/asyncio/queues.hpp: Queue, LifoQueue, PriorityQueue.
// The cases of CPython's Lib/test/test_asyncio/test_queues.py, carried over: order, maxsize,
// the nowait errors, task_done/join, and cancellation races that must not lose an item.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
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
using concur::QueueEmpty;
using concur::QueueFull;

using concur::testing::AsyncioTest;
using concur::testing::turns;

using QueueTest = AsyncioTest;

TEST_F(QueueTest, FifoOrder) {
  asyncio::Queue<int> q;
  auto main_task = [&]() -> Task<void> {
    for (int i = 1; i <= 5; ++i) co_await q.put(i);
    EXPECT_EQ(q.qsize(), 5u);
    std::vector<int> out;
    while (!q.empty()) out.push_back(co_await q.get());
    EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4, 5}));
  };
  run(main_task());
}

TEST_F(QueueTest, LifoOrder) {
  asyncio::LifoQueue<int> q;
  auto main_task = [&]() -> Task<void> {
    for (int i = 1; i <= 4; ++i) q.put_nowait(i);
    std::vector<int> out;
    while (!q.empty()) out.push_back(co_await q.get());
    EXPECT_EQ(out, (std::vector<int>{4, 3, 2, 1}));
  };
  run(main_task());
}

TEST_F(QueueTest, PriorityOrder) {
  asyncio::PriorityQueue<std::pair<int, std::string>> q;
  asyncio::PriorityQueue<int, std::greater<int>> largest_first;
  auto main_task = [&]() -> Task<void> {
    q.put_nowait({3, "c"});
    q.put_nowait({1, "a"});
    q.put_nowait({4, "d"});
    q.put_nowait({2, "b"});
    std::string out;
    while (!q.empty()) {
      std::pair<int, std::string> item = co_await q.get();
      out += item.second;
    }
    EXPECT_EQ(out, "abcd");
    for (int v : {5, 9, 1, 7}) largest_first.put_nowait(v);
    std::vector<int> order;
    while (!largest_first.empty()) order.push_back(largest_first.get_nowait());
    EXPECT_EQ(order, (std::vector<int>{9, 7, 5, 1}));
  };
  run(main_task());
}

TEST_F(QueueTest, NowaitErrors) {
  asyncio::Queue<int> q(2);
  EXPECT_EQ(q.maxsize(), 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_THROW_MSG(q.get_nowait(), QueueEmpty, "empty");
  q.put_nowait(1);
  q.put_nowait(2);
  EXPECT_TRUE(q.full());
  EXPECT_THROW_MSG(q.put_nowait(3), QueueFull, "full");
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_THROW(q.get_nowait(), QueueEmpty);
}

TEST_F(QueueTest, MaxsizeZeroIsUnbounded) {
  asyncio::Queue<int> q;
  for (int i = 0; i < 1000; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 1000u);
}

TEST_F(QueueTest, MoveOnlyItems) {
  asyncio::Queue<std::unique_ptr<int>> q(1);
  auto main_task = [&]() -> Task<void> {
    co_await q.put(std::make_unique<int>(3));
    std::unique_ptr<int> v = co_await q.get();
    EXPECT_EQ(*v, 3);
  };
  run(main_task());
}

TEST_F(QueueTest, PutWaitsWhileFull) {
  asyncio::Queue<int> q(1);
  auto main_task = [&]() -> Task<void> {
    co_await q.put(1);
    Task<void> putter = asyncio::create_task(q.put(2));
    co_await turns(2);
    EXPECT_FALSE(putter.done());
    EXPECT_EQ(q.qsize(), 1u);
    int a = co_await q.get();
    EXPECT_EQ(a, 1);
    co_await putter;
    EXPECT_EQ(q.qsize(), 1u);
    int b = co_await q.get();
    EXPECT_EQ(b, 2);
  };
  run(main_task());
}

TEST_F(QueueTest, GetWaitsWhileEmptyAndGettersAreServedInOrder) {
  asyncio::Queue<int> q;
  auto main_task = [&]() -> Task<void> {
    Task<int> g1 = asyncio::create_task(q.get());
    Task<int> g2 = asyncio::create_task(q.get());
    Task<int> g3 = asyncio::create_task(q.get());
    co_await turns(2);
    EXPECT_FALSE(g1.done() || g2.done() || g3.done());
    q.put_nowait(10);
    q.put_nowait(20);
    q.put_nowait(30);
    int a = co_await g1;
    int b = co_await g2;
    int c = co_await g3;
    EXPECT_EQ(a, 10);
    EXPECT_EQ(b, 20);
    EXPECT_EQ(c, 30);
    EXPECT_TRUE(q.empty());
  };
  run(main_task());
}

TEST_F(QueueTest, PriorityQueueGetWaitsThenYieldsTheSmallest) {
  asyncio::PriorityQueue<int> q;
  auto main_task = [&]() -> Task<void> {
    Task<int> getter = asyncio::create_task(q.get());
    co_await turns(1);
    q.put_nowait(5);
    q.put_nowait(2);  // put before the getter runs: it takes the smallest
    int v = co_await getter;
    EXPECT_EQ(v, 2);
    EXPECT_EQ(q.get_nowait(), 5);
  };
  run(main_task());
}

TEST_F(QueueTest, TaskDoneAndJoin) {
  asyncio::Queue<int> q;
  auto main_task = [&]() -> Task<void> {
    co_await q.join();  // nothing was put: returns at once
    for (int i = 0; i < 3; ++i) q.put_nowait(i);
    EXPECT_EQ(q.unfinished_tasks(), 3u);
    Task<void> joiner = asyncio::create_task(q.join());
    co_await turns(2);
    EXPECT_FALSE(joiner.done());
    for (int i = 0; i < 3; ++i) (void)co_await q.get();
    co_await turns(2);
    EXPECT_FALSE(joiner.done()) << "get() does not count as done";
    q.task_done();
    q.task_done();
    co_await turns(2);
    EXPECT_FALSE(joiner.done());
    q.task_done();
    co_await joiner;
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    EXPECT_THROW_MSG(q.task_done(), std::invalid_argument, "too many times");
  };
  run(main_task());
}

TEST_F(QueueTest, ProducersAndConsumersWithJoin) {
  // CPython's test_task_done: workers take items until cancelled; join() sees them all done.
  asyncio::Queue<int> q(3);
  int sum = 0;
  auto consumer = [&]() -> Task<void> {
    for (;;) {
      int v = co_await q.get();
      sum += v;
      co_await asyncio::sleep(0ns);
      q.task_done();
    }
  };
  auto main_task = [&]() -> Task<void> {
    std::vector<Task<void>> consumers;
    for (int i = 0; i < 3; ++i) consumers.push_back(asyncio::create_task(consumer()));
    for (int i = 1; i <= 100; ++i) co_await q.put(i);
    co_await q.join();
    EXPECT_EQ(sum, 5050);
    for (Task<void>& c : consumers) c.cancel();
    for (Task<void>& c : consumers) {
      EXPECT_THROW(co_await c, CancelledError);
    }
  };
  run(main_task());
}

TEST_F(QueueTest, CancelledGetterDoesNotLoseAnItemPutAtTheSameTime) {
  // CPython's test_get_cancelled_race / test_cancelled_getters_not_being_held_in_self_getters.
  asyncio::Queue<int> q;
  auto main_task = [&]() -> Task<void> {
    Task<int> g1 = asyncio::create_task(q.get());
    Task<int> g2 = asyncio::create_task(q.get());
    co_await turns(1);
    q.put_nowait(7);  // wakes g1 ...
    g1.cancel();      // ... which will not take it: g2 does
    EXPECT_THROW((void)co_await g1, CancelledError);
    int v = co_await g2;
    EXPECT_EQ(v, 7);
    EXPECT_TRUE(q.empty());

    // With no other getter, the item stays in the queue.
    Task<int> g3 = asyncio::create_task(q.get());
    co_await turns(1);
    q.put_nowait(8);
    g3.cancel();
    EXPECT_THROW((void)co_await g3, CancelledError);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get_nowait(), 8);

    // A getter cancelled before anything was put leaves no trace: the next put stays queued.
    Task<int> g4 = asyncio::create_task(q.get());
    co_await turns(1);
    g4.cancel();
    EXPECT_THROW((void)co_await g4, CancelledError);
    q.put_nowait(9);
    Task<int> g5 = asyncio::create_task(q.get());
    int w = co_await g5;
    EXPECT_EQ(w, 9);
  };
  run(main_task());
}

TEST_F(QueueTest, CancelledPutterDoesNotLoseTheRoom) {
  // CPython's test_put_cancelled_race.
  asyncio::Queue<int> q(1);
  auto main_task = [&]() -> Task<void> {
    q.put_nowait(1);
    Task<void> p1 = asyncio::create_task(q.put(2));
    Task<void> p2 = asyncio::create_task(q.put(3));
    co_await turns(1);
    EXPECT_EQ(q.get_nowait(), 1);  // room for one: p1 is woken ...
    p1.cancel();                   // ... and gives it up: p2 puts
    EXPECT_THROW(co_await p1, CancelledError);
    co_await p2;
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get_nowait(), 3);
  };
  run(main_task());
}

TEST_F(QueueTest, GetAndPutWithACancelPendingTakeNothing) {
  asyncio::Queue<int> q(1);
  bool got = false;
  bool put = false;
  auto getter = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    (void)co_await q.get();
    got = true;
  };
  auto putter = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    co_await q.put(2);
    put = true;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> g = asyncio::create_task(getter());
    EXPECT_THROW(co_await g, CancelledError);
    EXPECT_FALSE(got);
    q.put_nowait(1);
    Task<void> p = asyncio::create_task(putter());
    EXPECT_THROW(co_await p, CancelledError);
    EXPECT_FALSE(put);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get_nowait(), 1);
  };
  run(main_task());
}

}  // namespace
