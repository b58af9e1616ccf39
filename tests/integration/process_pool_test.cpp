// Integration tests of concur/process_pool.hpp with real worker processes, under each start
// method: the cases of CPython's test_concurrent_futures (executor, test_process_pool,
// test_shutdown, test_init, test_deadlock) that apply, plus the faults issue 4 names (a worker
// killed mid-task, a task that never returns).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/process_pool.hpp>
#include <numeric>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;
using mp::StartMethod;

int square(int x) {
  return x * x;
}
CONCUR_REGISTER(square);

long pow_of(int base, int exponent) {
  long r = 1;
  for (int i = 0; i < exponent; ++i) r *= base;
  return r;
}
CONCUR_REGISTER(pow_of);

std::pair<int, int> divmod(int a, int b) {
  if (b == 0) throw std::domain_error("integer division or modulo by zero");
  return {a / b, a % b};
}
CONCUR_REGISTER(divmod);

int my_pid() {
  return static_cast<int>(getpid());
}
CONCUR_REGISTER(my_pid);

int sleep_then(int ms, int value) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
CONCUR_REGISTER(sleep_then);

void kill_self() {
  ::kill(getpid(), SIGKILL);
}
CONCUR_REGISTER(kill_self);

void exit_in_task() {
  std::_Exit(3);
}
CONCUR_REGISTER(exit_in_task);

std::string g_init_status = "uninitialized";
void init(std::string status) {
  g_init_status = std::move(status);
}
CONCUR_REGISTER(init);
std::string get_init_status() {
  return g_init_status;
}
CONCUR_REGISTER(get_init_status);
void init_fail() {
  throw std::runtime_error("error in initializer");
}
CONCUR_REGISTER(init_fail);

double sum_slice(mp::SharedArray<double> data, std::size_t begin, std::size_t end) {
  return std::accumulate(data.begin() + begin, data.begin() + end, 0.0);
}
CONCUR_REGISTER(sum_slice);

void nothing() {}
CONCUR_REGISTER(nothing);

std::string worker_start_method() {
  return mp::to_string(mp::get_start_method());
}
CONCUR_REGISTER(worker_start_method);

// Python's _put_wait_put: says it started, then waits (here: for ever).
int mark_started_then_wait(mp::SharedArray<int> started) {
  started[0] = 1;
  std::this_thread::sleep_for(std::chrono::hours(1));
  return 0;
}
CONCUR_REGISTER(mark_started_then_wait);

int not_registered(int x) {
  return x;
}

namespace {

class ProcessPoolTest : public ::testing::TestWithParam<StartMethod> {
 protected:
  concur::ProcessPoolOptions options(std::size_t workers) const {
    return {.max_workers = workers, .start_method = GetParam()};
  }
};

std::string method_name(const ::testing::TestParamInfo<StartMethod>& info) {
  return mp::to_string(info.param);
}

TEST_P(ProcessPoolTest, SubmitReturnsTheResult) {
  concur::ProcessPoolExecutor pool(options(2));
  EXPECT_EQ(pool.submit(square, 7).result(30s), 49);
  EXPECT_EQ(pool.submit(pow_of, 2, 8).result(30s), 256);
  pool.submit(nothing).result(30s);
}

TEST_P(ProcessPoolTest, MapKeepsOrderWithAndWithoutChunks) {
  concur::ProcessPoolExecutor pool(options(2));
  std::vector<std::tuple<int, int>> args;
  for (int i = 0; i < 10; ++i) args.emplace_back(i, i % 4);
  for (std::size_t chunksize : {1u, 3u}) {
    std::vector<long> got;
    for (long v : pool.map(pow_of, args, {.chunksize = chunksize})) got.push_back(v);
    ASSERT_EQ(got.size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], pow_of(i, i % 4));
  }
}

TEST_P(ProcessPoolTest, ATasksExceptionComesBackAsRemoteErrorWithTypeMessageAndPid) {
  concur::ProcessPoolExecutor pool(options(1));
  auto f = pool.submit(divmod, 1, 0);
  try {
    f.result(30s);
    ADD_FAILURE() << "expected RemoteError";
  } catch (const concur::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::domain_error");
    EXPECT_EQ(e.message(), "integer division or modulo by zero");
    EXPECT_GT(e.pid(), 0);
    EXPECT_NE(e.pid(), getpid());
  }
  // The pool is not broken by a task's exception.
  EXPECT_EQ(pool.submit(square, 3).result(30s), 9);
}

TEST_P(ProcessPoolTest, MapRethrowsWhenTheFailingItemIsReached) {
  concur::ProcessPoolExecutor pool(options(2));
  std::vector<std::tuple<int, int>> args{{1, 2}, {1, 3}, {1, 0}, {1, 5}};
  auto results = pool.map(divmod, args);
  auto it = results.begin();
  EXPECT_EQ(*it, std::make_pair(0, 1));
  ++it;
  EXPECT_EQ(*it, std::make_pair(0, 1));
  EXPECT_THROW(++it, concur::RemoteError);
}

TEST_P(ProcessPoolTest, AWorkerKilledMidTaskBreaksThePoolPromptlyAndNothingHangs) {
  concur::ProcessPoolExecutor pool(options(2));
  std::vector<concur::Future<int>> pending;
  for (int i = 0; i < 6; ++i) pending.push_back(pool.submit(sleep_then, 200, i));
  auto killer = pool.submit(kill_self);
  EXPECT_THROW(killer.result(30s), concur::BrokenProcessPool);
  for (auto& f : pending) {
    ASSERT_TRUE(f.wait(30s)) << "a pending future was left hanging";
  }
  EXPECT_THROW_MSG(pool.submit(square, 1), concur::BrokenProcessPool, "terminated abruptly");
}

TEST_P(ProcessPoolTest, ATaskThatExitsTheWorkerBreaksThePoolWithItsExitCode) {
  concur::ProcessPoolExecutor pool(options(1));
  EXPECT_THROW_MSG(pool.submit(exit_in_task).result(30s), concur::BrokenProcessPool, "exit code 3");
}

TEST_P(ProcessPoolTest, ATaskThatNeverReturnsTimesOutAndKillingItsWorkerFreesEverything) {
  concur::ProcessPoolExecutor pool(options(1));
  auto stuck = pool.submit(sleep_then, 600'000, 0);
  EXPECT_THROW(stuck.result(100ms), concur::TimeoutError);
  for (int pid : pool.worker_pids()) ::kill(pid, SIGKILL);
  EXPECT_THROW(stuck.result(30s), concur::BrokenProcessPool);
}

TEST_P(ProcessPoolTest, InitializerRunsInEachWorkerFirst) {
  auto opts = options(2);
  opts.initializer = mp::make_call(init, std::string("initialized"));
  concur::ProcessPoolExecutor pool(opts);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.submit(get_init_status).result(30s), "initialized");
}

TEST_P(ProcessPoolTest, AFailingInitializerBreaksThePool) {
  auto opts = options(1);
  opts.initializer = mp::make_call(init_fail);
  concur::ProcessPoolExecutor pool(opts);
  EXPECT_THROW_MSG(pool.submit(square, 2).result(30s), concur::BrokenProcessPool,
                   "error in initializer");
  EXPECT_THROW(pool.submit(square, 2), concur::BrokenProcessPool);
}

TEST_P(ProcessPoolTest, MaxTasksPerChildReplacesWorkers) {
  auto opts = options(1);
  opts.max_tasks_per_child = 2;
  if (GetParam() == StartMethod::fork) {  // refused when asked for, as Python does
    EXPECT_THROW_MSG(concur::ProcessPoolExecutor{opts}, std::invalid_argument,
                     "leave start_method unset (the pool then uses spawn");
    return;
  }
  concur::ProcessPoolExecutor pool(opts);
  std::set<int> pids;
  for (int i = 0; i < 10; ++i) pids.insert(pool.submit(my_pid).result(30s));
  EXPECT_GE(pids.size(), 5u);
  EXPECT_GE(pool.processes_started(), 5u);
}

TEST_P(ProcessPoolTest, ShutdownWithCancelFuturesCancelsWhatWasNotSent) {
  concur::ProcessPoolExecutor pool(options(1));
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(pool.submit(sleep_then, 20, i));
  pool.shutdown(true, true);
  int cancelled = 0;
  for (auto& f : futures) {
    if (f.cancelled()) {
      ++cancelled;
    } else {
      EXPECT_TRUE(f.done());
    }
  }
  EXPECT_GT(cancelled, 20);
  EXPECT_THROW(pool.submit(square, 1), concur::RuntimeError);
}

TEST_P(ProcessPoolTest, ShutdownWaitsForEveryTask) {  // bpo-12364
  std::vector<concur::Future<int>> futures;
  {
    concur::ProcessPoolExecutor pool(options(2));
    for (int i = 0; i < 20; ++i) futures.push_back(pool.submit(sleep_then, 5, i));
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(futures[static_cast<std::size_t>(i)].result(0s), i);
}

TEST_P(ProcessPoolTest, SharedArrayReachesTheWorkersWithoutACopy) {
  mp::SharedArray<double> data(100'000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = 1.0;
  concur::ProcessPoolExecutor pool(options(2));
  auto a = pool.submit(sum_slice, data, std::size_t{0}, std::size_t{50'000});
  auto b = pool.submit(sum_slice, data, std::size_t{50'000}, std::size_t{100'000});
  EXPECT_EQ(a.result(30s) + b.result(30s), 100'000.0);
}

TEST_P(ProcessPoolTest, WaitAndAsCompletedWorkOnProcessFutures) {
  concur::ProcessPoolExecutor pool(options(2));
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(pool.submit(square, i));
  auto [done, not_done] = concur::wait(futures, 60s);
  EXPECT_EQ(done.size(), 10u);
  int sum = 0;
  for (auto f : concur::as_completed(futures)) sum += f.result();
  EXPECT_EQ(sum, 285);
}

TEST_P(ProcessPoolTest, ManySmallTasksAllComeBackRight) {
  concur::ProcessPoolExecutor pool(options(2));
  const int n = concur::testing::kStressScale == 1 ? 20'000 : 4'000;
  long sum = 0;
  for (int v : pool.map(square, std::views::iota(0, n), {.chunksize = 16})) sum += v;
  long expected = 0;
  for (long i = 0; i < n; ++i) expected += i * i;
  EXPECT_EQ(sum, expected);
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 2000; ++i) futures.push_back(pool.submit(square, i));
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(futures[static_cast<std::size_t>(i)].result(60s), i * i);
}

// test_process_pool.py (3.14): test_force_shutdown_workers, both operations.
TEST_P(ProcessPoolTest, TerminateAndKillWorkersStopARunningTaskAndThePool) {
  if (concur::testing::kUnderThreadSanitizer && GetParam() == StartMethod::fork) {
    GTEST_SKIP() << "ThreadSanitizer's own thread makes concur refuse fork with threads running";
  }
  for (const int sig : {SIGTERM, SIGKILL}) {
    concur::ProcessPoolExecutor pool(options(1));
    mp::SharedArray<int> started(1);
    auto running = pool.submit(mark_started_then_wait, started);
    auto queued = pool.submit(square, 3);
    ASSERT_TRUE(concur::testing::eventually([&] { return started[0] == 1; }));
    if (sig == SIGTERM) {
      pool.terminate_workers();
    } else {
      pool.kill_workers();
    }
    EXPECT_THROW_MSG(running.result(30s), concur::BrokenProcessPool,
                     "terminate_workers() or kill_workers() stopped the pool's workers");
    EXPECT_THROW_MSG(running.result(), concur::BrokenProcessPool, "signal " + std::to_string(sig));
    EXPECT_TRUE(queued.cancelled());  // shutdown(wait=false, cancel_futures=true) first
    EXPECT_TRUE(concur::testing::eventually([&] { return pool.worker_pids().empty(); }));
  }
}

// test_process_pool.py (3.14): test_force_shutdown_workers_stops_pool.
TEST_P(ProcessPoolTest, AfterTerminateWorkersSubmitIsRefused) {
  concur::ProcessPoolExecutor pool(options(1));
  pool.submit(nothing).result(30s);
  pool.terminate_workers();
  // Python raises RuntimeError, or BrokenProcessPool (a RuntimeError there) once the manager has
  // seen the worker die; concur's two share std::runtime_error.
  EXPECT_THROW(pool.submit(nothing), std::runtime_error);
  EXPECT_TRUE(concur::testing::eventually([&] { return pool.worker_pids().empty(); }));
}

// test_process_pool.py (3.14): test_force_shutdown_workers with no workers is only a shutdown.
TEST(ProcessPool, TerminateWorkersWithNoWorkersOnlyShutsDown) {
  concur::ProcessPoolExecutor pool({.max_workers = 2, .start_method = StartMethod::spawn});
  pool.kill_workers();
  EXPECT_EQ(pool.processes_started(), 0u);
  EXPECT_THROW_MSG(pool.submit(nothing), concur::RuntimeError, "after shutdown");
}

// Issue 17: Python 3.11+ uses spawn for max_tasks_per_child when no context is given, even
// where the default start method is fork; concur refused.
TEST(ProcessPool, MaxTasksPerChildUnderAForkDefaultQuietlyUsesSpawn) {
  const StartMethod saved = mp::get_start_method();
  mp::set_start_method(StartMethod::fork);
  {
    concur::ProcessPoolExecutor pool({.max_workers = 1, .max_tasks_per_child = 2});
    for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.submit(worker_start_method).result(30s), "spawn");
    EXPECT_GE(pool.processes_started(), 2u);
  }
  mp::set_start_method(saved);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessPoolTest,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         method_name);

TEST(ProcessPool, AnUnregisteredFunctionIsRefusedAtSubmit) {
  concur::ProcessPoolExecutor pool(1);
  EXPECT_THROW_MSG(pool.submit(not_registered, 1), std::invalid_argument, "CONCUR_REGISTER");
}

TEST(ProcessPool, ForkIsRefusedWhileOtherThreadsRun) {
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    while (!stop) std::this_thread::sleep_for(1ms);
  });
  EXPECT_THROW_MSG(
      concur::ProcessPoolExecutor({.max_workers = 1, .start_method = StartMethod::fork}),
      concur::RuntimeError, "deadlock");
  stop = true;
  busy.join();
}

TEST(ProcessPool, MaxWorkersMustBePositive) {
  EXPECT_THROW_MSG(concur::ProcessPoolExecutor(0), std::invalid_argument,
                   "max_workers must be greater than 0");
}

TEST(ProcessPool, MapTimeoutCancelsTheRest) {
  concur::ProcessPoolExecutor pool(1);
  std::vector<std::tuple<int, int>> args{{0, 0}, {0, 1}, {60'000, 2}, {0, 3}};
  std::vector<int> got;
  try {
    for (int v : pool.map(sleep_then, args, {.timeout = 2s})) got.push_back(v);
    ADD_FAILURE() << "expected TimeoutError";
  } catch (const concur::TimeoutError&) {
  }
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
  for (int pid : pool.worker_pids()) ::kill(pid, SIGKILL);  // do not wait a minute at shutdown
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
