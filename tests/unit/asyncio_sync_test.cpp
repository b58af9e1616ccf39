// Tests of concur/asyncio/sync.hpp: Lock, Event, Condition, Semaphore, BoundedSemaphore.
// The cases of CPython's Lib/test/test_asyncio/test_locks.py, carried over (fairness, misuse,
// and above all cancellation at every point of a wait), plus the RAII guard.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
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
using concur::RuntimeError;

constexpr auto kLong = 10s;

using concur::testing::AsyncioTest;
using concur::testing::turns;

// ---------------------------------------------------------------------------------------------
// Lock

using LockTest = AsyncioTest;

TEST_F(LockTest, AcquireAndRelease) {
  asyncio::Lock lock;
  auto main_task = [&]() -> Task<void> {
    EXPECT_FALSE(lock.locked());
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());
  };
  run(main_task());
}

TEST_F(LockTest, ReleaseOfAnUnlockedLockIsRuntimeError) {
  asyncio::Lock lock;
  EXPECT_THROW_MSG(lock.release(), RuntimeError, "not acquired");
  auto main_task = [&]() -> Task<void> {
    co_await lock.acquire();
    lock.release();
    EXPECT_THROW(lock.release(), RuntimeError);
  };
  run(main_task());
}

TEST_F(LockTest, HoldReturnsAGuardThatReleases) {
  asyncio::Lock lock;
  auto main_task = [&]() -> Task<void> {
    {
      asyncio::LockGuard guard = co_await lock.hold();
      EXPECT_TRUE(guard.owns_lock());
      EXPECT_TRUE(lock.locked());
      asyncio::LockGuard moved = std::move(guard);
      EXPECT_FALSE(guard.owns_lock());
      EXPECT_TRUE(moved.owns_lock());
      EXPECT_TRUE(lock.locked());
    }
    EXPECT_FALSE(lock.locked());
    asyncio::LockGuard early = co_await lock.hold();
    early.release();
    EXPECT_FALSE(lock.locked());
    EXPECT_FALSE(early.owns_lock());
  };
  run(main_task());
}

TEST_F(LockTest, WaitersAreServedFirstComeFirstServed) {
  asyncio::Lock lock;
  std::vector<int> order;
  auto worker = [&](int id) -> Task<void> {
    co_await lock.acquire();
    order.push_back(id);
    co_await asyncio::sleep(0ns);
    lock.release();
  };
  auto main_task = [&]() -> Task<void> {
    co_await lock.acquire();
    std::vector<Task<void>> workers;
    for (int id = 1; id <= 3; ++id) workers.push_back(asyncio::create_task(worker(id)));
    co_await turns(2);
    EXPECT_TRUE(order.empty());
    lock.release();
    EXPECT_FALSE(lock.locked()) << "as Python's: free until the woken waiter runs";
    // A latecomer (this task) cannot overtake the three that wait.
    co_await lock.acquire();
    order.push_back(0);
    lock.release();
    for (Task<void>& w : workers) co_await w;
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 0}));
    EXPECT_FALSE(lock.locked());
  };
  run(main_task());
}

TEST_F(LockTest, CancelWhileWaitingLeavesTheLockConsistent) {
  asyncio::Lock lock;
  std::vector<int> got;
  auto acquirer = [&](int id) -> Task<void> {
    co_await lock.acquire();
    got.push_back(id);
    lock.release();
  };
  auto main_task = [&]() -> Task<void> {
    co_await lock.acquire();
    Task<void> a = asyncio::create_task(acquirer(1));
    Task<void> b = asyncio::create_task(acquirer(2));
    Task<void> c = asyncio::create_task(acquirer(3));
    co_await turns(1);
    b.cancel();
    EXPECT_THROW(co_await b, CancelledError);
    EXPECT_TRUE(lock.locked());
    lock.release();
    co_await a;
    co_await c;
    EXPECT_EQ(got, (std::vector<int>{1, 3}));
    EXPECT_FALSE(lock.locked());
    // Every waiter cancelled: the lock ends free.
    co_await lock.acquire();
    Task<void> d = asyncio::create_task(acquirer(4));
    Task<void> e = asyncio::create_task(acquirer(5));
    co_await turns(1);
    d.cancel();
    e.cancel();
    co_await turns(1);
    lock.release();
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(d.cancelled() && e.cancelled());
  };
  run(main_task());
}

TEST_F(LockTest, CancelAfterBeingHandedTheLockPassesItOn) {
  // CPython's test_cancel_release_race / test_finished_waiter_cancelled.
  asyncio::Lock lock;
  std::vector<int> got;
  auto acquirer = [&](int id) -> Task<void> {
    co_await lock.acquire();
    got.push_back(id);
    co_await asyncio::sleep(0ns);
    lock.release();
  };
  auto main_task = [&]() -> Task<void> {
    co_await lock.acquire();
    Task<void> a = asyncio::create_task(acquirer(1));
    Task<void> b = asyncio::create_task(acquirer(2));
    co_await turns(1);
    lock.release();  // handed to a, which has not run yet
    a.cancel();      // ... and now will not use it
    EXPECT_THROW(co_await a, CancelledError);
    co_await b;
    EXPECT_EQ(got, (std::vector<int>{2}));
    EXPECT_FALSE(lock.locked());
    // Same with nobody to pass it to: it is released.
    co_await lock.acquire();
    Task<void> c = asyncio::create_task(acquirer(3));
    co_await turns(1);
    lock.release();
    c.cancel();
    EXPECT_THROW(co_await c, CancelledError);
    EXPECT_FALSE(lock.locked());
  };
  run(main_task());
}

TEST_F(LockTest, AcquireWithACancelPendingThrowsAndLeavesNothingBehind) {
  asyncio::Lock lock;
  bool after = false;
  auto acquirer = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    co_await lock.acquire();  // the lock is held: this would wait, so the cancel is delivered
    after = true;
    lock.release();
  };
  auto main_task = [&]() -> Task<void> {
    co_await lock.acquire();
    Task<void> t = asyncio::create_task(acquirer());
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(after);
    lock.release();
    EXPECT_FALSE(lock.locked()) << "the cancelled acquirer was not left waiting";
  };
  run(main_task());
}

TEST_F(LockTest, AFreeLockIsTakenEvenWithACancelPending) {
  // As asyncio: acquiring a free lock does not suspend, so the cancel waits for the next
  // suspension.
  asyncio::Lock lock;
  auto main_task = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_THROW(co_await asyncio::sleep(0ns), CancelledError);
    asyncio::current_task()->uncancel();
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// Event

using EventTest = AsyncioTest;

TEST_F(EventTest, SetWakesEveryWaiter) {
  asyncio::Event event;
  int woken = 0;
  auto waiter = [&]() -> Task<void> {
    co_await event.wait();
    ++woken;
  };
  auto main_task = [&]() -> Task<void> {
    EXPECT_FALSE(event.is_set());
    std::vector<Task<void>> waiters;
    for (int i = 0; i < 3; ++i) waiters.push_back(asyncio::create_task(waiter()));
    co_await turns(2);
    EXPECT_EQ(woken, 0);
    event.set();
    EXPECT_TRUE(event.is_set());
    event.set();  // idempotent
    for (Task<void>& w : waiters) co_await w;
    EXPECT_EQ(woken, 3);
    co_await event.wait();  // set: returns at once
    event.clear();
    EXPECT_FALSE(event.is_set());
    Task<void> late = asyncio::create_task(waiter());
    co_await turns(2);
    EXPECT_FALSE(late.done()) << "waits again after clear()";
    event.set();
    co_await late;
    EXPECT_EQ(woken, 4);
  };
  run(main_task());
}

TEST_F(EventTest, SetThenClearStillWakesTheWaiters) {
  // CPython's test_clear_with_waiters.
  asyncio::Event event;
  auto main_task = [&]() -> Task<void> {
    Task<void> w =
        asyncio::create_task([](asyncio::Event* e) -> Task<void> { co_await e->wait(); }(&event));
    co_await turns(1);
    event.set();
    event.clear();
    co_await w;
    EXPECT_TRUE(w.done());
    EXPECT_FALSE(event.is_set());
  };
  run(main_task());
}

TEST_F(EventTest, CancelledWaiterIsRemoved) {
  asyncio::Event event;
  int woken = 0;
  auto waiter = [&]() -> Task<void> {
    co_await event.wait();
    ++woken;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> a = asyncio::create_task(waiter());
    Task<void> b = asyncio::create_task(waiter());
    co_await turns(1);
    a.cancel();
    EXPECT_THROW(co_await a, CancelledError);
    event.set();
    co_await b;
    EXPECT_EQ(woken, 1);
    // Cancelled after set() woke it, before it ran: CancelledError too.
    event.clear();
    Task<void> c = asyncio::create_task(waiter());
    co_await turns(1);
    event.set();
    c.cancel();
    EXPECT_THROW(co_await c, CancelledError);
    EXPECT_EQ(woken, 1);
  };
  run(main_task());
}

TEST_F(EventTest, WaitWithACancelPendingThrows) {
  asyncio::Event event;
  bool after = false;
  auto waiter = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    co_await event.wait();
    after = true;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(waiter());
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(after) << "wait() returned without the event being set";
    EXPECT_FALSE(event.is_set());
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// Condition

using ConditionTest = AsyncioTest;

TEST_F(ConditionTest, NotifyWakesThatManyWaitersInOrder) {
  asyncio::Condition cond;
  std::vector<int> woken;
  auto waiter = [&](int id) -> Task<void> {
    co_await cond.acquire();
    co_await cond.wait();
    EXPECT_TRUE(cond.locked()) << "wait() returns with the lock held";
    woken.push_back(id);
    cond.release();
  };
  auto main_task = [&]() -> Task<void> {
    std::vector<Task<void>> waiters;
    for (int id = 1; id <= 3; ++id) waiters.push_back(asyncio::create_task(waiter(id)));
    co_await turns(2);
    EXPECT_FALSE(cond.locked()) << "wait() released the lock";
    co_await cond.acquire();
    cond.notify(1);
    EXPECT_TRUE(woken.empty()) << "woken ones run after re-acquiring the lock";
    cond.release();
    co_await turns(2);
    EXPECT_EQ(woken, (std::vector<int>{1}));
    co_await cond.acquire();
    cond.notify(2);
    cond.release();
    for (Task<void>& w : waiters) co_await w;
    EXPECT_EQ(woken, (std::vector<int>{1, 2, 3}));
  };
  run(main_task());
}

TEST_F(ConditionTest, NotifyAll) {
  asyncio::Condition cond;
  int woken = 0;
  auto waiter = [&]() -> Task<void> {
    auto guard = co_await cond.hold();
    co_await cond.wait();
    ++woken;
  };
  auto main_task = [&]() -> Task<void> {
    std::vector<Task<void>> waiters;
    for (int i = 0; i < 4; ++i) waiters.push_back(asyncio::create_task(waiter()));
    co_await turns(2);
    {
      auto guard = co_await cond.hold();
      cond.notify_all();
    }
    for (Task<void>& w : waiters) co_await w;
    EXPECT_EQ(woken, 4);
    EXPECT_FALSE(cond.locked());
  };
  run(main_task());
}

TEST_F(ConditionTest, WaitForAPredicate) {
  asyncio::Condition cond;
  int value = 0;
  int seen = -1;
  auto waiter = [&]() -> Task<void> {
    auto guard = co_await cond.hold();
    co_await cond.wait_for([&] { return value >= 3; });
    seen = value;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> w = asyncio::create_task(waiter());
    for (int i = 0; i < 3; ++i) {
      co_await turns(2);
      EXPECT_FALSE(w.done());
      auto guard = co_await cond.hold();
      ++value;
      cond.notify_all();
    }
    co_await w;
    EXPECT_EQ(seen, 3);
    // A predicate already true does not wait.
    auto guard = co_await cond.hold();
    co_await cond.wait_for([] { return true; });
  };
  run(main_task());
}

TEST_F(ConditionTest, WaitForReturnsThePredicatesValue) {
  // CPython's test_wait_for: wait_for() returns what the predicate returned (its last call).
  asyncio::Condition cond;
  std::vector<int> items;
  auto main_task = [&]() -> Task<void> {
    Task<const int*> w =
        asyncio::create_task([](asyncio::Condition* c, std::vector<int>* v) -> Task<const int*> {
          auto guard = co_await c->hold();
          co_return co_await c->wait_for(
              [v]() -> const int* { return v->empty() ? nullptr : &v->front(); });
        }(&cond, &items));
    co_await turns(2);
    EXPECT_FALSE(w.done());
    {
      auto guard = co_await cond.hold();
      items.push_back(7);
      cond.notify();
    }
    const int* found = co_await w;
    EXPECT_EQ(found, items.data());
    auto guard = co_await cond.hold();
    int calls = 0;
    int value = co_await cond.wait_for([&calls] { return ++calls * 5; });  // true at once
    EXPECT_EQ(value, 5);
    EXPECT_EQ(calls, 1);
  };
  run(main_task());
}

TEST_F(ConditionTest, WaitOrNotifyWithoutTheLockIsRuntimeError) {
  asyncio::Condition cond;
  EXPECT_THROW_MSG(cond.notify(), RuntimeError, "un-acquired lock");
  EXPECT_THROW(cond.notify_all(), RuntimeError);
  auto main_task = [&]() -> Task<void> {
    EXPECT_THROW_MSG(co_await cond.wait(), RuntimeError, "un-acquired lock");
    EXPECT_FALSE(cond.locked());
  };
  run(main_task());
}

TEST_F(ConditionTest, SharesALock) {
  asyncio::Lock lock;
  asyncio::Condition a(&lock);
  asyncio::Condition b(&lock);
  auto main_task = [&]() -> Task<void> {
    co_await lock.acquire();
    EXPECT_TRUE(a.locked());
    EXPECT_TRUE(b.locked());
    EXPECT_EQ(&a.lock(), &lock);
    b.notify();  // allowed: the shared lock is held
    a.release();
    EXPECT_FALSE(lock.locked());
  };
  run(main_task());
}

TEST_F(ConditionTest, CancelledWaitReacquiresTheLockBeforeRaising) {
  // CPython's test_wait_cancel_contested.
  asyncio::Condition cond;
  bool held_when_raised = false;
  auto waiter = [&]() -> Task<void> {
    co_await cond.acquire();
    try {
      co_await cond.wait();
    } catch (const CancelledError&) {
      held_when_raised = cond.locked();
      cond.release();  // would throw if this task did not hold it
      throw;
    }
    cond.release();
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> w = asyncio::create_task(waiter());
    co_await turns(1);
    co_await cond.acquire();  // contested: the waiter cannot re-acquire yet
    w.cancel();
    co_await turns(3);
    EXPECT_FALSE(w.done()) << "the cancelled waiter waits for the lock";
    cond.release();
    EXPECT_THROW(co_await w, CancelledError);
    EXPECT_TRUE(held_when_raised);
    EXPECT_FALSE(cond.locked());
  };
  run(main_task());
}

TEST_F(ConditionTest, CancelledAfterNotifyPassesTheNotificationOn) {
  asyncio::Condition cond;
  std::vector<int> woken;
  auto waiter = [&](int id) -> Task<void> {
    auto guard = co_await cond.hold();
    co_await cond.wait();
    woken.push_back(id);
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> a = asyncio::create_task(waiter(1));
    Task<void> b = asyncio::create_task(waiter(2));
    co_await turns(2);
    co_await cond.acquire();
    cond.notify(1);  // wakes a ...
    a.cancel();      // ... which will not act on it
    cond.release();
    EXPECT_THROW(co_await a, CancelledError);
    co_await asyncio::wait_for(b, kLong);
    EXPECT_EQ(woken, (std::vector<int>{2}));
    EXPECT_FALSE(cond.locked());
  };
  run(main_task());
}

TEST_F(ConditionTest, WaitWithACancelPendingReacquiresAndRaises) {
  asyncio::Condition cond;
  bool held = false;
  auto waiter = [&]() -> Task<void> {
    co_await cond.acquire();
    asyncio::current_task()->cancel();
    try {
      co_await cond.wait();
    } catch (const CancelledError&) {
      held = cond.locked();
      cond.release();
      throw;
    }
    cond.release();
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> w = asyncio::create_task(waiter());
    EXPECT_THROW(co_await w, CancelledError);
    EXPECT_TRUE(held);
    EXPECT_FALSE(cond.locked());
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// Semaphore, BoundedSemaphore

using SemaphoreTest = AsyncioTest;

TEST_F(SemaphoreTest, Counts) {
  asyncio::Semaphore sem(3);
  auto main_task = [&]() -> Task<void> {
    EXPECT_EQ(sem.value(), 3);
    EXPECT_FALSE(sem.locked());
    co_await sem.acquire();
    co_await sem.acquire();
    EXPECT_EQ(sem.value(), 1);
    co_await sem.acquire();
    EXPECT_EQ(sem.value(), 0);
    EXPECT_TRUE(sem.locked());
    bool got = false;
    Task<void> w = asyncio::create_task([](asyncio::Semaphore* s, bool* g) -> Task<void> {
      co_await s->acquire();
      *g = true;
    }(&sem, &got));
    co_await turns(2);
    EXPECT_FALSE(got);
    sem.release();
    EXPECT_EQ(sem.value(), 0) << "the permit went to the waiter";
    co_await w;
    EXPECT_TRUE(got);
    for (int i = 0; i < 3; ++i) sem.release();
    EXPECT_EQ(sem.value(), 3);
    sem.release();  // a plain Semaphore may go above its initial value
    EXPECT_EQ(sem.value(), 4);
  };
  run(main_task());
}

TEST_F(SemaphoreTest, NegativeInitialValueIsInvalid) {
  EXPECT_THROW(asyncio::Semaphore(-1), std::invalid_argument);
  EXPECT_THROW(asyncio::BoundedSemaphore(-1), std::invalid_argument);
  asyncio::Semaphore zero(0);
  EXPECT_TRUE(zero.locked());
}

TEST_F(SemaphoreTest, BoundedSemaphoreRefusesOverRelease) {
  asyncio::BoundedSemaphore sem(2);
  EXPECT_THROW_MSG(sem.release(), std::invalid_argument, "released too many times");
  EXPECT_EQ(sem.value(), 2);
  auto main_task = [&]() -> Task<void> {
    co_await sem.acquire();
    sem.release();
    EXPECT_THROW(sem.release(), std::invalid_argument);
    EXPECT_EQ(sem.value(), 2);
  };
  run(main_task());
}

TEST_F(SemaphoreTest, WaitersAreServedInOrder) {
  asyncio::Semaphore sem(0);
  std::vector<int> order;
  auto worker = [&](int id) -> Task<void> {
    co_await sem.acquire();
    order.push_back(id);
  };
  auto main_task = [&]() -> Task<void> {
    std::vector<Task<void>> workers;
    for (int id = 1; id <= 4; ++id) workers.push_back(asyncio::create_task(worker(id)));
    co_await turns(1);
    for (int i = 0; i < 4; ++i) {
      sem.release();
      co_await turns(1);
    }
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
    EXPECT_EQ(sem.value(), 0);
  };
  run(main_task());
}

TEST_F(SemaphoreTest, CancellationDoesNotLosePermits) {
  // CPython's test_acquire_cancel_before_awoken / test_acquire_hang.
  asyncio::Semaphore sem(0);
  std::vector<int> got;
  auto worker = [&](int id) -> Task<void> {
    co_await sem.acquire();
    got.push_back(id);
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> a = asyncio::create_task(worker(1));
    Task<void> b = asyncio::create_task(worker(2));
    Task<void> c = asyncio::create_task(worker(3));
    Task<void> d = asyncio::create_task(worker(4));
    co_await turns(1);
    d.cancel();  // not woken yet: just leaves
    sem.release();
    sem.release();  // a and b are handed a permit each
    a.cancel();     // a will not use its permit: c gets it
    EXPECT_THROW(co_await a, CancelledError);
    EXPECT_THROW(co_await d, CancelledError);
    co_await b;
    co_await c;
    EXPECT_EQ(got, (std::vector<int>{2, 3}));
    EXPECT_EQ(sem.value(), 0);
    EXPECT_FALSE(sem.locked() && sem.value() != 0);
    sem.release();
    EXPECT_EQ(sem.value(), 1) << "no waiter is left to take it";
    // Cancelled after a hand-over with nobody else waiting: the permit returns to the count.
    co_await sem.acquire();
    Task<void> e = asyncio::create_task(worker(5));
    co_await turns(1);
    sem.release();
    e.cancel();
    EXPECT_THROW(co_await e, CancelledError);
    EXPECT_EQ(sem.value(), 1);
  };
  run(main_task());
}

TEST_F(SemaphoreTest, AcquireWithACancelPendingTakesNoPermit) {
  asyncio::Semaphore sem(0);
  bool after = false;
  auto worker = [&]() -> Task<void> {
    asyncio::current_task()->cancel();
    co_await sem.acquire();
    after = true;
  };
  auto main_task = [&]() -> Task<void> {
    Task<void> t = asyncio::create_task(worker());
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(after) << "acquire() returned without a permit";
    sem.release();
    EXPECT_EQ(sem.value(), 1);
  };
  run(main_task());
}

}  // namespace
