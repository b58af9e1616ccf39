// Call graphs (Python 3.14's capture_call_graph / format_call_graph, asyncio ps / pstree): each
// test builds a program whose waits it knows, stops it there, and checks the snapshot, the graph
// and the formatted text against that known graph. Cases after CPython's
// test_asyncio/test_graph.py (test_stack_tgroup, test_stack_gather, test_stack_wait,
// test_stack_task), plus the stuck program concur-ps is for: a task on a lock held by a task
// blocked on a queue.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::CallGraph;
using asyncio::Task;
using asyncio::TaskInfo;
using concur::testing::AsyncioTest;
using concur::testing::contains;
using concur::testing::turns;

using CallGraphTest = AsyncioTest;

const TaskInfo* find(const std::vector<TaskInfo>& tasks, const std::string& name) {
  auto it =
      std::find_if(tasks.begin(), tasks.end(), [&](const TaskInfo& t) { return t.name == name; });
  return it == tasks.end() ? nullptr : &*it;
}

std::uintptr_t address(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

// A vector of task handles, built outside any coroutine: GCC 12 rejects a braced list in an
// expression that also awaits ("array used as initializer").
template <class T, class... More>
std::vector<Task<T>> tasks_of(Task<T> first, More... more) {
  return std::vector<Task<T>>{first, more...};
}

// Waits until every given task is done, whatever its outcome (the tests' clean-up).
template <class T, class... More>
Task<void> settle(Task<T> first, More... more) {
  co_await asyncio::wait(tasks_of(first, more...));
}

Task<void> hold_lock_then_get(asyncio::Lock* lock, asyncio::Queue<int>* queue) {
  co_await lock->acquire();
  co_await queue->get();  // nothing is ever put: it blocks here, holding the lock
  lock->release();
}

Task<void> take_lock(asyncio::Lock* lock) {
  co_await lock->acquire();
  lock->release();
}

TEST_F(CallGraphTest, NothingToCaptureOutsideARunningLoop) {
  EXPECT_TRUE(asyncio::snapshot_tasks().empty());
  EXPECT_FALSE(asyncio::capture_call_graph().has_value());
  EXPECT_EQ(asyncio::format_call_graph(), "");
}

// The stuck program: "holder" holds the lock and waits on an empty queue; "blocked" waits on the
// lock. The snapshot names both waits and the objects, and the table says so. (The coroutines
// only take snapshots and clean up; the checks follow, outside them.)
TEST_F(CallGraphTest, ATaskOnALockHeldByATaskBlockedOnAQueue) {
  asyncio::Lock lock;
  asyncio::Queue<int> queue;
  std::vector<TaskInfo> tasks;
  std::uint32_t my_id = 0;
  auto body = [&]() -> Task<void> {
    auto holder = asyncio::create_task(hold_lock_then_get(&lock, &queue), "holder");
    co_await turns(1);
    auto blocked = asyncio::create_task(take_lock(&lock), "blocked");
    co_await turns(2);
    tasks = asyncio::snapshot_tasks();
    my_id = asyncio::current_task()->id();
    holder.cancel();
    blocked.cancel();
    co_await settle(holder, blocked);
  };
  run(body());

  ASSERT_EQ(tasks.size(), 3u);  // the body, holder, blocked
  const TaskInfo* h = find(tasks, "holder");
  const TaskInfo* b = find(tasks, "blocked");
  ASSERT_TRUE(h && b);
  EXPECT_EQ(tasks[0].id, my_id);
  EXPECT_EQ(tasks[0].state, TaskInfo::State::running);
  EXPECT_EQ(h->state, TaskInfo::State::waiting);
  EXPECT_EQ(h->awaiting, "Queue.get");
  EXPECT_EQ(b->state, TaskInfo::State::waiting);
  EXPECT_EQ(b->awaiting, "Lock");
  EXPECT_NE(h->object, b->object);
  EXPECT_GE(b->object, address(&lock));  // the lock's own wait list, inside the lock
  EXPECT_LT(b->object, address(&lock) + sizeof lock);
  EXPECT_GE(h->object, address(&queue));
  EXPECT_LT(h->object, address(&queue) + sizeof queue);
  EXPECT_TRUE(h->awaiting_tasks.empty());
  EXPECT_FALSE(h->deadline_in_seconds.has_value());
  EXPECT_EQ(b->creation_site().rfind("asyncio_call_graph_test.cpp:", 0), 0u) << b->creation_site();
  EXPECT_LT(h->id, b->id);

  const std::string table = asyncio::format_task_table(tasks);
  EXPECT_TRUE(contains(table, "holder")) << table;
  EXPECT_TRUE(contains(table, "waiting on Queue.get 0x")) << table;
  EXPECT_TRUE(contains(table, "waiting on Lock 0x")) << table;
  EXPECT_TRUE(contains(table, "running")) << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 4) << table;  // header + 3 rows
}

Task<int> sleeper(std::chrono::nanoseconds d, int v) {
  co_await asyncio::sleep(d);
  co_return v;
}

Task<int> await_it(Task<int> t) {
  co_return co_await t;
}

// test_stack_task: a task awaited by a task awaited by a task: the graph of the leaf is the
// chain up to the root, and the sleep shows its deadline.
Task<void> wait_on(asyncio::Event* event) {
  co_await event->wait();
}

// A task's age counts from the start of the loop turn that created it: never less than the time
// since create_task() returned, as measured here on the same clock (less the milliseconds the
// stamps are cut to), and a task created later is younger.
TEST_F(CallGraphTest, ATasksAgeCountsFromTheLoopTurnThatCreatedIt) {
  asyncio::Event never;
  std::vector<TaskInfo> tasks;
  double measured = 0;
  auto body = [&]() -> Task<void> {
    auto old = asyncio::create_task(wait_on(&never), "old");
    const auto created = std::chrono::steady_clock::now();
    co_await asyncio::sleep(50ms);
    auto young = asyncio::create_task(wait_on(&never), "young");
    co_await turns(1);
    // Measured before the snapshot, so that the snapshot's own reading of the clock is later.
    measured = std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count();
    tasks = asyncio::snapshot_tasks();
    old.cancel();
    young.cancel();
    co_await settle(old, young);
  };
  run(body());
  const TaskInfo* old = find(tasks, "old");
  const TaskInfo* young = find(tasks, "young");
  ASSERT_TRUE(old && young);
  EXPECT_GE(old->age_in_seconds, measured - 0.002);
  EXPECT_LT(young->age_in_seconds, old->age_in_seconds);
  EXPECT_GE(young->age_in_seconds, 0.0);
  EXPECT_TRUE(contains(asyncio::format_task_table(tasks), " age  created at\n"));
}

TEST_F(CallGraphTest, TheGraphOfALeafIsTheChainOfItsAwaitersUpToTheRoot) {
  std::optional<CallGraph> g;
  std::string tree;
  std::uint32_t leaf_id = 0;
  auto body = [&]() -> Task<void> {
    auto leaf = asyncio::create_task(sleeper(10s, 1), "leaf");
    auto middle = asyncio::create_task(await_it(leaf), "middle");
    auto top = asyncio::create_task(await_it(middle), "top");
    co_await turns(2);
    g = asyncio::capture_call_graph(leaf);
    tree = asyncio::format_task_tree(asyncio::snapshot_tasks());
    leaf_id = leaf.base().id();
    top.cancel();
    co_await settle(top, middle, leaf);
  };
  run(body());

  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->task.name, "leaf");
  EXPECT_EQ(g->task.awaiting, "sleep");
  ASSERT_TRUE(g->task.deadline_in_seconds.has_value());
  EXPECT_GT(*g->task.deadline_in_seconds, 0.0);
  EXPECT_LE(*g->task.deadline_in_seconds, 10.0);
  EXPECT_FALSE(g->cycle);
  ASSERT_EQ(g->awaited_by.size(), 1u);
  const CallGraph& m = g->awaited_by[0];
  EXPECT_EQ(m.task.name, "middle");
  EXPECT_EQ(m.task.awaiting, "task");
  EXPECT_EQ(m.task.awaiting_tasks, std::vector<std::uint32_t>{leaf_id});
  ASSERT_EQ(m.awaited_by.size(), 1u);
  EXPECT_EQ(m.awaited_by[0].task.name, "top");
  EXPECT_TRUE(m.awaited_by[0].awaited_by.empty());  // nobody awaits top (the body holds it)

  const std::string text = asyncio::format_call_graph(*g);
  const std::string id = std::to_string(leaf_id);
  EXPECT_TRUE(contains(text, "* leaf (id " + id + "): waiting on sleep, ")) << text;
  EXPECT_TRUE(contains(text, "s left, created at asyncio_call_graph_test.cpp:")) << text;
  EXPECT_TRUE(contains(text, "  + Awaited by:\n     * middle (id ")) << text;
  EXPECT_TRUE(contains(text, "waiting on task " + id + ",")) << text;
  EXPECT_LT(text.find("middle"), text.find("top")) << text;
  // The tree reads the other way: top, middle under it, leaf under middle.
  EXPECT_TRUE(contains(tree, "top (id ")) << tree;
  EXPECT_TRUE(contains(tree, "\n└── middle (id ")) << tree;
  EXPECT_TRUE(contains(tree, "\n    └── leaf (id ")) << tree;
}

// test_stack_gather: gather's children are awaited by the task that awaits gather; once one is
// done, gather waits for the other only.
TEST_F(CallGraphTest, GatherChildrenAreAwaitedByTheGatheringTask) {
  std::vector<TaskInfo> before, after;
  std::optional<CallGraph> of_b;
  std::uint32_t a_id = 0, b_id = 0;
  auto body = [&]() -> Task<void> {
    auto a = asyncio::create_task(sleeper(10s, 1), "a");
    auto b = asyncio::create_task(sleeper(10s, 2), "b");
    auto gathering = asyncio::create_task(
        asyncio::gather(asyncio::return_exceptions, tasks_of(a, b)), "gathering");
    co_await turns(2);
    before = asyncio::snapshot_tasks();
    of_b = asyncio::capture_call_graph(b);
    a.cancel();
    co_await settle(a);
    co_await turns(1);
    after = asyncio::snapshot_tasks();
    a_id = a.base().id();
    b_id = b.base().id();
    b.cancel();
    co_await settle(b);
    co_await gathering;
  };
  run(body());

  const TaskInfo* g = find(before, "gathering");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->awaiting, "gather");
  EXPECT_EQ(g->awaiting_tasks, (std::vector<std::uint32_t>{a_id, b_id}));
  EXPECT_EQ(g->state_text(),
            "waiting on gather of tasks " + std::to_string(a_id) + ", " + std::to_string(b_id));
  ASSERT_TRUE(of_b.has_value());
  ASSERT_EQ(of_b->awaited_by.size(), 1u);
  EXPECT_EQ(of_b->awaited_by[0].task.name, "gathering");
  const TaskInfo* g2 = find(after, "gathering");
  ASSERT_NE(g2, nullptr);  // return_exceptions: a cancelled child does not end it
  EXPECT_EQ(g2->awaiting_tasks, std::vector<std::uint32_t>{b_id});
}

// test_stack_wait: asyncio.wait with a timeout shows the children and the deadline.
TEST_F(CallGraphTest, WaitShowsItsChildrenAndItsDeadline) {
  std::vector<TaskInfo> tasks;
  std::uint32_t a_id = 0;
  auto body = [&]() -> Task<void> {
    auto a = asyncio::create_task(sleeper(10s, 1), "a");
    auto waiter = asyncio::create_task(
        [](Task<int> t) -> Task<void> { co_await asyncio::wait(tasks_of(t), 5s); }(a), "waiter");
    co_await turns(2);
    tasks = asyncio::snapshot_tasks();
    a_id = a.base().id();
    waiter.cancel();
    a.cancel();
    co_await settle(a);
    co_await settle(waiter);
  };
  run(body());

  const TaskInfo* w = find(tasks, "waiter");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->awaiting, "wait");
  EXPECT_EQ(w->object, 0u);  // a timed wait shows its deadline instead
  EXPECT_EQ(w->awaiting_tasks, std::vector<std::uint32_t>{a_id});
  ASSERT_TRUE(w->deadline_in_seconds.has_value());
  EXPECT_GT(*w->deadline_in_seconds, 0.0);
  EXPECT_LE(*w->deadline_in_seconds, 5.0);
  EXPECT_TRUE(contains(w->state_text(), "waiting on wait of tasks " + std::to_string(a_id) + ", "))
      << w->state_text();
  EXPECT_TRUE(contains(w->state_text(), " s left")) << w->state_text();
}

// test_stack_tgroup: a TaskGroup's parent awaits each child from its creation on; after the body,
// its own wait is the group's end.
TEST_F(CallGraphTest, ATaskGroupsParentAwaitsEachLiveChild) {
  asyncio::Event go_on, never;
  std::vector<TaskInfo> in_body, after_body;
  auto body = [&]() -> Task<void> {
    auto parent = asyncio::create_task(
        [](asyncio::Event* step, asyncio::Event* e) -> Task<void> {
          co_await asyncio::task_group([step, e](asyncio::TaskGroup& tg) -> Task<void> {
            tg.create_task([](asyncio::Event* ev) -> Task<void> { co_await ev->wait(); }(e),
                           "child-1");
            tg.create_task([](asyncio::Event* ev) -> Task<void> { co_await ev->wait(); }(e),
                           "child-2");
            co_await step->wait();
          });
        }(&go_on, &never),
        "parent");
    co_await turns(3);
    in_body = asyncio::snapshot_tasks();
    go_on.set();
    co_await turns(3);
    after_body = asyncio::snapshot_tasks();
    parent.cancel();
    co_await settle(parent);
  };
  run(body());

  const TaskInfo* p = find(in_body, "parent");
  const TaskInfo* c1 = find(in_body, "child-1");
  const TaskInfo* c2 = find(in_body, "child-2");
  ASSERT_TRUE(p && c1 && c2);
  EXPECT_EQ(p->awaiting, "Event");  // its body's wait
  EXPECT_EQ(p->awaiting_tasks, (std::vector<std::uint32_t>{c1->id, c2->id}));
  EXPECT_TRUE(contains(p->state_text(), " (and tasks ")) << p->state_text();
  EXPECT_EQ(c1->awaiting, "Event");
  EXPECT_EQ(c1->object, c2->object);  // the same event
  EXPECT_NE(c1->object, p->object);   // not the parent's
  const TaskInfo* p2 = find(after_body, "parent");
  ASSERT_NE(p2, nullptr);
  EXPECT_EQ(p2->awaiting, "TaskGroup");
  EXPECT_EQ(p2->awaiting_tasks, (std::vector<std::uint32_t>{c1->id, c2->id}));
  const std::string tree = asyncio::format_task_tree(after_body);
  EXPECT_TRUE(contains(tree, "parent (id ")) << tree;
  EXPECT_TRUE(contains(tree, "\n├── child-1 (id ")) << tree;
  EXPECT_TRUE(contains(tree, "\n└── child-2 (id ")) << tree;
}

Task<void> acquire_semaphore(asyncio::Semaphore* s) {
  co_await s->acquire();
  s->release();
}

Task<void> put_into(asyncio::Queue<int>* q) {
  co_await q->put(2);
}

// Each kind of wait names itself; a task created and not yet run is ready; a done task's graph
// is that of a done task; inside a task, the no-argument forms are about the current task.
TEST_F(CallGraphTest, EachKindOfWaitNamesItself) {
  asyncio::Semaphore semaphore(0);
  asyncio::Queue<int> full(1);
  std::promise<void> unblock;
  std::shared_future<void> blocker = unblock.get_future().share();
  std::vector<TaskInfo> tasks;
  std::optional<CallGraph> done_graph, mine;
  std::string mine_text;
  auto body = [&]() -> Task<void> {
    full.put_nowait(1);
    auto s = asyncio::create_task(acquire_semaphore(&semaphore), "on-semaphore");
    auto p = asyncio::create_task(put_into(&full), "on-put");
    auto f = asyncio::create_task(
        [](std::shared_future<void> b) -> Task<void> {
          // Named, not written inside the co_await: GCC 12 destroys a lambda temporary that owns
          // something (here a shared_future) twice when it is part of a co_await expression.
          auto wait_for_it = [b] { b.wait(); };
          co_await asyncio::to_thread(wait_for_it);
        }(blocker),
        "on-thread");
    co_await turns(2);
    auto fresh = asyncio::create_task(sleeper(1ms, 0), "fresh");
    tasks = asyncio::snapshot_tasks();
    unblock.set_value();
    semaphore.release();
    co_await full.get();
    co_await settle(s, p, f);
    co_await fresh;
    done_graph = asyncio::capture_call_graph(s);
    mine = asyncio::capture_call_graph();
    mine_text = asyncio::format_call_graph();
  };
  run(body());

  const TaskInfo* si = find(tasks, "on-semaphore");
  const TaskInfo* pi = find(tasks, "on-put");
  const TaskInfo* fi = find(tasks, "on-thread");
  const TaskInfo* ri = find(tasks, "fresh");
  ASSERT_TRUE(si && pi && fi && ri);
  EXPECT_EQ(si->awaiting, "Semaphore");
  EXPECT_EQ(pi->awaiting, "Queue.put");
  EXPECT_EQ(fi->awaiting, "concurrent future");
  EXPECT_EQ(ri->state, TaskInfo::State::ready);
  EXPECT_EQ(ri->state_text(), "ready");
  ASSERT_TRUE(done_graph.has_value());
  EXPECT_EQ(done_graph->task.state, TaskInfo::State::done);
  EXPECT_TRUE(done_graph->awaited_by.empty());
  ASSERT_TRUE(mine.has_value());
  EXPECT_EQ(mine->task.state, TaskInfo::State::running);
  EXPECT_TRUE(contains(mine_text, ": running, created at ")) << mine_text;
}

TaskInfo waiting_on_tasks(std::uint32_t id, std::vector<std::uint32_t> awaited) {
  TaskInfo t;
  t.id = id;
  t.name = "t";
  t.name += std::to_string(id);  // not "t" + ...: GCC 12 warns of a false overlap there
  t.created_file = "/src/app/main.cpp";
  t.created_line = 10 * id;
  t.state = TaskInfo::State::waiting;
  t.awaiting = awaited.size() == 1 ? "task" : "gather";
  t.awaiting_tasks = std::move(awaited);
  return t;
}

// Two tasks awaiting each other (a deadlock) have no root: the tree still shows them, once each,
// with the cycle marked, and the text for large fan-outs stays one line.
TEST(CallGraphFormat, ACycleIsShownOnceAndMarked) {
  const std::vector<TaskInfo> tasks{waiting_on_tasks(1, {2}), waiting_on_tasks(2, {1}),
                                    waiting_on_tasks(3, {4, 5}), waiting_on_tasks(4, {}),
                                    waiting_on_tasks(5, {})};
  const std::string tree = asyncio::format_task_tree(tasks);
  EXPECT_EQ(tree,
            "t3 (id 3): waiting on gather of tasks 4, 5 [main.cpp:30]\n"
            "├── t4 (id 4): waiting on gather [main.cpp:40]\n"
            "└── t5 (id 5): waiting on gather [main.cpp:50]\n"
            "t1 (id 1): waiting on task 2 [main.cpp:10]\n"
            "└── t2 (id 2): waiting on task 1 [main.cpp:20]\n"
            "    └── t1 (id 1): waiting on task 2 [main.cpp:10] (cycle)\n")
      << tree;
  std::vector<std::uint32_t> many(100);
  for (std::uint32_t i = 0; i < 100; ++i) many[i] = i + 10;
  const std::string text = waiting_on_tasks(9, many).state_text();
  EXPECT_EQ(text, "waiting on gather of tasks 10, 11, 12, 13, 14, 15, 16, 17, ... (100 in all)");
}

}  // namespace
