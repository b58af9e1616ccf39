// Tests of concur/futures.hpp: Future, Promise, wait(), as_completed().
// The cases of CPython's Lib/test/test_concurrent_futures/{test_future,test_wait,
// test_as_completed}.py, carried over, plus what C++ adds (move-only values, empty handles).
#include "concur/futures.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using concur::Future;
using concur::Promise;
using concur::testing::CapturedStderr;

// The states CPython's tests build futures in (PENDING_FUTURE, RUNNING_FUTURE, ...).
Future<int> pending_future() {
  Promise<int> p;
  auto f = p.get_future();
  static std::vector<Promise<int>> keep_alive;  // a promise that never completes
  keep_alive.push_back(std::move(p));
  return f;
}
Future<int> running_future() {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(p.set_running_or_notify_cancel());
  static std::vector<Promise<int>> keep_alive;
  keep_alive.push_back(std::move(p));
  return f;
}
Future<int> cancelled_future() {
  Future<int> f = pending_future();
  EXPECT_TRUE(f.cancel());
  return f;
}
Future<int> exception_future() {
  Promise<int> p;
  p.set_exception(std::runtime_error("os error"));
  return p.get_future();
}
Future<int> successful_future() {
  Promise<int> p;
  p.set_result(42);
  return p.get_future();
}

struct OsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// Callbacks

TEST(FutureCallbacks, RunWithResult) {
  Promise<int> p;
  int seen = 0;
  p.get_future().add_done_callback([&](const Future<int>& f) { seen = f.result(); });
  p.set_result(5);
  EXPECT_EQ(seen, 5);
}

TEST(FutureCallbacks, RunWithException) {
  Promise<int> p;
  std::string seen;
  p.get_future().add_done_callback([&](const Future<int>& f) {
    try {
      std::rethrow_exception(f.exception());
    } catch (const std::exception& e) {
      seen = e.what();
    }
  });
  p.set_exception(std::runtime_error("test"));
  EXPECT_EQ(seen, "test");
}

TEST(FutureCallbacks, RunOnCancel) {
  Future<int> f = pending_future();
  bool was_cancelled = false;
  f.add_done_callback([&](const Future<int>& done) { was_cancelled = done.cancelled(); });
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(was_cancelled);
}

TEST(FutureCallbacks, OneThatThrowsIsReportedAndTheOthersStillRun) {
  CapturedStderr err;
  Promise<int> p;
  Future<int> f = p.get_future();
  bool raising_was_called = false;
  bool fn_was_called = false;
  f.add_done_callback([&] {
    raising_was_called = true;
    throw std::runtime_error("doh!");
  });
  f.add_done_callback([&] { fn_was_called = true; });
  p.set_result(5);
  EXPECT_TRUE(raising_was_called);
  EXPECT_TRUE(fn_was_called);
  EXPECT_NE(err.text().find("exception calling callback for"), std::string::npos);
  EXPECT_NE(err.text().find("doh!"), std::string::npos);
}

TEST(FutureCallbacks, RunAtOnceWhenAlreadySuccessful) {
  Future<int> f = successful_future();
  int seen = 0;
  f.add_done_callback([&](const Future<int>& done) { seen = done.result(); });
  EXPECT_EQ(seen, 42);
}

TEST(FutureCallbacks, RunAtOnceWhenAlreadyFailed) {
  Future<int> f = exception_future();
  bool has_exception = false;
  f.add_done_callback(
      [&](const Future<int>& done) { has_exception = done.exception() != nullptr; });
  EXPECT_TRUE(has_exception);
}

TEST(FutureCallbacks, RunAtOnceWhenAlreadyCancelled) {
  Future<int> f = cancelled_future();
  bool was_cancelled = false;
  f.add_done_callback([&](const Future<int>& done) { was_cancelled = done.cancelled(); });
  EXPECT_TRUE(was_cancelled);
}

TEST(FutureCallbacks, ThatThrowsWhenAddedAfterSuccessIsReported) {
  CapturedStderr err;
  Future<int> f = successful_future();
  f.add_done_callback([] { throw std::runtime_error("doh!"); });
  EXPECT_NE(err.text().find("exception calling callback for"), std::string::npos);
  EXPECT_NE(err.text().find("doh!"), std::string::npos);
}

TEST(FutureCallbacks, RunInTheOrderAdded) {
  Promise<int> p;
  Future<int> f = p.get_future();
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) f.add_done_callback([&order, i] { order.push_back(i); });
  p.set_result(1);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

// ---------------------------------------------------------------------------------------------
// States

TEST(FutureStates, CancelSucceedsOnlyWhilePendingOrAlreadyCancelled) {
  Future<int> f1 = pending_future();
  Future<int> f2 = running_future();
  Future<int> f3 = cancelled_future();
  Future<int> f5 = exception_future();
  Future<int> f6 = successful_future();
  EXPECT_TRUE(f1.cancel());
  EXPECT_TRUE(f1.cancelled());
  EXPECT_FALSE(f2.cancel());
  EXPECT_TRUE(f2.running());
  EXPECT_TRUE(f3.cancel());
  EXPECT_TRUE(f3.cancelled());
  EXPECT_FALSE(f5.cancel());
  EXPECT_TRUE(f5.done());
  EXPECT_FALSE(f6.cancel());
  EXPECT_EQ(f6.result(), 42);
}

TEST(FutureStates, PredicatesMatchPythonsTable) {
  EXPECT_FALSE(pending_future().cancelled());
  EXPECT_FALSE(running_future().cancelled());
  EXPECT_TRUE(cancelled_future().cancelled());
  EXPECT_FALSE(exception_future().cancelled());
  EXPECT_FALSE(successful_future().cancelled());

  EXPECT_FALSE(pending_future().done());
  EXPECT_FALSE(running_future().done());
  EXPECT_TRUE(cancelled_future().done());
  EXPECT_TRUE(exception_future().done());
  EXPECT_TRUE(successful_future().done());

  EXPECT_FALSE(pending_future().running());
  EXPECT_TRUE(running_future().running());
  EXPECT_FALSE(cancelled_future().running());
  EXPECT_FALSE(exception_future().running());
  EXPECT_FALSE(successful_future().running());
}

TEST(FutureResult, WithZeroTimeoutDoesNotWait) {
  EXPECT_THROW(pending_future().result(0s), concur::TimeoutError);
  EXPECT_THROW(running_future().result(0s), concur::TimeoutError);
  EXPECT_THROW(cancelled_future().result(0s), concur::CancelledError);
  EXPECT_THROW(exception_future().result(0s), std::runtime_error);
  EXPECT_EQ(successful_future().result(0s), 42);
}

TEST(FutureResult, TimeoutAndCancelMessagesNameTheFix) {
  EXPECT_THROW_MSG(pending_future().result(0s), concur::TimeoutError, "pass a longer timeout");
  EXPECT_THROW_MSG(cancelled_future().result(), concur::CancelledError, "check cancelled() first");
}

TEST(FutureResult, WaitsForAResultSetByAnotherThread) {
  Promise<int> p;
  Future<int> f = p.get_future();
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    p.set_result(42);
  });
  EXPECT_EQ(f.result(5s), 42);
  t.join();
}

TEST(FutureResult, WaitsForACancelByAnotherThread) {
  Future<int> f = pending_future();
  std::thread t([f]() mutable {
    std::this_thread::sleep_for(20ms);
    f.cancel();
  });
  EXPECT_THROW(f.result(30s), concur::CancelledError);
  t.join();
}

TEST(FutureResult, RethrowsTheTasksOwnExceptionType) {
  Promise<int> p;
  p.set_exception(OsError("disk on fire"));
  EXPECT_THROW_MSG(p.get_future().result(), OsError, "disk on fire");
}

TEST(FutureResult, MovesAMoveOnlyValueOutOfAnRvalueHandle) {
  Promise<std::unique_ptr<int>> p;
  p.set_result(std::make_unique<int>(7));
  std::unique_ptr<int> v = p.get_future().result();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 7);
}

TEST(FutureResult, VoidFutures) {
  Promise<void> p;
  Future<void> f = p.get_future();
  EXPECT_THROW(f.result(0s), concur::TimeoutError);
  p.set_result();
  EXPECT_NO_THROW(f.result());
  EXPECT_EQ(f.exception(), nullptr);
}

TEST(FutureException, WithZeroTimeout) {
  EXPECT_THROW(pending_future().exception(0s), concur::TimeoutError);
  EXPECT_THROW(running_future().exception(0s), concur::TimeoutError);
  EXPECT_THROW(cancelled_future().exception(0s), concur::CancelledError);
  EXPECT_NE(exception_future().exception(0s), nullptr);
  EXPECT_EQ(successful_future().exception(0s), nullptr);
}

TEST(FutureException, WaitsForAnExceptionSetByAnotherThread) {
  Promise<int> p;
  Future<int> f = p.get_future();
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    p.set_exception(OsError("late"));
  });
  EXPECT_NE(f.exception(30s), nullptr);
  t.join();
}

TEST(FutureHandle, WithoutStateThrowsANamedError) {
  Future<int> f;
  EXPECT_FALSE(f.valid());
  EXPECT_THROW_MSG(f.result(), concur::InvalidStateError, "Future::result(): this handle has no");
  EXPECT_THROW_MSG(f.done(), concur::InvalidStateError, "Promise::get_future()");
  Future<int> g = successful_future();
  Future<int> h = std::move(g);
  EXPECT_THROW(g.cancel(), concur::InvalidStateError);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(h.result(), 42);
}

TEST(FutureHandle, CopiesShareOneState) {
  Promise<int> p;
  Future<int> a = p.get_future();
  Future<int> b = a;
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(b.cancel());
  EXPECT_TRUE(a.cancelled());
}

TEST(FutureHandle, ManyThreadsWaitOnOneFuture) {
  Promise<int> p;
  Future<int> f = p.get_future();
  std::atomic<int> seen{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 16; ++i) {
    waiters.emplace_back([f, &seen] { seen += f.result(); });
  }
  std::this_thread::sleep_for(5ms);
  p.set_result(1);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(seen.load(), 16);
}

// ---------------------------------------------------------------------------------------------
// Promise

TEST(Promise, SetResultTwiceIsAnInvalidStateError) {
  Promise<int> p;
  p.set_result(1);
  EXPECT_THROW_MSG(p.set_result(2), concur::InvalidStateError, "a promise is fulfilled once");
  EXPECT_EQ(p.get_future().result(), 1);
}

TEST(Promise, SetExceptionTwiceIsAnInvalidStateError) {
  Promise<int> p;
  p.set_exception(std::invalid_argument("first"));
  EXPECT_THROW(p.set_exception(std::runtime_error("second")), concur::InvalidStateError);
  EXPECT_THROW_MSG(p.get_future().result(), std::invalid_argument, "first");
}

TEST(Promise, SetResultAfterCancelIsAnInvalidStateErrorThatSaysWhatToDo) {
  Promise<int> p;
  p.get_future().cancel();
  EXPECT_FALSE(p.set_running_or_notify_cancel());
  EXPECT_THROW_MSG(p.set_result(1), concur::InvalidStateError, "set_running_or_notify_cancel()");
}

TEST(Promise, RunningFutureCannotBeCancelled) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_TRUE(p.set_running_or_notify_cancel());
  EXPECT_FALSE(f.cancel());
  EXPECT_THROW(p.set_running_or_notify_cancel(), concur::InvalidStateError);
  p.set_result(3);
  EXPECT_EQ(f.result(), 3);
}

TEST(Promise, DestroyedUnfulfilledBreaksItsFutureInsteadOfHangingIt) {
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
  }
  EXPECT_THROW_MSG(f.result(), concur::BrokenPromise, "destroyed before it set a result");
}

TEST(Promise, NullExceptionPointerIsRejected) {
  Promise<int> p;
  EXPECT_THROW_MSG(p.set_exception(std::exception_ptr()), concur::InvalidStateError,
                   "std::current_exception()");
}

TEST(Promise, MovedFromPromiseHasNoState) {
  Promise<int> a;
  Promise<int> b = std::move(a);
  EXPECT_THROW(a.set_result(1), concur::InvalidStateError);  // NOLINT(bugprone-use-after-move)
  b.set_result(2);
  EXPECT_EQ(b.get_future().result(), 2);
}

// ---------------------------------------------------------------------------------------------
// wait()

template <class T>
std::set<Future<T>*> as_set(std::vector<Future<T>>& v) {
  std::set<Future<T>*> out;
  for (auto& f : v) out.insert(&f);
  return out;
}

bool contains(const std::vector<Future<int>>& v, const Future<int>& f) {
  return std::find(v.begin(), v.end(), f) != v.end();
}

TEST(Wait, DuplicatesCountOnce) {  // bpo-20369
  Future<int> f = successful_future();
  auto [done, not_done] = concur::wait(std::vector{f, f}, concur::ALL_COMPLETED);
  EXPECT_EQ(done.size(), 1u);
  EXPECT_TRUE(not_done.empty());
}

TEST(Wait, FirstCompleted) {
  Promise<int> p1;
  Future<int> future1 = p1.get_future();
  Future<int> future2 = pending_future();
  Future<int> cancelled = cancelled_future();
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    p1.set_result(42);
  });
  auto [done, not_done] = concur::wait(std::vector{future1, future2}, concur::FIRST_COMPLETED);
  t.join();
  EXPECT_EQ(done.size(), 1u);
  EXPECT_TRUE(contains(done, future1));
  EXPECT_TRUE(contains(not_done, future2));
  // A cancelled future is done at once here (Python counts it only once "notified").
  auto split = concur::wait(std::vector{cancelled, future2}, concur::FIRST_COMPLETED);
  EXPECT_TRUE(contains(split.done, cancelled));
}

TEST(Wait, FirstCompletedSomeAlreadyCompleted) {
  Future<int> a = cancelled_future();
  Future<int> b = successful_future();
  Future<int> c = pending_future();
  auto [done, not_done] = concur::wait(std::vector{a, b, c}, concur::FIRST_COMPLETED);
  EXPECT_EQ(done.size(), 2u);
  EXPECT_TRUE(contains(done, a));
  EXPECT_TRUE(contains(done, b));
  EXPECT_EQ(not_done.size(), 1u);
  EXPECT_TRUE(contains(not_done, c));
}

TEST(Wait, FirstExceptionReturnsWhenOneRaises) {
  Promise<int> p1;
  Promise<int> p2;
  Future<int> f1 = p1.get_future();
  Future<int> f2 = p2.get_future();
  Future<int> f3 = pending_future();
  std::thread t([&] {
    p1.set_result(42);
    std::this_thread::sleep_for(10ms);
    p2.set_exception(std::runtime_error("this is an exception"));
  });
  auto [done, not_done] = concur::wait(std::vector{f1, f2, f3}, concur::FIRST_EXCEPTION);
  t.join();
  EXPECT_EQ(done.size(), 2u);
  EXPECT_TRUE(contains(done, f1));
  EXPECT_TRUE(contains(done, f2));
  EXPECT_EQ(not_done.size(), 1u);
  EXPECT_TRUE(contains(not_done, f3));
}

TEST(Wait, FirstExceptionSomeAlreadyComplete) {
  Future<int> ok = successful_future();
  Future<int> cancelled = cancelled_future();
  Future<int> failed = exception_future();
  Future<int> pending = pending_future();
  auto [done, not_done] =
      concur::wait(std::vector{ok, cancelled, failed, pending}, concur::FIRST_EXCEPTION);
  EXPECT_EQ(done.size(), 3u);
  EXPECT_TRUE(contains(not_done, pending));
}

TEST(Wait, FirstExceptionOneAlreadyFailed) {
  Future<int> failed = exception_future();
  Future<int> pending = pending_future();
  auto [done, not_done] = concur::wait(std::vector{failed, pending}, concur::FIRST_EXCEPTION);
  EXPECT_EQ(done.size(), 1u);
  EXPECT_TRUE(contains(done, failed));
  EXPECT_TRUE(contains(not_done, pending));
}

TEST(Wait, FirstExceptionWithoutAnyWaitsForAll) {
  Promise<int> p;
  Future<int> f = p.get_future();
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    p.set_result(1);
  });
  auto [done, not_done] =
      concur::wait(std::vector{successful_future(), f}, concur::FIRST_EXCEPTION);
  t.join();
  EXPECT_EQ(done.size(), 2u);
  EXPECT_TRUE(not_done.empty());
}

TEST(Wait, AllCompleted) {
  Promise<int> p;
  Future<int> late = p.get_future();
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    p.set_exception(std::runtime_error("div by zero"));
  });
  auto [done, not_done] =
      concur::wait(std::vector{successful_future(), cancelled_future(), exception_future(), late},
                   concur::ALL_COMPLETED);
  t.join();
  EXPECT_EQ(done.size(), 4u);
  EXPECT_TRUE(not_done.empty());
}

TEST(Wait, TimeoutLeavesThePendingOnesInNotDone) {
  Future<int> pending = pending_future();
  auto [done, not_done] = concur::wait(
      std::vector{cancelled_future(), exception_future(), successful_future(), pending}, 50ms,
      concur::ALL_COMPLETED);
  EXPECT_EQ(done.size(), 3u);
  EXPECT_EQ(not_done.size(), 1u);
  EXPECT_TRUE(contains(not_done, pending));
}

TEST(Wait, EmptyInputReturnsAtOnce) {
  std::vector<Future<int>> none;
  auto [done, not_done] = concur::wait(none, concur::FIRST_COMPLETED);
  EXPECT_TRUE(done.empty());
  EXPECT_TRUE(not_done.empty());
}

TEST(Wait, ManyFuturesCompletedConcurrently) {  // bpo-14406
  constexpr int kCount = 100;
  std::vector<Promise<int>> promises(kCount);
  std::vector<Future<int>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  std::vector<std::thread> setters;
  for (int t = 0; t < 4; ++t) {
    setters.emplace_back([&, t] {
      for (int i = t; i < kCount; i += 4) promises[static_cast<std::size_t>(i)].set_result(i);
    });
  }
  auto [done, not_done] = concur::wait(futures, concur::ALL_COMPLETED);
  for (auto& t : setters) t.join();
  EXPECT_EQ(done.size(), static_cast<std::size_t>(kCount));
  EXPECT_TRUE(not_done.empty());
}

TEST(Wait, FirstCompletedRacingManyCompletions) {
  for (int round = 0; round < 200 / concur::testing::kStressScale; ++round) {
    std::vector<Promise<int>> promises(8);
    std::vector<Future<int>> futures;
    for (auto& p : promises) futures.push_back(p.get_future());
    std::thread setter([&] {
      for (std::size_t i = 0; i < promises.size(); ++i) promises[i].set_result(static_cast<int>(i));
    });
    auto [done, not_done] = concur::wait(futures, concur::FIRST_COMPLETED);
    EXPECT_GE(done.size(), 1u);
    setter.join();
  }
}

// ---------------------------------------------------------------------------------------------
// as_completed()

TEST(AsCompleted, YieldsEveryFutureOnce) {
  Promise<int> p1;
  Promise<int> p2;
  std::vector<Future<int>> all{cancelled_future(), exception_future(), successful_future(),
                               p1.get_future(), p2.get_future()};
  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    p2.set_result(2);
    p1.set_result(1);
  });
  std::vector<Future<int>> seen;
  for (Future<int> f : concur::as_completed(all)) seen.push_back(f);
  t.join();
  ASSERT_EQ(seen.size(), all.size());
  for (const auto& f : all) EXPECT_TRUE(contains(seen, f));
}

TEST(AsCompleted, AlreadyDoneComeFirstThenInCompletionOrder) {
  Promise<int> p1;
  Promise<int> p2;
  Future<int> f1 = p1.get_future();
  Future<int> f2 = p2.get_future();
  Future<int> done = successful_future();
  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    p2.set_result(2);
    std::this_thread::sleep_for(5ms);
    p1.set_result(1);
  });
  std::vector<Future<int>> order;
  for (Future<int> f : concur::as_completed(std::vector{f1, f2, done})) order.push_back(f);
  t.join();
  ASSERT_EQ(order.size(), 3u);
  EXPECT_TRUE(order[0] == done);
  EXPECT_TRUE(order[1] == f2);
  EXPECT_TRUE(order[2] == f1);
}

TEST(AsCompleted, TimesOutBeforeTheLastOne) {
  for (auto timeout : {0ms, 100ms}) {
    std::vector<Future<int>> already{cancelled_future(), exception_future(), successful_future()};
    std::vector<Future<int>> all = already;
    all.push_back(pending_future());
    std::vector<Future<int>> completed;
    try {
      for (Future<int> f : concur::as_completed(all, timeout)) completed.push_back(f);
      ADD_FAILURE() << "expected TimeoutError";
    } catch (const concur::TimeoutError&) {
    }
    EXPECT_EQ(completed.size(), already.size());
  }
}

TEST(AsCompleted, DuplicatesAreYieldedOnce) {  // bpo-20367
  Future<int> f = successful_future();
  std::vector<Future<int>> completed;
  for (Future<int> g : concur::as_completed(std::vector{f, f, f})) completed.push_back(g);
  EXPECT_EQ(completed.size(), 1u);
}

TEST(AsCompleted, TimeoutMessageCountsTheUnfinished) {
  std::vector<Future<int>> all{cancelled_future(), pending_future(), running_future(),
                               successful_future()};
  EXPECT_THROW_MSG(
      {
        for (Future<int> f : concur::as_completed(all, 0ms)) (void)f;
      },
      concur::TimeoutError, "2 (of 4) futures unfinished");
}

TEST(AsCompleted, KeepsNoReferenceToYieldedFutures) {  // bpo-14406
  std::weak_ptr<int> watched;
  std::vector<Future<std::shared_ptr<int>>> all;
  {
    Promise<std::shared_ptr<int>> p;
    auto value = std::make_shared<int>(1);
    watched = value;
    p.set_result(std::move(value));
    all.push_back(p.get_future());
  }
  auto range = concur::as_completed(all);
  all.clear();  // as Python's test removes each future from its list
  for (Future<std::shared_ptr<int>> f : range) EXPECT_FALSE(watched.expired());
  // The range is still alive: it must not be what keeps the value alive.
  EXPECT_TRUE(watched.expired());
}

TEST(AsCompleted, StressManyProducers) {
  const int count = 2000 / concur::testing::kStressScale;
  std::vector<Promise<int>> promises(static_cast<std::size_t>(count));
  std::vector<Future<int>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  std::vector<std::thread> setters;
  for (int t = 0; t < 4; ++t) {
    setters.emplace_back([&, t] {
      for (int i = t; i < count; i += 4) promises[static_cast<std::size_t>(i)].set_result(i);
    });
  }
  long sum = 0;
  int n = 0;
  for (Future<int> f : concur::as_completed(futures)) {
    sum += f.result();
    ++n;
  }
  for (auto& t : setters) t.join();
  EXPECT_EQ(n, count);
  EXPECT_EQ(sum, static_cast<long>(count) * (count - 1) / 2);
}

}  // namespace
