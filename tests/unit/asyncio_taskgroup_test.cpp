// Tests of TaskGroup (concur/asyncio/tasks.hpp) against Python 3.13's taskgroups.py: an outside
// cancellation that survives a child's failure, cancelling() accounting across nested groups,
// KeyboardInterrupt passed through bare, and refused coroutines closed quietly. The cases of
// CPython's Lib/test/test_asyncio/test_taskgroups.py (3.13), carried over; the older TaskGroup
// cases live in asyncio_taskgroup_basic_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
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
using concur::ExceptionGroup;
using concur::KeyboardInterrupt;
using concur::RuntimeError;
using concur::testing::AsyncioTest;
using concur::testing::contains;
using concur::testing::count_in;
using concur::testing::is_a;
using concur::testing::turns;

// Long enough that a test waiting for it to pass has failed: the tests only wait for it to be
// interrupted.
constexpr auto kLong = 10s;

struct MyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct OtherError : std::logic_error {
  using std::logic_error::logic_error;
};

// CPython's raise_after(t, e).
template <class E>
Task<void> raise_after(std::chrono::nanoseconds delay, std::string what) {
  co_await asyncio::sleep(delay);
  throw E(what);
}

Task<void> nap(std::chrono::nanoseconds delay) {
  co_await asyncio::sleep(delay);
}

int cancelling_now() {
  return asyncio::current_task()->cancelling();
}

using TaskGroupCancelTest = AsyncioTest;

// CPython's test_error_and_cancel (3.13): the group's error is handled, and then the outside
// cancel() is delivered at the next co_await.
Task<void> error_then_cancelled_inner(asyncio::Event* started, int* seen_in_handler,
                                      int* seen_after, bool* slept_through) {
  try {
    co_await asyncio::task_group([started](asyncio::TaskGroup& tg) -> Task<void> {
      tg.create_task([](asyncio::Event* e) -> Task<void> {
        e->set();
        co_await asyncio::sleep(0ns);
        throw RuntimeError("child");
      }(started));
      co_await asyncio::sleep(kLong);
      ADD_FAILURE() << "the sleep in the group should have been cancelled";
    });
  } catch (const ExceptionGroup& g) {
    EXPECT_EQ(count_in<RuntimeError>(g), 1);
    *seen_in_handler = cancelling_now();
  }
  *seen_after = cancelling_now();
  co_await asyncio::sleep(kLong);
  *slept_through = true;
}

TEST_F(TaskGroupCancelTest, AnOutsideCancelSurvivesAChildsFailure) {
  auto main_task = [&]() -> Task<void> {
    asyncio::Event started;
    int in_handler = -1;
    int after = -1;
    bool slept_through = false;
    Task<void> t = asyncio::create_task(
        error_then_cancelled_inner(&started, &in_handler, &after, &slept_through));
    co_await started.wait();
    EXPECT_EQ(t.cancelling(), 0);
    t.cancel();
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(in_handler, 1);
    EXPECT_EQ(after, 1);
    EXPECT_FALSE(slept_through) << "the cancellation from outside was lost";
  };
  run(main_task());
}

TEST_F(TaskGroupCancelTest, AnOutsideCancelWhileTheGroupWaitsIsReRaisedAfterItsError) {
  // The same with the parent already in the group's exit (no body to interrupt): the child fails
  // first, the cancel comes before the parent resumes, and the task, which ends without another
  // co_await, ends cancelled, as Python 3.13's does with _must_cancel set (3.12 lost it; checked
  // on both).
  auto inner = [](asyncio::Event* started, bool* handled) -> Task<void> {
    try {
      co_await asyncio::task_group([started](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task([](asyncio::Event* e) -> Task<void> {
          e->set();
          throw MyError("child");
          co_return;
        }(started));
        co_return;
      });
    } catch (const ExceptionGroup&) {
      *handled = true;
    }
  };
  auto main_task = [&]() -> Task<void> {
    asyncio::Event started;
    bool handled = false;
    Task<void> t = asyncio::create_task(inner(&started, &handled));
    co_await started.wait();
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(handled);
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 1);
  };
  run(main_task());
}

TEST_F(TaskGroupCancelTest, CancellingLevelIsPreservedAfterAChildsError) {
  // CPython's test_cancelling_level_preserved.
  auto main_task = [&]() -> Task<void> {
    bool caught = false;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(raise_after<MyError>(0ns, "x"));
        co_return;
      });
    } catch (const ExceptionGroup& g) {
      caught = count_in<MyError>(g) == 1;
    }
    EXPECT_TRUE(caught);
    EXPECT_EQ(cancelling_now(), 0);
    co_await asyncio::sleep(0ns);  // and nothing is pending
  };
  run(main_task());
}

TEST_F(TaskGroupCancelTest, NestedGroupsBothFailingSeeTheOuterGroupsCancelBetweenThem) {
  // CPython's test_nested_groups_both_cancelled: the outer group's child fails before the parent
  // resumes from the inner group's exit, so the parent sees the outer group's cancel request.
  auto main_task = [&]() -> Task<void> {
    int between = -1;
    bool inner_caught = false;
    bool outer_caught = false;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& outer_tg) -> Task<void> {
        try {
          co_await asyncio::task_group([&](asyncio::TaskGroup& inner_tg) -> Task<void> {
            inner_tg.create_task(raise_after<RuntimeError>(0ns, "inner"));
            outer_tg.create_task(raise_after<MyError>(0ns, "outer"));
            co_return;
          });
        } catch (const ExceptionGroup& g) {
          inner_caught = count_in<RuntimeError>(g) == 1;
        }
        between = cancelling_now();
      });
    } catch (const ExceptionGroup& g) {
      outer_caught = count_in<MyError>(g) == 1;
    }
    EXPECT_TRUE(inner_caught);
    EXPECT_TRUE(outer_caught);
    EXPECT_EQ(between, 1);
    EXPECT_EQ(cancelling_now(), 0);
    co_await asyncio::sleep(0ns);  // not cancelled
  };
  run(main_task());
}

TEST_F(TaskGroupCancelTest, ExitRaisingInTheBodyLeavesCancellingAtZero) {
  // CPython's test_taskgroup_context_manager_exit_raises (gh-95289): a body that raises on its
  // way out while a child fails gives both errors, and the parent is not left cancelled.
  auto main_task = [&]() -> Task<void> {
    std::size_t errors = 0;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(raise_after<MyError>(0ns, "child"));
        try {
          co_await asyncio::sleep(kLong);
        } catch (...) {
        }
        throw MyError("the body's cleanup");
      });
    } catch (const ExceptionGroup& g) {
      errors = g.exceptions().size();
      EXPECT_EQ(count_in<MyError>(g), 2);
    }
    EXPECT_EQ(errors, 2u);
    EXPECT_EQ(cancelling_now(), 0);
  };
  run(main_task());
}

TEST_F(TaskGroupCancelTest, AnOutsideCancelWithoutErrorsStillPropagates) {
  // CPython's test_cancellation: the parent cancelled while the group waits ends cancelled, its
  // children cancelled, and cancelling() counts the one request.
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto runner = [](int* n) -> Task<void> {
      co_await asyncio::task_group([n](asyncio::TaskGroup& tg) -> Task<void> {
        for (int i = 0; i < 5; ++i) {
          tg.create_task([](int* c) -> Task<void> {
            try {
              co_await asyncio::sleep(kLong);
            } catch (const CancelledError&) {
              ++*c;
              throw;
            }
          }(n));
        }
        co_return;
      });
    };
    Task<void> r = asyncio::create_task(runner(&cancels));
    co_await turns(2);
    r.cancel();
    EXPECT_THROW(co_await r, CancelledError);
    EXPECT_EQ(cancels, 5);
    EXPECT_EQ(r.cancelling(), 1);
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// KeyboardInterrupt

using TaskGroupBaseErrorTest = AsyncioTest;

TEST_F(TaskGroupBaseErrorTest, KeyboardInterruptInTheBodyIsReRaisedBare) {
  // CPython's test_taskgroup_20: the body raises KeyboardInterrupt while a child fails; Python
  // re-raises it alone, not in an exception group.
  auto main_task = [&]() -> Task<void> {
    int bare = 0;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(raise_after<MyError>(1ms, "child"));
        try {
          co_await asyncio::sleep(kLong);
        } catch (...) {
        }
        throw KeyboardInterrupt("from the body");
      });
    } catch (const KeyboardInterrupt& e) {
      ++bare;
      EXPECT_TRUE(contains(e.what(), "from the body")) << e.what();
    } catch (const ExceptionGroup&) {
      ADD_FAILURE() << "KeyboardInterrupt came out wrapped in an ExceptionGroup";
    }
    EXPECT_EQ(bare, 1);
  };
  run(main_task());
}

TEST_F(TaskGroupBaseErrorTest, KeyboardInterruptOfAChildIsReRaisedBareAfterTheOthersFinish) {
  // CPython's _test_taskgroup_21 (disabled there only because asyncio's loop itself crashes on a
  // KeyboardInterrupt in a task; concur's does not): the siblings are cancelled and awaited.
  auto main_task = [&]() -> Task<void> {
    int bare = 0;
    bool sibling_cancelled = false;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(raise_after<KeyboardInterrupt>(1ms, "from a child"));
        tg.create_task([](bool* c) -> Task<void> {
          try {
            co_await asyncio::sleep(kLong);
          } catch (const CancelledError&) {
            *c = true;
            throw;
          }
        }(&sibling_cancelled));
        try {
          co_await asyncio::sleep(kLong);
        } catch (...) {
        }
        throw MyError("the body");
      });
    } catch (const KeyboardInterrupt&) {
      ++bare;
    } catch (const ExceptionGroup&) {
      ADD_FAILURE() << "KeyboardInterrupt came out wrapped in an ExceptionGroup";
    }
    EXPECT_EQ(bare, 1);
    EXPECT_TRUE(sibling_cancelled);
    // Python raises the base error before withdrawing its own cancel of the parent; so do we.
    EXPECT_EQ(cancelling_now(), 1);
    asyncio::current_task()->uncancel();
  };
  run(main_task());
}

TEST_F(TaskGroupBaseErrorTest, OtherErrorsBesideAChildsFailureAreStillGrouped) {
  // CPython's test_taskgroup_20a: anything but KeyboardInterrupt is grouped as before.
  auto main_task = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(raise_after<MyError>(1ms, "child"));
        try {
          co_await asyncio::sleep(kLong);
        } catch (...) {
        }
        throw OtherError("the body");
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(count_in<MyError>(g), 1);
      EXPECT_EQ(count_in<OtherError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
  };
  run(main_task());
}

// ---------------------------------------------------------------------------------------------
// Refused coroutines (debug mode)

using TaskGroupDebugTest = AsyncioTest;

TEST_F(TaskGroupDebugTest, ACoroutineRefusedByAShuttingDownGroupIsClosedSilently) {
  // CPython's test_taskgroup_no_create_task_after_failure / test_taskgroup_finished: the refused
  // coroutine is closed, so debug mode does not report it as never awaited.
  loop.set_debug(true);
  auto main_task = [&]() -> Task<void> {
    std::string shutting_down;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(raise_after<MyError>(0ns, "child"));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
        }
        try {
          tg.create_task(nap(0ns));
        } catch (const RuntimeError& e) {
          shutting_down = e.what();
        }
      });
    } catch (const ExceptionGroup&) {
    }
    EXPECT_TRUE(contains(shutting_down, "shutting down")) << shutting_down;
    // "is finished": a done callback of the last child runs before the group's exit resumes.
    asyncio::TaskGroup* group = nullptr;
    std::string finished;
    Task<void> last = nap(1ms);
    last.add_done_callback([&](const Task<void>&) {
      try {
        group->create_task(nap(0ns));
      } catch (const RuntimeError& e) {
        finished = e.what();
      }
    });
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      group = &tg;
      tg.create_task(last);
      co_return;
    });
    EXPECT_TRUE(contains(finished, "finished")) << finished;
  };
  run(main_task());
  EXPECT_TRUE(take_reports().empty());
}

TEST_F(TaskGroupDebugTest, ACoroutineDroppedWithoutAGroupIsStillReported) {
  // The guard above is specific: a coroutine dropped by the user is still reported.
  loop.set_debug(true);
  auto main_task = [&]() -> Task<void> {
    { Task<void> dropped = nap(0ns); }
    co_return;
  };
  run(main_task());
  std::vector<std::string> got = take_reports();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0], "never awaited")) << got[0];
}

}  // namespace
