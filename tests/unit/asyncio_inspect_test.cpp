// inspect_process() read on this very process (process_vm_readv works on oneself): what it reads
// through the anchor must be what snapshot_tasks() sees in process, field by field, for every
// kind of wait; with two loops on two threads it finds both. (concur-ps against another process:
// tests/integration/concur_ps_test.cpp.)
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "concur/asyncio/inspect.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::LoopReport;
using asyncio::Task;
using asyncio::TaskInfo;
using concur::testing::AsyncioTest;
using concur::testing::turns;

using Inspect = AsyncioTest;

Task<void> hold_then_get(asyncio::Lock* lock, asyncio::Queue<int>* queue) {
  co_await lock->acquire();
  co_await queue->get();
  lock->release();
}
Task<void> take(asyncio::Lock* lock) {
  co_await lock->acquire();
  lock->release();
}
Task<int> nap(std::chrono::nanoseconds d) {
  co_await asyncio::sleep(d);
  co_return 1;
}
Task<int> await_it(Task<int> t) {
  co_return co_await t;
}

const LoopReport* loop_of_this_thread(const std::vector<LoopReport>& loops) {
  for (const LoopReport& l : loops) {
    if (l.thread_id == gettid()) return &l;
  }
  return nullptr;
}

void expect_same(const TaskInfo& outside, const TaskInfo& inside) {
  EXPECT_EQ(outside.id, inside.id);
  EXPECT_EQ(outside.name, inside.name);
  EXPECT_EQ(outside.created_file, inside.created_file);
  EXPECT_EQ(outside.created_line, inside.created_line);
  EXPECT_EQ(outside.created_function, inside.created_function);
  EXPECT_EQ(outside.state, inside.state) << inside.name;
  EXPECT_EQ(outside.awaiting, inside.awaiting) << inside.name;
  EXPECT_EQ(outside.object, inside.object) << inside.name;
  EXPECT_EQ(outside.awaiting_tasks, inside.awaiting_tasks) << inside.name;
  EXPECT_EQ(outside.deadline_in_seconds.has_value(), inside.deadline_in_seconds.has_value());
}

TEST_F(Inspect, ReadingThisProcessFromOutsideGivesWhatTheLoopSeesInside) {
  asyncio::Lock lock;
  asyncio::Queue<int> queue;
  std::vector<TaskInfo> inside;
  std::vector<LoopReport> loops;
  auto body = [&]() -> Task<void> {
    auto holder = asyncio::create_task(hold_then_get(&lock, &queue), "holder");
    co_await turns(1);
    auto blocked = asyncio::create_task(take(&lock));  // a default name: Task-N
    auto leaf = asyncio::create_task(nap(10s), "leaf");
    auto middle = asyncio::create_task(await_it(leaf), "middle");
    co_await turns(2);
    inside = asyncio::snapshot_tasks();
    loops = asyncio::inspect_process(getpid()).loops;
    holder.cancel();
    blocked.cancel();
    middle.cancel();
    std::vector<Task<void>> voids{holder, blocked};
    std::vector<Task<int>> ints{middle, leaf};
    co_await asyncio::wait(std::move(voids));
    co_await asyncio::wait(std::move(ints));
  };
  run(body());

  const LoopReport* mine = loop_of_this_thread(loops);
  ASSERT_NE(mine, nullptr);
  EXPECT_FALSE(mine->torn);
  EXPECT_EQ(mine->thread_state, "running");  // it was reading itself
  EXPECT_TRUE(mine->holding_the_loop);
  ASSERT_EQ(mine->tasks.size(), inside.size());
  ASSERT_EQ(inside.size(), 5u);
  for (std::size_t i = 0; i < inside.size(); ++i) expect_same(mine->tasks[i], inside[i]);
  const std::string report = asyncio::format_process_report({getpid(), loops, {}, {}, {}}, false);
  EXPECT_NE(report.find("waiting on Queue.get 0x"), std::string::npos) << report;
}

TEST(InspectLoops, FindsEveryLoopOfTheProcessAndWhatItsThreadIsDoing) {
  std::promise<void> started, stop;
  std::shared_future<void> stopping = stop.get_future().share();
  int other_tid = 0;
  std::thread other([&] {
    asyncio::EventLoop loop;
    other_tid = gettid();
    started.set_value();
    stopping.wait();  // this loop's thread blocks outside its loop
  });
  started.get_future().wait();
  // Read until the other thread is seen blocked (it may still be on its way into the wait).
  std::vector<LoopReport> loops;
  const LoopReport* there = nullptr;
  {
    asyncio::EventLoop idle;  // created, never run
    for (int attempt = 0; attempt < 5000; ++attempt) {
      loops = asyncio::inspect_process(getpid()).loops;
      there = nullptr;
      for (const LoopReport& l : loops) {
        if (l.thread_id == other_tid) there = &l;
      }
      if (there == nullptr || there->thread_state != "running") break;
      std::this_thread::sleep_for(1ms);
    }
  }
  stop.set_value();
  other.join();
  ASSERT_GE(loops.size(), 2u);
  ASSERT_NE(there, nullptr);
  EXPECT_EQ(there->thread_state, "blocked in futex");  // std::shared_future::wait
  EXPECT_TRUE(there->tasks.empty());
  const LoopReport* here = loop_of_this_thread(loops);
  ASSERT_NE(here, nullptr);
  EXPECT_EQ(here->thread_state, "running");
}

TEST(InspectLoops, NamesTheProcessThatIsNotThere) {
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
  EXPECT_THROW(asyncio::inspect_process(gone), concur::ProcessLookupError);
}

}  // namespace
