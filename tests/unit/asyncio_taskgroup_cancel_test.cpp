// TaskGroup::cancel() (Python 3.15, gh-108951): the group cancels its children and its body and
// ends without CancelledError. Cases of CPython's test_taskgroups.py (main branch:
// test_taskgroup_cancel_children, _cancel_body, _cancel_idempotent, _cancel_after_exit,
// _cancel_create_task, _cancel_with_error, _cancel_and_outside_cancel) carried over; Python's
// "cancel before entering" has no equivalent here (the group exists only inside task_group()).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
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
using concur::RuntimeError;
using concur::testing::AsyncioTest;
using concur::testing::count_in;

constexpr auto kLong = 10s;  // a sleep that must be interrupted

using TaskGroupCancel = AsyncioTest;

Task<void> sleep_and_note(std::vector<std::string>* log, std::string name) {
  try {
    co_await asyncio::sleep(kLong);
    log->push_back(name + " finished");
  } catch (const CancelledError&) {
    log->push_back(name + " cancelled");
    throw;
  }
}

TEST_F(TaskGroupCancel, CancelStopsTheChildrenAndTheBodyAndTheGroupEndsWithoutCancelledError) {
  std::vector<std::string> log;
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.create_task(sleep_and_note(&log, "a"));
      tg.create_task(sleep_and_note(&log, "b"));
      co_await asyncio::sleep(0ns);  // the children start
      tg.cancel();
      co_await asyncio::sleep(kLong);  // the body is cancelled here
      log.push_back("body went on");
    });
    log.push_back("after the group");
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
    co_await asyncio::sleep(1ms);  // no cancellation left to deliver
    log.push_back("slept after");
  };
  run(body());
  // The children in any order (Python keeps them in a set), then the code after the group.
  ASSERT_EQ(log.size(), 4u);
  std::sort(log.begin(), log.begin() + 2);
  EXPECT_EQ(log, (std::vector<std::string>{"a cancelled", "b cancelled", "after the group",
                                           "slept after"}));
}

TEST_F(TaskGroupCancel, ACancelFromAChildEndsTheGroupQuietly) {
  int after = 0;
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.create_task([](asyncio::TaskGroup* g) -> Task<void> {
        co_await asyncio::sleep(1ms);
        g->cancel();  // "we are done": stop the siblings and the body
      }(&tg));
      std::vector<std::string> log;
      tg.create_task(sleep_and_note(&log, "sibling"));
      co_await asyncio::sleep(kLong);
    });
    ++after;
  };
  run(body());
  EXPECT_EQ(after, 1);
}

TEST_F(TaskGroupCancel, CancelIsIdempotentAndANoOpWhenNothingIsLeft) {
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.create_task([]() -> Task<void> { co_await asyncio::sleep(kLong); }());
      tg.cancel();
      tg.cancel();
      tg.cancel();
      co_return;  // leaves the body without awaiting: the request is consumed by the exit
    });
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
    co_await asyncio::sleep(1ms);
  };
  run(body());
}

TEST_F(TaskGroupCancel, CancelWithNoChildrenAndABodyThatDoesNotWaitEndsQuietly) {
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.cancel();
      co_return;
    });
    co_await asyncio::sleep(1ms);  // nothing pending for this task
  };
  run(body());
}

TEST_F(TaskGroupCancel, CreateTaskAfterCancelIsRefused) {
  auto body = [&]() -> Task<void> {
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.cancel();
      EXPECT_THROW_MSG(tg.create_task([]() -> Task<void> { co_return; }()), RuntimeError,
                       "shutting down");
      co_return;
    });
  };
  run(body());
}

TEST_F(TaskGroupCancel, ChildErrorsStillRaiseTheirExceptionGroup) {
  auto body = [&]() -> Task<void> {
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task([]() -> Task<void> {
          try {
            co_await asyncio::sleep(kLong);
          } catch (const CancelledError&) {
            throw std::runtime_error("failed while cancelled");
          }
        }());
        co_await asyncio::sleep(0ns);
        tg.cancel();
        co_await asyncio::sleep(kLong);
      });
      ADD_FAILURE() << "the child's error was lost";
    } catch (const ExceptionGroup& g) {
      EXPECT_EQ(count_in<std::runtime_error>(g), 1);
    }
  };
  run(body());
}

TEST_F(TaskGroupCancel, AnOutsideCancelOfTheParentStillPropagates) {
  auto body = [&]() -> Task<void> {
    asyncio::TaskGroup* group = nullptr;
    asyncio::Event entered;
    Task<void> parent =
        asyncio::create_task(asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
          group = &tg;
          entered.set();
          co_await asyncio::sleep(kLong);
        }));
    co_await entered.wait();
    parent.cancel();  // from outside
    group->cancel();  // and the group's own
    EXPECT_THROW(co_await parent, CancelledError);
    EXPECT_TRUE(parent.cancelled());
  };
  run(body());
}

}  // namespace
