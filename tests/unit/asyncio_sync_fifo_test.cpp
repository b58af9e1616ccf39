// Tests of the order in which concur/asyncio/sync.hpp's Semaphore and Lock serve their waiters:
// Python's, case by case (CPython's test_locks.py, test_acquire_fifo_order*, 3.13), including a
// task that releases and acquires again while the waiter it woke has not run yet.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::testing::AsyncioTest;

using SemaphoreFifoTest = AsyncioTest;
using LockFifoTest = AsyncioTest;

TEST_F(SemaphoreFifoTest, AReleaseAndReacquireDoesNotOvertakeAWokenWaiter) {
  // CPython's test_acquire_fifo_order_2: c2 releases and acquires again while c3, already woken
  // by the second release, has not run yet; c3 goes first: [1, 2, 3, 4].
  asyncio::Semaphore sem(1);
  std::vector<int> result;
  auto c1 = [](asyncio::Semaphore* s, std::vector<int>* r) -> Task<void> {
    co_await s->acquire();
    r->push_back(1);
  };
  auto c2 = [](asyncio::Semaphore* s, std::vector<int>* r) -> Task<void> {
    co_await s->acquire();
    r->push_back(2);
    s->release();
    co_await s->acquire();
    r->push_back(4);
  };
  auto c3 = [](asyncio::Semaphore* s, std::vector<int>* r) -> Task<void> {
    co_await s->acquire();
    r->push_back(3);
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t1 = asyncio::create_task(c1(&sem, &result));
    Task<void> t2 = asyncio::create_task(c2(&sem, &result));
    Task<void> t3 = asyncio::create_task(c3(&sem, &result));
    co_await asyncio::sleep(0ns);
    sem.release();
    sem.release();
    co_await asyncio::gather(t1, t2, t3);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
  };
  run(main_task());
}

TEST_F(SemaphoreFifoTest, ACancelledWaiterIsSkippedInOrder) {
  // CPython's test_acquire_fifo_order_3.
  asyncio::Semaphore sem(0);
  std::vector<int> result;
  auto waiter = [](asyncio::Semaphore* s, std::vector<int>* r, int id) -> Task<void> {
    co_await s->acquire();
    r->push_back(id);
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t1 = asyncio::create_task(waiter(&sem, &result, 1));
    Task<void> t2 = asyncio::create_task(waiter(&sem, &result, 2));
    Task<void> t3 = asyncio::create_task(waiter(&sem, &result, 3));
    co_await asyncio::sleep(0ns);
    t1.cancel();
    co_await asyncio::sleep(0ns);
    sem.release();
    sem.release();
    std::vector<Task<void>> all{t1, t2, t3};
    co_await asyncio::gather(asyncio::return_exceptions, std::move(all));
    EXPECT_EQ(result, (std::vector<int>{2, 3}));
  };
  run(main_task());
}

TEST_F(SemaphoreFifoTest, AWokenWaiterWakesThoseQueuedBehindItWhenPermitsAreLeft) {
  // CPython's test_acquire_fifo_order_4: three releases with one waiter leave two permits while
  // the waiter has not run; the two that queue meanwhile (FIFO) are woken when it runs, and a
  // task it creates then runs after them.
  asyncio::Semaphore sem(0);
  std::vector<int> result;
  Task<void> t4;
  auto c4 = [](std::vector<int>* r) -> Task<void> {
    r->push_back(4);
    co_return;
  };
  auto c1 = [&c4](asyncio::Semaphore* s, std::vector<int>* r, Task<void>* fourth) -> Task<void> {
    EXPECT_EQ(s->value(), 0);
    co_await s->acquire();
    EXPECT_EQ(s->value(), 0) << "the two queued behind were woken";
    *fourth = asyncio::create_task(c4(r));
    r->push_back(1);
  };
  auto c2 = [](asyncio::Semaphore* s, std::vector<int>* r) -> Task<void> {
    s->release();
    s->release();
    s->release();
    EXPECT_EQ(s->value(), 2);
    EXPECT_TRUE(s->locked()) << "c1 was woken and has not run";
    co_await s->acquire();
    r->push_back(2);
  };
  auto c3 = [](asyncio::Semaphore* s, std::vector<int>* r) -> Task<void> {
    co_await s->acquire();
    EXPECT_TRUE(s->locked());
    r->push_back(3);
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t1 = asyncio::create_task(c1(&sem, &result, &t4));
    Task<void> t2 = asyncio::create_task(c2(&sem, &result));
    Task<void> t3 = asyncio::create_task(c3(&sem, &result));
    co_await asyncio::sleep(0ns);
    EXPECT_EQ(sem.value(), 2);
    co_await asyncio::sleep(0ns);
    co_await asyncio::gather(t1, t2, t3);
    EXPECT_TRUE(t4.valid());
    if (t4.valid()) co_await t4;
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
  };
  run(main_task());
}

TEST_F(SemaphoreFifoTest, TasksTakingTurnsAlternateInArrivalOrder) {
  // CPython's test_acquire_fifo_order: each of three tasks takes the semaphore twice.
  asyncio::Semaphore sem(1);
  std::vector<std::string> result;
  auto coro = [](asyncio::Semaphore* s, std::vector<std::string>* r,
                 std::string tag) -> Task<void> {
    for (const char* round : {"_1", "_2"}) {
      co_await s->acquire();
      r->push_back(tag + round);
      co_await asyncio::sleep(1ms);
      s->release();
    }
  };
  auto main_task = [&]() -> Task<void> {
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.create_task(coro(&sem, &result, "c1"));
      tg.create_task(coro(&sem, &result, "c2"));
      tg.create_task(coro(&sem, &result, "c3"));
      co_return;
    });
    EXPECT_EQ(result, (std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"}));
  };
  run(main_task());
}

TEST_F(LockFifoTest, AReleaseAndReacquireDoesNotOvertakeAWokenWaiter) {
  // The Lock form of CPython's test_acquire_fifo_order_2, and test_acquire's order: a holder
  // that releases and acquires again queues behind the waiter it woke.
  asyncio::Lock lock;
  std::vector<int> result;
  auto again = [](asyncio::Lock* l, std::vector<int>* r) -> Task<void> {
    co_await l->acquire();
    r->push_back(1);
    l->release();
    co_await l->acquire();
    r->push_back(3);
    l->release();
  };
  auto once = [](asyncio::Lock* l, std::vector<int>* r) -> Task<void> {
    co_await l->acquire();
    r->push_back(2);
    l->release();
  };
  auto main_task = [&]() -> Task<void> {
    co_await lock.acquire();
    Task<void> a = asyncio::create_task(again(&lock, &result));
    Task<void> b = asyncio::create_task(once(&lock, &result));
    co_await asyncio::sleep(0ns);
    lock.release();
    co_await asyncio::gather(a, b);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
    EXPECT_FALSE(lock.locked());
  };
  run(main_task());
}

TEST_F(LockFifoTest, AWokenWaiterTakesTheLockWhenItRunsAndACancelledOneIsSkipped) {
  // CPython's test_cancel_race and test_finished_waiter_cancelled: after a release the lock is
  // free (locked() false) until the woken waiter runs; a cancelled waiter, woken or not, passes
  // its turn on.
  asyncio::Lock lock;
  std::vector<char> order;
  auto lockit = [](asyncio::Lock* l, std::vector<char>* o, char name,
                   asyncio::Event* blocker) -> Task<void> {
    co_await l->acquire();
    o->push_back(name);
    if (blocker) co_await blocker->wait();
    l->release();
  };
  auto main_task = [&]() -> Task<void> {
    asyncio::Event fa;
    Task<void> ta = asyncio::create_task(lockit(&lock, &order, 'A', &fa));
    co_await asyncio::sleep(0ns);
    EXPECT_TRUE(lock.locked());
    Task<void> tb = asyncio::create_task(lockit(&lock, &order, 'B', nullptr));
    co_await asyncio::sleep(0ns);
    Task<void> tc = asyncio::create_task(lockit(&lock, &order, 'C', nullptr));
    co_await asyncio::sleep(0ns);
    fa.set();
    tb.cancel();
    co_await asyncio::sleep(0ns);
    EXPECT_FALSE(lock.locked()) << "A released; C is woken and has not run yet";
    EXPECT_TRUE(ta.done());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
    EXPECT_EQ(order, (std::vector<char>{'A', 'C'}));

    // test_finished_waiter_cancelled: the woken waiter is cancelled before it runs.
    co_await lock.acquire();
    auto acquire_only = [](asyncio::Lock* l) -> Task<void> { co_await l->acquire(); };
    Task<void> first = asyncio::create_task(acquire_only(&lock));
    co_await asyncio::sleep(0ns);
    Task<void> second = asyncio::create_task(acquire_only(&lock));
    first.cancel();
    lock.release();
    co_await asyncio::sleep(0ns);
    EXPECT_TRUE(lock.locked()) << "the second waiter took it";
    EXPECT_TRUE(first.cancelled());
    co_await second;
    lock.release();
    EXPECT_FALSE(lock.locked());
  };
  run(main_task());
}

}  // namespace
