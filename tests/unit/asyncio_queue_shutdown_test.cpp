// Tests of Queue::shutdown() and QueueShutDown (concur/asyncio/queues.hpp), Python 3.13's: the
// cases of CPython's Lib/test/test_asyncio/test_queues.py (_QueueShutdownTestMixin), carried over
// for Queue, LifoQueue and PriorityQueue alike.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::QueueShutDown;
using asyncio::Task;

template <class Q>
class QueueShutdownTest : public concur::testing::AsyncioTest {};

using QueueKinds = ::testing::Types<asyncio::Queue<std::string>, asyncio::LifoQueue<std::string>,
                                    asyncio::PriorityQueue<std::string>>;
TYPED_TEST_SUITE(QueueShutdownTest, QueueKinds);

// put(), put_nowait(), get() and get_nowait() all throw QueueShutDown.
template <class Q>
Task<void> expect_everything_shut(Q* q) {
  EXPECT_THROW(co_await q->put("data"), QueueShutDown);
  EXPECT_THROW(q->put_nowait("data"), QueueShutDown);
  EXPECT_THROW(co_await q->get(), QueueShutDown);
  EXPECT_THROW(q->get_nowait(), QueueShutDown);
}

template <class Q>
Task<void> shutdown_empty() {
  // CPython's test_shutdown_empty.
  Q q;
  Task<std::string> get_task = asyncio::create_task(q.get());
  co_await asyncio::sleep(0ns);  // the get() waits before the shutdown
  q.shutdown();
  EXPECT_EQ(q.qsize(), 0u);
  co_await q.join();
  co_await asyncio::sleep(0ns);
  EXPECT_TRUE(get_task.done());
  EXPECT_THROW_MSG(co_await get_task, QueueShutDown, "shut down");
  co_await expect_everything_shut(&q);
}

template <class Q>
Task<void> shutdown_nonempty() {
  // CPython's test_shutdown_nonempty: the items left can still be taken.
  Q q(1);
  q.put_nowait("data");
  Task<void> join_task = asyncio::create_task(q.join());
  Task<void> put_task = asyncio::create_task(q.put("data2"));
  co_await asyncio::sleep(0ns);
  EXPECT_FALSE(put_task.done());
  q.shutdown();
  EXPECT_EQ(q.qsize(), 1u);
  co_await asyncio::sleep(0ns);
  EXPECT_TRUE(put_task.done());
  EXPECT_THROW(co_await put_task, QueueShutDown);
  EXPECT_EQ(co_await q.get(), "data");
  co_await asyncio::sleep(0ns);
  EXPECT_FALSE(join_task.done());
  co_await expect_everything_shut(&q);
  q.task_done();
  co_await asyncio::sleep(0ns);
  EXPECT_TRUE(join_task.done());
  co_await join_task;
  EXPECT_THROW(q.task_done(), std::invalid_argument);
}

template <class Q>
Task<void> shutdown_immediate() {
  // CPython's test_shutdown_immediate: the item left is dropped and counted as done.
  Q q;
  q.put_nowait("data");
  Task<void> join_task = asyncio::create_task(q.join());
  q.shutdown(true);
  EXPECT_EQ(q.qsize(), 0u);
  co_await asyncio::sleep(0ns);
  EXPECT_TRUE(join_task.done());
  co_await join_task;
  co_await expect_everything_shut(&q);
  EXPECT_THROW(q.task_done(), std::invalid_argument);
}

template <class Q>
Task<void> shutdown_immediate_with_unfinished() {
  // CPython's test_shutdown_immediate_with_unfinished: an item taken but not marked done keeps
  // join() waiting.
  Q q;
  q.put_nowait("data");
  q.put_nowait("data");
  Task<void> join_task = asyncio::create_task(q.join());
  EXPECT_EQ(co_await q.get(), "data");
  q.shutdown(true);
  EXPECT_EQ(q.qsize(), 0u);
  co_await asyncio::sleep(0ns);
  EXPECT_FALSE(join_task.done());
  co_await expect_everything_shut(&q);
  q.task_done();
  EXPECT_THROW(q.task_done(), std::invalid_argument);
  co_await asyncio::sleep(0ns);
  EXPECT_TRUE(join_task.done());
  co_await join_task;
}

template <class Q>
Task<void> shutdown_wakes_every_waiter() {
  // Every blocked getter is woken and raises; shutting down twice is harmless.
  Q q;
  Task<std::string> g1 = asyncio::create_task(q.get());
  Task<std::string> g2 = asyncio::create_task(q.get());
  co_await asyncio::sleep(0ns);
  q.shutdown();
  q.shutdown();
  EXPECT_TRUE(q.is_shut_down());
  EXPECT_THROW(co_await g1, QueueShutDown);
  EXPECT_THROW(co_await g2, QueueShutDown);
}

TYPED_TEST(QueueShutdownTest, ShutdownOfAnEmptyQueueWakesTheGetterWithQueueShutDown) {
  this->run(shutdown_empty<TypeParam>());
}

TYPED_TEST(QueueShutdownTest, ShutdownLeavesTheItemsToGetAndRefusesPuts) {
  this->run(shutdown_nonempty<TypeParam>());
}

TYPED_TEST(QueueShutdownTest, ImmediateShutdownDropsTheItemsAndReleasesJoin) {
  this->run(shutdown_immediate<TypeParam>());
}

TYPED_TEST(QueueShutdownTest, ImmediateShutdownKeepsJoinWaitingForItemsTakenNotDone) {
  this->run(shutdown_immediate_with_unfinished<TypeParam>());
}

TYPED_TEST(QueueShutdownTest, ShutdownWakesEveryWaitingGetter) {
  this->run(shutdown_wakes_every_waiter<TypeParam>());
}

}  // namespace
