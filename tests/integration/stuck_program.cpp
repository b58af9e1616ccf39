// A program stuck in a known way, for concur-ps's tests (concur_ps_test.cpp): "holder" holds a
// lock and waits on an empty queue, "blocked" waits on that lock, "napper" sleeps for a minute,
// "gathering" waits in gather for two children that wait on an event, and the main task then
// blocks the loop's thread in a read of stdin, as a callback that blocks would. A thread pool
// ("stuck-pool", 2 workers) has two tasks blocked and three queued. A process pool of one worker
// process runs sleep_in_worker (a minute) with two more queued. An InterpreterLock (fifo) is held
// by thread "gil-holder", blocked, while "gil-waiter-1" and "gil-waiter-2" wait for it (in that
// order). Before it blocks
// it prints its own view of its tasks (snapshot_tasks(), the in-process table) between "table"
// and "ready" lines; a line on stdin unblocks it, and it cancels everything and exits 0.
#include <unistd.h>

#include <chrono>
#include <concur/asyncio.hpp>
#include <concur/gil.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/process_pool.hpp>
#include <concur/thread_pool.hpp>
#include <cstdio>
#include <future>
#include <thread>
#include <vector>

namespace asyncio = concur::asyncio;
using asyncio::Task;
using namespace std::chrono_literals;

int sleep_in_worker(int seconds) {
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return seconds;
}
CONCUR_REGISTER(sleep_in_worker);

// Threads on an interpreter lock: one holds it until `released`, then the others take it in turn
// (each waits until the one before it waits, so that the order is known).
struct LockScene {
  concur::InterpreterLock gil{{.policy = concur::GilPolicy::fifo}};
  std::promise<void> held;
  std::vector<std::thread> threads;
  explicit LockScene(std::shared_future<void> released) {
    threads.emplace_back([this, released] {
      gil.name_current_thread("gil-holder");
      concur::GilGuard hold(gil);
      held.set_value();
      released.wait();
    });
    held.get_future().wait();
    for (int i = 1; i <= 2; ++i) {
      const std::size_t before = gil.stats().waiters;
      threads.emplace_back([this, i] {
        gil.name_current_thread("gil-waiter-" + std::to_string(i));
        concur::GilGuard hold(gil);
      });
      while (gil.stats().waiters == before)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~LockScene() {
    for (std::thread& t : threads) t.join();
  }
};

Task<void> hold_then_get(asyncio::Lock* lock, asyncio::Queue<int>* queue) {
  co_await lock->acquire();
  co_await queue->get();
  lock->release();
}

Task<void> take(asyncio::Lock* lock) {
  co_await lock->acquire();
  lock->release();
}

Task<void> wait_event(asyncio::Event* event) {
  co_await event->wait();
}

Task<void> nap(std::chrono::seconds d) {
  co_await asyncio::sleep(d);
}

Task<void> gather_two(asyncio::Event* event) {
  std::vector<Task<void>> children;
  children.push_back(asyncio::create_task(wait_event(event), "child-a"));
  children.push_back(asyncio::create_task(wait_event(event), "child-b"));
  co_await asyncio::gather(std::move(children));
}

Task<void> main_task() {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  concur::ThreadPoolOptions options;
  options.max_workers = 2;
  options.thread_name_prefix = "stuck-pool";
  concur::ThreadPoolExecutor pool(options);
  std::vector<concur::Future<void>> pool_tasks;
  for (int i = 0; i < 5; ++i) pool_tasks.push_back(pool.submit([released] { released.wait(); }));
  concur::ProcessPoolExecutor processes({.max_workers = 1});
  std::vector<concur::Future<int>> process_tasks;
  for (int i = 0; i < 3; ++i) process_tasks.push_back(processes.submit(sleep_in_worker, 60));
  LockScene lock_scene(released);
  asyncio::Lock lock;
  asyncio::Queue<int> queue;
  asyncio::Event never;
  std::vector<Task<void>> tasks;
  tasks.push_back(asyncio::create_task(hold_then_get(&lock, &queue), "holder"));
  co_await asyncio::sleep(0ns);
  tasks.push_back(asyncio::create_task(take(&lock), "blocked"));
  tasks.push_back(asyncio::create_task(nap(60s), "napper"));
  tasks.push_back(asyncio::create_task(gather_two(&never), "gathering"));
  for (int i = 0; i < 3; ++i) co_await asyncio::sleep(0ns);

  std::printf("table\n%sready\n", asyncio::format_task_table(asyncio::snapshot_tasks()).c_str());
  std::fflush(stdout);
  char c;
  while (read(0, &c, 1) == 1 && c != '\n') {  // the loop's thread blocks here
  }
  release.set_value();
  for (concur::Future<void>& f : pool_tasks) f.result();
  processes.kill_workers();  // the tasks fail or are cancelled: nobody waits a minute
  for (concur::Future<int>& f : process_tasks) {
    try {
      f.result();
    } catch (const std::exception&) {
    }
  }
  for (Task<void>& t : tasks) t.cancel();
  co_await asyncio::wait(std::move(tasks));
}

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  asyncio::run(main_task());
  return 0;
}
