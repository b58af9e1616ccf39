// Tests of asyncio::timeout / timeout_at (concur/asyncio/tasks.hpp): expiry, nesting and
// rescheduling, carried over from CPython's Lib/test/test_asyncio/test_timeouts.py.
#include <gtest/gtest.h>

#include "asyncio_task_helpers.hpp"

namespace {

using namespace concur::testing::task_helpers;

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

}  // namespace
