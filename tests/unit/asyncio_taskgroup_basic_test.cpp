// Tests of TaskGroup's basic behaviour (concur/asyncio/tasks.hpp): waiting for every child, the
// first failure cancelling the rest, errors gathered in an ExceptionGroup. From CPython's
// Lib/test/test_asyncio/test_taskgroups.py; Python 3.13's later cases are in
// asyncio_taskgroup_test.cpp and asyncio_taskgroup_cancel_test.cpp.
#include <gtest/gtest.h>

#include "asyncio_task_helpers.hpp"

namespace {

using namespace concur::testing::task_helpers;

// ---------------------------------------------------------------------------------------------
// TaskGroup

using TaskGroupTest = AsyncioTest;

TEST_F(TaskGroupTest, WaitsForEveryChild) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t1;
    Task<int> t2;
    Task<int> t3;
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      t1 = tg.create_task(value_after(2ms, 42));
      t2 = tg.create_task(value_after(5ms, 11), "second");
      EXPECT_EQ(tg.size(), 2u);
      co_await asyncio::sleep(1ms);
      t3 = tg.create_task(value_after(3ms, 7));  // added later
    });
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
    EXPECT_EQ(t1.result(), 42);
    EXPECT_EQ(t2.result(), 11);
    EXPECT_EQ(t2.get_name(), "second");
    EXPECT_EQ(t3.result(), 7);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, EmptyGroup) {
  auto main_task = [&]() -> Task<void> {
    bool ran = false;
    co_await asyncio::task_group([&](asyncio::TaskGroup&) -> Task<void> {
      ran = true;
      co_return;
    });
    EXPECT_TRUE(ran);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, AnExplicitlyCancelledChildDoesNotAbortTheGroup) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t1;
    Task<int> t2;
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      t1 = tg.create_task(value_after(kLong, 42));
      co_await asyncio::sleep(1ms);
      t1.cancel();
      t2 = tg.create_task(value_after(2ms, 11));
    });
    EXPECT_TRUE(t1.cancelled());
    EXPECT_EQ(t2.result(), 11);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, AFailingChildCancelsItsSiblingsAndTheBody) {
  auto main_task = [&]() -> Task<void> {
    int sibling_cancels = 0;
    bool body_cancelled = false;
    bool after_group = false;
    auto runner = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child failed"));
        tg.create_task(sleeper(kLong, &sibling_cancels));
        tg.create_task(sleeper(kLong, &sibling_cancels));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
          body_cancelled = true;
          throw;
        }
      });
      after_group = true;
    };
    auto start = Clock::now();
    Task<void> r = asyncio::create_task(runner());
    int groups = 0;
    try {
      co_await r;
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 1u);
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_EQ(sibling_cancels, 2);
    EXPECT_TRUE(body_cancelled);
    EXPECT_FALSE(after_group);
    EXPECT_FALSE(r.cancelled()) << "it failed with the group, it was not cancelled";
    EXPECT_LT(Clock::now() - start, kLong / 4);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, ErrorsOfSeveralChildrenAreGathered) {
  auto fails_when_cancelled = []() -> Task<void> {
    try {
      co_await asyncio::sleep(kLong);
    } catch (const CancelledError&) {
    }
    throw OtherError("failed while being cancelled");
  };
  auto main_task = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fails_when_cancelled());
        tg.create_task(fail_after(1ms, "first"));
        co_return;
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 2u);
      EXPECT_EQ(count_in<MyError>(g), 1);
      EXPECT_EQ(count_in<OtherError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, TheBodysExceptionIsIncludedAndTheChildrenCancelled) {
  auto main_task = [&]() -> Task<void> {
    Task<int> t1;
    Task<int> t2;
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        t1 = tg.create_task(value_after(kLong, 1));
        t2 = tg.create_task(value_after(kLong, 2));
        co_await asyncio::sleep(1ms);
        throw MyError("from the body");
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 1u);
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_TRUE(t1.cancelled());
    EXPECT_TRUE(t2.cancelled());
  };
  run(main_task());
}

TEST_F(TaskGroupTest, BodyAndChildErrorsTogether) {
  // CPython's test_taskgroup_19: the body raises while it is being cancelled for a child's error.
  auto main_task = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child"));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
        }
        throw OtherError("body");
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 2u);
      EXPECT_EQ(count_in<MyError>(g), 1);
      EXPECT_EQ(count_in<OtherError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CancellingTheParentWhileTheGroupWaitsCancelsTheChildren) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto runner = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        for (int i = 0; i < 5; ++i) tg.create_task(sleeper(kLong, &cancels));
        co_return;
      });
    };
    Task<void> r = asyncio::create_task(runner());
    co_await turns(2);
    EXPECT_FALSE(r.done());
    r.cancel("test");
    EXPECT_THROW_MSG(co_await r, CancelledError, "test");
    EXPECT_TRUE(r.cancelled());
    EXPECT_EQ(cancels, 5);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CancellingTheParentWhileTheBodyWaits) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto runner = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        for (int i = 0; i < 5; ++i) tg.create_task(sleeper(kLong, &cancels));
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
          cancels += 10;
          throw;
        }
      });
    };
    Task<void> r = asyncio::create_task(runner());
    co_await turns(2);
    r.cancel("test");
    EXPECT_THROW_MSG(co_await r, CancelledError, "test");
    EXPECT_EQ(cancels, 15);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, BodyRaisingOnItsCancellationGivesAnExceptionGroup) {
  // CPython's test_taskgroup_18.
  auto main_task = [&]() -> Task<void> {
    auto runner = []() -> Task<void> {
      co_await asyncio::task_group([](asyncio::TaskGroup&) -> Task<void> {
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
        }
        throw MyError("instead of the cancel");
      });
    };
    Task<void> r = asyncio::create_task(runner());
    co_await turns(2);
    r.cancel();
    int groups = 0;
    try {
      co_await r;
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CreateTaskWhileShuttingDownIsRuntimeError) {
  auto main_task = [&]() -> Task<void> {
    std::string error;
    bool started = false;
    int groups = 0;
    try {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child"));
        bool cancelled = false;
        try {
          co_await asyncio::sleep(kLong);
        } catch (const CancelledError&) {
          cancelled = true;
        }
        EXPECT_TRUE(cancelled);
        try {
          tg.create_task(set_flag(&started));
        } catch (const RuntimeError& e) {
          error = e.what();
        }
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(count_in<MyError>(g), 1);
    }
    EXPECT_EQ(groups, 1);
    EXPECT_TRUE(contains(error, "shutting down")) << error;
    co_await asyncio::sleep(0ns);
    EXPECT_FALSE(started);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, CreateTaskOnceTheGroupFinishedIsRuntimeError) {
  // A done callback registered on the last child before it joined the group runs before the
  // group's exit resumes: the group is finished (and still there).
  auto main_task = [&]() -> Task<void> {
    asyncio::TaskGroup* group = nullptr;
    std::string error;
    bool late_started = false;
    Task<int> last = value_after(1ms, 1);
    last.add_done_callback([&](const Task<int>&) {
      try {
        group->create_task(set_flag(&late_started));
      } catch (const RuntimeError& e) {
        error = e.what();
      }
    });
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      group = &tg;
      tg.create_task(last);
      co_return;
    });
    EXPECT_TRUE(contains(error, "finished")) << error;
    co_await asyncio::sleep(0ns);
    EXPECT_FALSE(late_started);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, AChildMayAddASiblingWhileTheGroupExits) {
  auto spawner = [](asyncio::TaskGroup* tg, Task<int>* out) -> Task<void> {
    co_await asyncio::sleep(1ms);
    *out = tg->create_task(value_after(1ms, 5));
  };
  auto main_task = [&]() -> Task<void> {
    Task<int> late;
    co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
      tg.create_task(spawner(&tg, &late));
      co_return;
    });
    EXPECT_TRUE(late.valid());
    if (late.valid()) {
      EXPECT_TRUE(late.done());
      EXPECT_EQ(late.result(), 5);
    }
  };
  run(main_task());
}

TEST_F(TaskGroupTest, NestedGroupErrorIsWrapped) {
  // CPython's test_taskgroup_14.
  auto main_task = [&]() -> Task<void> {
    int groups = 0;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& g1) -> Task<void> {
        g1.create_task(fail_after(kLong, "outer child"));
        co_await asyncio::task_group([](asyncio::TaskGroup& g2) -> Task<void> {
          g2.create_task(fail_after(1ms, "inner child"));
          co_return;
        });
      });
    } catch (const ExceptionGroup& g) {
      ++groups;
      EXPECT_EQ(g.exceptions().size(), 1u);
      EXPECT_EQ(count_in<ExceptionGroup>(g), 1);
      if (!g.exceptions().empty()) {
        try {
          std::rethrow_exception(g.exceptions()[0]);
        } catch (const ExceptionGroup& inner) {
          EXPECT_EQ(count_in<MyError>(inner), 1);
        } catch (...) {
        }
      }
    }
    EXPECT_EQ(groups, 1);
  };
  run(main_task());
}

TEST_F(TaskGroupTest, TheGroupWithdrawsItsCancelOfTheParent) {
  auto main_task = [&]() -> Task<void> {
    bool caught = false;
    try {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(0ns, "x"));
        co_await asyncio::sleep(kLong);
      });
    } catch (const ExceptionGroup&) {
      caught = true;
    }
    EXPECT_TRUE(caught);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
    co_await asyncio::sleep(1ms);  // not cancelled
  };
  run(main_task());
}

TEST_F(TaskGroupTest, InsideATimeout) {
  auto main_task = [&]() -> Task<void> {
    int cancels = 0;
    auto group = [&]() -> Task<void> {
      co_await asyncio::task_group([&](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(sleeper(kLong, &cancels));
        tg.create_task(sleeper(kLong, &cancels));
        co_return;
      });
    };
    auto start = Clock::now();
    EXPECT_THROW(co_await asyncio::timeout(2ms, group()), TimeoutError);
    EXPECT_EQ(cancels, 2);
    EXPECT_LT(Clock::now() - start, kLong / 4);

    // A child's failure inside a timeout is an ExceptionGroup, not a TimeoutError.
    auto failing = []() -> Task<void> {
      co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> Task<void> {
        tg.create_task(fail_after(1ms, "child"));
        co_await asyncio::sleep(kLong);
      });
    };
    EXPECT_THROW(co_await asyncio::timeout(kLong, failing()), ExceptionGroup);
    EXPECT_EQ(asyncio::current_task()->cancelling(), 0);
  };
  run(main_task());
}

}  // namespace
