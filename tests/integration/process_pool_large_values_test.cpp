// ProcessPoolExecutor's large arguments and results (issue 22): at or above
// shared_memory_threshold they travel through a shared-memory ring of each worker instead of its
// socket. Checked with real workers: the values come back exact on both paths and around the
// threshold, the ring is really used (a memfd open in the worker) and really not used when turned
// off, a map chunk mixes both kinds, many values queued at once all come back, a worker that dies
// holding a large argument loses nothing else, and nothing is left behind (descriptors, /dev/shm).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <concur/errors.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/process_pool.hpp>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

// The bytes reversed, so that a result is as large as its argument and depends on all of it.
Bytes reversed(Bytes bytes) {
  std::reverse(bytes.begin(), bytes.end());
  return bytes;
}
CONCUR_REGISTER(reversed);

// How many descriptors of this process are shared-memory rings of a pool.
int rings_open() {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && target.find("memfd:concur-pool-ring") != std::string::npos) ++n;
  }
  return n;
}
CONCUR_REGISTER(rings_open);

// Kills its own worker once it holds the argument.
int die_holding(Bytes) {
  ::kill(getpid(), SIGKILL);
  return 0;
}
CONCUR_REGISTER(die_holding);

namespace {

Bytes pattern(std::size_t n, unsigned seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 131 + seed) >> 3);
  return b;
}

Bytes reverse_of(Bytes b) {
  std::reverse(b.begin(), b.end());
  return b;
}

// This program's segments in /dev/shm (concur names them "concur-<pid>-..."): other tests running
// beside this one create and remove their own, which must not count.
std::set<std::string> dev_shm() {
  std::set<std::string> names;
  const std::string mine = "concur-" + std::to_string(getpid()) + "-";
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(mine, 0) == 0) names.insert(name);
  }
  return names;
}

concur::ProcessPoolOptions options(std::size_t threshold, std::size_t workers = 2) {
  concur::ProcessPoolOptions o;
  o.max_workers = workers;
  o.shared_memory_threshold = threshold;
  return o;
}

constexpr std::size_t kThreshold = 64 * 1024;

TEST(ProcessPoolLargeValues, ValuesAroundTheThresholdComeBackExactThroughTheRing) {
  const int rings_before = rings_open();
  {
    concur::ProcessPoolExecutor pool(options(kThreshold, 1));
    // The encoding of a vector adds its length (8 bytes): sizes on both sides of the threshold.
    for (std::size_t n : {std::size_t{10}, kThreshold - 9, kThreshold - 8, kThreshold,
                          std::size_t{1} << 20, std::size_t{9} << 20}) {
      const Bytes in = pattern(n, static_cast<unsigned>(n));
      EXPECT_EQ(pool.submit(reversed, in).result(60s), reverse_of(in)) << n << " bytes";
    }
    // The worker received the ring of arguments, and the pool holds both rings.
    EXPECT_EQ(pool.submit(rings_open).result(60s), 2) << "the worker should map two rings";
    EXPECT_EQ(rings_open() - rings_before, 2) << "the pool should hold both rings";
  }
  EXPECT_EQ(rings_open(), rings_before) << "a pool that is gone must close its rings";
}

TEST(ProcessPoolLargeValues, WithTheThresholdAtZeroEverythingGoesThroughTheSocket) {
  const int rings_before = rings_open();
  concur::ProcessPoolExecutor pool(options(0, 1));
  const Bytes in = pattern(std::size_t{2} << 20, 3);
  EXPECT_EQ(pool.submit(reversed, in).result(60s), reverse_of(in));
  EXPECT_EQ(pool.submit(rings_open).result(60s), 0);
  EXPECT_EQ(rings_open(), rings_before);
}

TEST(ProcessPoolLargeValues, AMapChunkMixesLargeAndSmallValuesInOrder) {
  concur::ProcessPoolExecutor pool(options(kThreshold));
  std::vector<Bytes> inputs;
  for (unsigned i = 0; i < 24; ++i) {
    inputs.push_back(pattern(i % 3 == 0 ? 300'000 + i : 100 + i, i));
  }
  std::size_t i = 0;
  for (const Bytes& out : pool.map(reversed, inputs, {.chunksize = 5})) {
    ASSERT_LT(i, inputs.size());
    EXPECT_EQ(out, reverse_of(inputs[i])) << "input " << i;
    ++i;
  }
  EXPECT_EQ(i, inputs.size());
}

TEST(ProcessPoolLargeValues, ManyLargeValuesQueuedAtOnceAllComeBackWhole) {
  concur::ProcessPoolExecutor pool(options(kThreshold));
  // 200 x 1 MiB submitted at once (the ring's wrapping itself is tests/unit/shared_ring_test).
  constexpr unsigned kTasks = 200;
  std::vector<Bytes> distinct;
  for (unsigned j = 0; j < 4; ++j) distinct.push_back(pattern((std::size_t{1} << 20) + j, j));
  std::vector<concur::Future<Bytes>> futures;
  for (unsigned i = 0; i < kTasks; ++i) futures.push_back(pool.submit(reversed, distinct[i % 4]));
  for (unsigned i = 0; i < kTasks; ++i) {
    ASSERT_EQ(futures[i].result(120s), reverse_of(distinct[i % 4])) << "task " << i;
  }
}

TEST(ProcessPoolLargeValues, AWorkerThatDiesHoldingALargeArgumentLosesNothingElse) {
  const auto shm_before = dev_shm();
  concur::ProcessPoolOptions o = options(kThreshold);
  o.on_worker_death = concur::WorkerDeath::replace;
  concur::ProcessPoolExecutor pool(o);
  const Bytes big = pattern(std::size_t{3} << 20, 7);
  EXPECT_EQ(pool.submit(reversed, big).result(60s), reverse_of(big));
  EXPECT_THROW((void)pool.submit(die_holding, big).result(60s), concur::WorkerDied);
  // The replacement gets a ring of its own; values keep coming back whole.
  for (unsigned i = 0; i < 6; ++i) {
    const Bytes in = pattern((std::size_t{1} << 20) + i, i);
    EXPECT_EQ(pool.submit(reversed, in).result(60s), reverse_of(in)) << "after the death, " << i;
  }
  pool.shutdown();
  EXPECT_EQ(dev_shm(), shm_before) << "the rings have no name: /dev/shm must be as it was";
}

TEST(ProcessPoolLargeValues, ABrokenPoolWithLargeValuesInFlightHangsNothing) {
  concur::ProcessPoolExecutor pool(options(kThreshold));  // Python's default: a death breaks it
  const Bytes big = pattern(std::size_t{2} << 20, 1);
  std::vector<concur::Future<Bytes>> queued;
  // The others first: once the pool is broken, submit() itself refuses.
  for (unsigned i = 0; i < 10; ++i) queued.push_back(pool.submit(reversed, big));
  auto doomed = pool.submit(die_holding, big);
  EXPECT_THROW((void)doomed.result(60s), concur::BrokenProcessPool);
  for (auto& f : queued) {
    try {
      EXPECT_EQ(f.result(60s), reverse_of(big));  // finished before the pool broke
    } catch (const concur::BrokenProcessPool&) {
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  mp::main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
