// Integration tests of RLock, Barrier, JoinableQueue and Queue.close() (issue 17's missing pieces
// of multiprocessing), with real processes. The cases of CPython's _test_multiprocessing.py
// (_TestLock.test_rlock, _TestBarrier, _TestQueue.test_task_done, test_closed_queue_*) carried
// over.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <concur/errors.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/queue.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/multiprocessing/synchronize.hpp>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;
using mp::StartMethod;

// Holds the lock (at depth 2) until told to go, then releases it fully.
void hold_rlock_until(mp::RLock lock, mp::Event held, mp::Event go) {
  lock.acquire();
  lock.acquire();
  held.set();
  go.wait();
  lock.release();
  lock.release();
}
CONCUR_REGISTER(hold_rlock_until);

void wait_at_barrier(mp::Barrier barrier, mp::SharedArray<int> indices, int slot) {
  indices[static_cast<std::size_t>(slot)] = static_cast<int>(barrier.wait(30s));
}
CONCUR_REGISTER(wait_at_barrier);

// _test_task_done: takes items until -1, calling task_done() for each real one.
void consume_until_minus_one(mp::JoinableQueue<int> queue, mp::SharedArray<int> seen) {
  for (int item = queue.get(); item != -1; item = queue.get()) {
    seen[static_cast<std::size_t>(item)] += 1;
    queue.task_done();
  }
}
CONCUR_REGISTER(consume_until_minus_one);

namespace {

// ---------------------------------------------------------------------------------------------
// RLock

// _TestLock.test_rlock.
TEST(RLock, TheHolderMayTakeItAgainAndMustReleaseAsOften) {
  mp::RLock lock;
  lock.acquire();
  lock.acquire();
  lock.acquire();
  lock.release();
  lock.release();
  lock.release();
  EXPECT_THROW_MSG(lock.release(), concur::RuntimeError, "cannot release un-acquired lock");
}

TEST(RLock, AnotherProcessWaitsUntilEveryLevelIsReleased) {
  mp::RLock lock;
  mp::Event held;
  mp::Event go;
  mp::Process p(hold_rlock_until, lock, held, go);
  p.start();
  ASSERT_TRUE(held.wait(30s));
  EXPECT_FALSE(lock.acquire(50ms));  // held twice by the child
  EXPECT_THROW(lock.release(), concur::RuntimeError);
  go.set();
  ASSERT_TRUE(lock.acquire(30s));
  EXPECT_FALSE(lock.previous_owner_died());
  lock.release();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(RLock, AnotherThreadOfThisProcessIsNotTheHolder) {
  mp::RLock lock;
  std::lock_guard<mp::RLock> hold(lock);
  bool got = true;
  std::thread other([&] { got = lock.acquire(20ms); });
  other.join();
  EXPECT_FALSE(got);
}

// ---------------------------------------------------------------------------------------------
// Barrier

// _TestBarrier.test_barrier / test_wait_return: every party passes, several times over, and each
// pass gives each party a distinct index (one of them 0).
TEST(Barrier, PartiesInThreadsPassTogetherWithDistinctIndices) {
  constexpr unsigned kParties = 4;
  constexpr int kPasses = 5;
  mp::Barrier barrier(kParties);
  std::mutex mu;
  std::vector<std::multiset<unsigned>> indices(kPasses);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kParties; ++t) {
    threads.emplace_back([&] {
      for (int pass = 0; pass < kPasses; ++pass) {
        const unsigned index = barrier.wait(30s);
        std::lock_guard<std::mutex> lock(mu);
        indices[static_cast<std::size_t>(pass)].insert(index);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& pass : indices) EXPECT_EQ(pass, (std::multiset<unsigned>{0, 1, 2, 3}));
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, PartiesInProcessesPassTogether) {
  mp::Barrier barrier(3);
  mp::SharedArray<int> indices(2);
  mp::Process a(wait_at_barrier, barrier, indices, 0);
  mp::Process b(wait_at_barrier, barrier, indices, 1);
  a.start();
  b.start();
  const unsigned mine = barrier.wait(30s);
  a.join();
  b.join();
  EXPECT_EQ(a.exitcode(), 0);
  EXPECT_EQ(b.exitcode(), 0);
  std::set<unsigned> all{mine, static_cast<unsigned>(indices[0]),
                         static_cast<unsigned>(indices[1])};
  EXPECT_EQ(all, (std::set<unsigned>{0, 1, 2}));
}

// _TestBarrier.test_single_thread.
TEST(Barrier, OnePartyNeverWaits) {
  mp::Barrier barrier(1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(barrier.wait(), 0u);
  EXPECT_THROW(mp::Barrier(0), std::invalid_argument);
}

// _TestBarrier.test_timeout / test_default_timeout: a wait that times out breaks the barrier.
TEST(Barrier, ATimedOutWaitBreaksItUntilReset) {
  mp::Barrier barrier(2, 20ms);
  EXPECT_THROW_MSG(barrier.wait(), mp::BrokenBarrierError, "call reset()");
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW(barrier.wait(1s), mp::BrokenBarrierError);
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.parties(), 2u);
}

// _TestBarrier.test_abort: abort() breaks the waiters and later waits.
TEST(Barrier, AbortBreaksTheWaitersAndLaterWaits) {
  mp::Barrier barrier(3);
  std::atomic<int> broken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      try {
        barrier.wait(30s);
      } catch (const mp::BrokenBarrierError&) {
        ++broken;
      }
    });
  }
  ASSERT_TRUE(concur::testing::eventually([&] { return barrier.n_waiting() == 2; }));
  barrier.abort();
  for (auto& t : threads) t.join();
  EXPECT_EQ(broken.load(), 2);
  EXPECT_THROW(barrier.wait(1s), mp::BrokenBarrierError);
}

// _TestBarrier.test_reset: reset() breaks the waits in progress, then the barrier works again.
TEST(Barrier, ResetBreaksTheWaitsInProgressThenFillsAgain) {
  mp::Barrier barrier(2);
  std::atomic<bool> broke{false};
  std::thread waiter([&] {
    try {
      barrier.wait(30s);
    } catch (const mp::BrokenBarrierError&) {
      broke = true;
    }
  });
  ASSERT_TRUE(concur::testing::eventually([&] { return barrier.n_waiting() == 1; }));
  barrier.reset();
  waiter.join();
  EXPECT_TRUE(broke.load());
  std::thread again([&] { barrier.wait(30s); });
  EXPECT_NO_THROW(barrier.wait(30s));
  again.join();
}

// ---------------------------------------------------------------------------------------------
// JoinableQueue and Queue.close()

// _TestQueue.test_task_done.
TEST(JoinableQueue, JoinReturnsOnceEveryItemWasMarkedDone) {
  mp::JoinableQueue<int> queue;
  mp::SharedArray<int> seen(10);
  std::vector<mp::Process> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(consume_until_minus_one, queue, seen);
  for (auto& w : workers) w.start();
  for (int i = 0; i < 10; ++i) queue.put(i);
  EXPECT_TRUE(queue.join(60s));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)], 1) << i;
  for (std::size_t i = 0; i < workers.size(); ++i) queue.put(-1);
  for (auto& w : workers) {
    w.join();
    EXPECT_EQ(w.exitcode(), 0);
  }
}

TEST(JoinableQueue, JoinWaitsForTaskDoneAndTooManyIsAnError) {
  mp::JoinableQueue<int> queue;
  EXPECT_TRUE(queue.join(0s));  // nothing put
  queue.put(1);
  EXPECT_EQ(queue.get(), 1);
  EXPECT_FALSE(queue.join(20ms));  // got, not done
  queue.task_done();
  EXPECT_TRUE(queue.join(0s));
  EXPECT_THROW_MSG(queue.task_done(), std::invalid_argument, "called too many times");
}

// test_closed_queue_put_get_exceptions; test_closed_queue_closes_both (join_thread after close).
TEST(Queue, AClosedQueueRefusesPutAndGetInThisHandleOnly) {
  mp::Queue<int> queue;
  mp::Queue<int> other = queue;  // another handle on the same queue
  EXPECT_THROW(queue.join_thread(), concur::AssertionError);
  queue.put(7);
  queue.close();
  EXPECT_THROW_MSG(queue.put(8), std::invalid_argument, "is closed");
  EXPECT_THROW_MSG(queue.get(), std::invalid_argument, "is closed");
  EXPECT_NO_THROW(queue.join_thread());
  EXPECT_EQ(other.get(1s), 7);  // what was put stays for the others
  mp::JoinableQueue<int> joinable;
  joinable.close();
  EXPECT_THROW(joinable.put(1), std::invalid_argument);
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
