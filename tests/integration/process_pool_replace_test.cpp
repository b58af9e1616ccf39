// ProcessPoolExecutor with on_worker_death = replace (issue 21): a dead worker fails only the
// futures of the tasks it held, with concur::WorkerDied naming the cause, and the pool goes on
// with a new worker. With real worker processes killed, crashed and exiting; the default
// (Python's) still breaks the pool.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <concur/errors.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/process_pool.hpp>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;

int square(int x) {
  return x * x;
}
CONCUR_REGISTER(square);

// Records its pid in slot[0], then sleeps `ms`; returns its pid.
int note_pid_then_sleep(mp::SharedArray<int> slot, int ms) {
  slot[0] = getpid();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return getpid();
}
CONCUR_REGISTER(note_pid_then_sleep);

int exit_with(int code) {
  std::_Exit(code);
}
CONCUR_REGISTER(exit_with);

int crash(int) {
  ::raise(SIGSEGV);
  return 0;
}
CONCUR_REGISTER(crash);

int kill_myself(int) {
  ::kill(getpid(), SIGKILL);
  return 0;
}
CONCUR_REGISTER(kill_myself);

namespace {

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

concur::ProcessPoolOptions replacing(std::size_t workers) {
  concur::ProcessPoolOptions o;
  o.max_workers = workers;
  o.on_worker_death = concur::WorkerDeath::replace;
  return o;
}

TEST(ProcessPoolReplace, AKilledWorkerFailsOnlyItsFutureNamingTheSignalAndThePoolGoesOn) {
  concur::ProcessPoolExecutor pool(replacing(2));
  mp::SharedArray<int> victim(1);
  mp::SharedArray<int> other(1);
  auto doomed = pool.submit(note_pid_then_sleep, victim, 60'000);
  auto survivor = pool.submit(note_pid_then_sleep, other, 300);
  ASSERT_TRUE(concur::testing::eventually([&] { return victim[0] != 0 && other[0] != 0; }));
  ASSERT_NE(victim[0], other[0]) << "the two tasks should run in two workers";
  ::kill(victim[0], SIGKILL);
  try {
    (void)doomed.result(30s);
    ADD_FAILURE() << "the killed worker's future succeeded";
  } catch (const concur::WorkerDied& e) {
    EXPECT_EQ(e.signal(), SIGKILL);
    EXPECT_EQ(e.pid(), victim[0]);
    EXPECT_TRUE(has(e.what(), "killed by signal 9 (SIGKILL)")) << e.what();
    EXPECT_TRUE(has(e.what(), "out-of-memory")) << e.what();
    // We killed it: where the cgroup's count can be read, it must say the OOM killer did not.
    if (e.oom_killed()) {
      EXPECT_FALSE(*e.oom_killed()) << e.what();
    }
    std::printf("%s\n", e.what());
  }
  EXPECT_EQ(survivor.result(30s), other[0]) << "the other worker's task must finish";
  for (int i = 0; i < 20; ++i) EXPECT_EQ(pool.submit(square, i).result(30s), i * i);
  for (int pid : pool.worker_pids()) EXPECT_NE(pid, victim[0]);
}

TEST(ProcessPoolReplace, AnExitInATaskGivesItsExitCode) {
  concur::ProcessPoolExecutor pool(replacing(1));
  try {
    (void)pool.submit(exit_with, 3).result(30s);
    ADD_FAILURE() << "exit() in a task succeeded";
  } catch (const concur::WorkerDied& e) {
    EXPECT_EQ(e.signal(), 0);
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_FALSE(e.oom_killed().has_value());
    EXPECT_TRUE(has(e.what(), "exit code 3")) << e.what();
  }
  EXPECT_EQ(pool.submit(square, 7).result(30s), 49);
}

TEST(ProcessPoolReplace, ACrashGivesItsSignal) {
  concur::ProcessPoolExecutor pool(replacing(1));
  try {
    (void)pool.submit(crash, 0).result(30s);
    ADD_FAILURE() << "a segfaulting task succeeded";
  } catch (const concur::WorkerDied& e) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    // The sanitizer catches the SIGSEGV in the worker and reports it; then TSan exits with its
    // own code, and ASan with abort_on_error=1 (the asan preset's setting) raises SIGABRT.
    EXPECT_TRUE(e.exit_code() != 0 || e.signal() == SIGABRT) << e.what();
#else
    EXPECT_EQ(e.signal(), SIGSEGV);
    EXPECT_TRUE(has(e.what(), "SIGSEGV")) << e.what();
#endif
  }
  EXPECT_EQ(pool.submit(square, 8).result(30s), 64);
}

TEST(ProcessPoolReplace, ManyDeathsInARowFailOnlyTheirBatchesAndNeverBreakThePool) {
  std::set<int> workers_seen;
  {
    concur::ProcessPoolExecutor pool(replacing(2));
    std::vector<concur::Future<int>> killers;
    std::vector<concur::Future<int>> normal;
    for (int i = 0; i < 20; ++i) {
      killers.push_back(pool.submit(kill_myself, i));
      for (int k = 0; k < 5; ++k) normal.push_back(pool.submit(square, 10 * i + k));
      for (int pid : pool.worker_pids()) workers_seen.insert(pid);
    }
    for (auto& f : killers) EXPECT_THROW((void)f.result(60s), concur::WorkerDied);
    int values = 0;
    for (std::size_t j = 0; j < normal.size(); ++j) {
      // A task batched into a dying worker fails with it; every other one returns its value.
      try {
        const int x = static_cast<int>(10 * (j / 5) + j % 5);
        EXPECT_EQ(normal[j].result(60s), x * x);
        ++values;
      } catch (const concur::WorkerDied&) {
      }
      for (int pid : pool.worker_pids()) workers_seen.insert(pid);
    }
    EXPECT_GT(values, 0);
    EXPECT_EQ(pool.submit(square, 12).result(30s), 144) << "the pool must still work";
    for (int pid : pool.worker_pids()) workers_seen.insert(pid);
    // Workers died (a killer fails the tasks batched behind it in its worker too, so there were
    // fewer deaths than killers) and new ones took over: more started than are alive now.
    EXPECT_GT(pool.processes_started(), pool.worker_pids().size());
    pool.shutdown(true);
  }
  // No worker, dead or replacement, outlives the pool.
  for (int pid : workers_seen) {
    EXPECT_TRUE(concur::testing::eventually([pid] { return ::kill(pid, 0) != 0; }))
        << "worker " << pid << " is still running";
  }
}

TEST(ProcessPoolReplace, ShutdownAfterADeathWaitsForTheRest) {
  concur::ProcessPoolExecutor pool(replacing(2));
  auto dead = pool.submit(kill_myself, 0);
  std::vector<concur::Future<int>> rest;
  for (int i = 0; i < 10; ++i) rest.push_back(pool.submit(square, i));
  EXPECT_THROW((void)dead.result(30s), concur::WorkerDied);
  pool.shutdown(true);
  for (auto& f : rest) EXPECT_TRUE(f.done());
}

TEST(ProcessPoolReplace, TheDefaultStillBreaksThePoolAsPython) {
  concur::ProcessPoolExecutor pool(2);
  auto dead = pool.submit(kill_myself, 0);
  try {
    (void)dead.result(30s);
    ADD_FAILURE() << "the killed worker's future succeeded";
  } catch (const concur::WorkerDied&) {
    ADD_FAILURE() << "the default pool must not replace workers";
  } catch (const concur::BrokenProcessPool&) {
  }
  EXPECT_THROW((void)pool.submit(square, 2), concur::BrokenProcessPool);
}

TEST(ProcessPoolReplace, TheForkStartMethodIsRefusedWithReplace) {
  auto o = replacing(1);
  o.start_method = mp::StartMethod::fork;
  EXPECT_THROW_MSG(concur::ProcessPoolExecutor pool(o), std::invalid_argument,
                   "incompatible with the fork start method");
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
