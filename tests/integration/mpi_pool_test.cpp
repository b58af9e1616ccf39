// Integration tests of concur/mpi_pool.hpp, run by CTest under `mpirun -n 3` (rank 0 runs the
// tests, ranks 1 and 2 serve as workers): the cases of CPython's test_concurrent_futures
// (test_process_pool / executor.py, test_shutdown.py, test_wait.py, test_as_completed.py) and of
// mpi4py's test/test_futures.py that apply, plus what issue 20 names (64 MiB arguments, 100,000
// tiny tasks, the network transport, a worker rank killed with SIGKILL).
//
// MpiPoolFault.* kills a rank, so it runs in jobs of its own: under `mpirun --enable-recovery`
// (the pool reports BrokenMpiPool) and under a plain mpirun (Open MPI ends the job; CTest checks
// mpirun's report instead). See tests/integration/CMakeLists.txt.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <concur/mpi_pool.hpp>
#include <concur/multiprocessing/byte_buffer.hpp>
#include <cstdint>
#include <numeric>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using concur::testing::kStressScale;

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

int worker_rank() {
  return concur::mpi::rank();
}
CONCUR_REGISTER(worker_rank);

int sleep_then(int ms, int value) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
CONCUR_REGISTER(sleep_then);

int rank_after(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return concur::mpi::rank();
}
CONCUR_REGISTER(rank_after);

void do_nothing() {}
CONCUR_REGISTER(do_nothing);

std::uint64_t checksum(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}
CONCUR_REGISTER(checksum);

std::vector<std::uint8_t> reversed(std::vector<std::uint8_t> bytes) {
  std::reverse(bytes.begin(), bytes.end());
  return bytes;
}
CONCUR_REGISTER(reversed);

// What a task learns about a ByteBuffer argument: its checksum, and whether it lies at the start
// of a page (a worker's receive buffer: it came out of band) or not (decoded inline into new[]).
struct BufferSeen {
  std::uint64_t checksum = 0;
  bool page_aligned = false;
  std::uintptr_t address = 0;
  template <class Archive>
  void serialize(Archive& a) {
    a(checksum, page_aligned, address);
  }
};
BufferSeen look_at(concur::multiprocessing::ByteBuffer bytes) {
  const auto view = bytes.as<std::uint8_t>();
  const auto address = reinterpret_cast<std::uintptr_t>(bytes.data());
  return {checksum(std::vector<std::uint8_t>(view.begin(), view.end())), address % 4096 == 0,
          address};
}
CONCUR_REGISTER(look_at);

concur::multiprocessing::ByteBuffer echo_buffer(concur::multiprocessing::ByteBuffer bytes) {
  return bytes;
}
CONCUR_REGISTER(echo_buffer);

// What the function itself encodes is encoded inline even while its transport sends buffers out of
// band (it could be going to a Connection or another pool, which would not carry them).
std::uint64_t encoded_size_inside(concur::multiprocessing::ByteBuffer bytes) {
  return concur::multiprocessing::serialize(bytes).size();
}
CONCUR_REGISTER(encoded_size_inside);

void kill_self() {
  ::kill(getpid(), SIGKILL);
}
CONCUR_REGISTER(kill_self);

int not_registered(int x) {
  return x;
}

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 131) ^ (i >> 9));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Results and order

// executor.py ExecutorTest.test_submit, test_submit_keyword.
TEST(MpiPool, SubmitRunsTheFunctionOnAWorkerRank) {
  concur::MpiPoolExecutor pool;
  EXPECT_EQ(pool.max_workers(), static_cast<std::size_t>(concur::mpi::size() - 1));
  EXPECT_EQ(pool.submit(square, 7).result(), 49);
  EXPECT_EQ(pool.submit(pow_of, 2, 10).result(), 1024);
  const int rank = pool.submit(worker_rank).result();
  EXPECT_GE(rank, 1);
  EXPECT_LT(rank, concur::mpi::size());
  pool.submit(do_nothing).result();
}

// Every worker rank takes a share of tasks that last long enough to be spread (the window adapts
// to one task in flight per rank for them).
TEST(MpiPool, LongTasksSpreadOverEveryWorkerRank) {
  concur::MpiPoolExecutor pool;
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 6 * static_cast<int>(pool.max_workers()); ++i) {
    futures.push_back(pool.submit(rank_after, 30));
  }
  std::set<int> ranks;
  for (auto& f : futures) ranks.insert(f.result());
  EXPECT_EQ(ranks.size(), pool.max_workers());
  EXPECT_EQ(ranks.count(0), 0u);
}

// executor.py ExecutorTest.test_map: results in input order.
TEST(MpiPool, MapYieldsResultsInInputOrder) {
  concur::MpiPoolExecutor pool;
  std::vector<int> inputs(1000);
  std::iota(inputs.begin(), inputs.end(), 0);
  std::vector<int> out;
  for (int v : pool.map(square, inputs)) out.push_back(v);
  ASSERT_EQ(out.size(), inputs.size());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], i * i);
}

// test_process_pool.py test_map_chunksize, and 3.14's buffersize (a window of chunks ahead) over
// an input range with no size.
TEST(MpiPool, MapWithChunksAndAWindowKeepsOrder) {
  concur::MpiPoolExecutor pool;
  auto evens = std::views::iota(0, 2000) | std::views::filter([](int i) { return i % 2 == 0; });
  std::vector<int> out;
  for (int v : pool.map(square, evens, {.chunksize = 7, .buffersize = 3})) out.push_back(v);
  ASSERT_EQ(out.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], 4 * i * i);
  std::vector<std::tuple<int, int>> pairs{{2, 3}, {3, 2}, {10, 0}};
  std::vector<long> powers;
  for (long v : pool.map(pow_of, pairs, {.chunksize = 2})) powers.push_back(v);
  EXPECT_EQ(powers, (std::vector<long>{8, 9, 1}));
  EXPECT_THROW((void)pool.map(square, std::vector<int>{1}, {.chunksize = 0}),
               std::invalid_argument);
}

// test_wait.py and test_as_completed.py over this pool's futures.
TEST(MpiPool, WaitAndAsCompletedWorkOnItsFutures) {
  concur::MpiPoolExecutor pool;
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(pool.submit(square, i));
  auto [done, not_done] = concur::wait(futures, 60s);
  EXPECT_EQ(done.size(), 50u);
  EXPECT_TRUE(not_done.empty());
  int sum = 0;
  for (auto f : concur::as_completed(futures, 60s)) sum += f.result();
  EXPECT_EQ(sum, 40425);  // sum of i*i for i < 50
}

// ---------------------------------------------------------------------------------------------
// Exceptions

// test_process_pool.py test_traceback (the remote exception's type and message arrive).
TEST(MpiPool, ATaskExceptionCrossesRanksAsRemoteError) {
  concur::MpiPoolExecutor pool;
  auto f = pool.submit(divmod, 1, 0);
  try {
    (void)f.result();
    ADD_FAILURE() << "expected RemoteError";
  } catch (const concur::RemoteError& e) {
    EXPECT_NE(e.type_name().find("domain_error"), std::string::npos) << e.type_name();
    EXPECT_EQ(e.message(), "integer division or modulo by zero");
    EXPECT_NE(e.pid(), getpid());
  }
  // A failing input fails its chunk, and map's iteration stops there (as in Python).
  std::vector<std::tuple<int, int>> pairs{{7, 2}, {1, 0}, {9, 3}};
  std::vector<std::pair<int, int>> got;
  EXPECT_THROW(
      {
        for (auto v : pool.map(divmod, pairs)) got.push_back(v);
      },
      concur::RemoteError);
  EXPECT_EQ(got, (std::vector<std::pair<int, int>>{{3, 1}}));
  EXPECT_EQ(pool.submit(square, 3).result(), 9);  // the pool is not broken by it
}

TEST(MpiPool, AnUnregisteredFunctionIsRefusedAtSubmit) {
  concur::MpiPoolExecutor pool;
  EXPECT_THROW_MSG((void)pool.submit(not_registered, 1), std::invalid_argument,
                   "CONCUR_REGISTER(function_name)");
}

TEST(MpiPool, OnlyOnePoolAtATimeOwnsTheWorkerRanks) {
  concur::MpiPoolExecutor pool;
  EXPECT_THROW_MSG(concur::MpiPoolExecutor second, concur::RuntimeError,
                   "another MpiPoolExecutor exists");
  pool.shutdown();
}

// ---------------------------------------------------------------------------------------------
// Large and many

// Issue 20: a 64 MiB argument, and a 64 MiB result, arrive intact.
TEST(MpiPool, SixtyFourMiBArgumentsAndResultsArriveIntact) {
  concur::MpiPoolExecutor pool;
  const std::vector<std::uint8_t> big = pattern(64u << 20);
  EXPECT_EQ(pool.submit(checksum, big).result(), checksum(big));
  std::vector<std::uint8_t> back = pool.submit(reversed, big).result();
  ASSERT_EQ(back.size(), big.size());
  EXPECT_TRUE(std::equal(back.begin(), back.end(), big.rbegin()));
  // Large and small interleaved: each future gets its own answer.
  auto a = pool.submit(checksum, pattern(100'000));
  auto b = pool.submit(square, 12);
  auto c = pool.submit(checksum, pattern(3));
  EXPECT_EQ(a.result(), checksum(pattern(100'000)));
  EXPECT_EQ(b.result(), 144);
  EXPECT_EQ(c.result(), checksum(pattern(3)));
}

// A ByteBuffer argument of 64 KiB or more is sent out of band from the caller's memory and
// received into a reused page-aligned buffer; a smaller one inline. Both arrive intact, in a
// submit and in a map chunk, beside ordinary arguments.
TEST(MpiPool, ByteBufferArgumentsGoOutOfBandAndArriveIntact) {
  concur::MpiPoolExecutor pool(1);  // one worker rank: its receive buffer is reused
  using concur::multiprocessing::ByteBuffer;
  const auto big = std::make_shared<const std::vector<std::uint8_t>>(pattern(64u << 20));
  const BufferSeen first = pool.submit(look_at, ByteBuffer(big)).result();
  EXPECT_EQ(first.checksum, checksum(*big));
  EXPECT_TRUE(first.page_aligned);
  const BufferSeen second = pool.submit(look_at, ByteBuffer(big)).result();
  EXPECT_EQ(second.address, first.address) << "the worker's receive buffer was not reused";
  const BufferSeen small = pool.submit(look_at, ByteBuffer(pattern(1000))).result();
  EXPECT_EQ(small.checksum, checksum(pattern(1000)));
  EXPECT_FALSE(small.page_aligned);
  EXPECT_EQ(pool.submit(look_at, ByteBuffer()).result().checksum, checksum({}));
  // A chunk of three, two out of band: each item decodes its own buffer.
  std::vector<ByteBuffer> inputs{ByteBuffer(pattern(200'000)), ByteBuffer(pattern(10)),
                                 ByteBuffer(pattern(300'000))};
  std::vector<std::uint64_t> sums;
  for (const BufferSeen& seen : pool.map(look_at, inputs, {.chunksize = 3})) {
    sums.push_back(seen.checksum);
  }
  EXPECT_EQ(sums, (std::vector<std::uint64_t>{checksum(pattern(200'000)), checksum(pattern(10)),
                                              checksum(pattern(300'000))}));
  EXPECT_GT(pool.submit(encoded_size_inside, ByteBuffer(big)).result(), big->size());
}

// A ByteBuffer result of 64 KiB or more comes back out of band too (into rank 0's reused,
// page-aligned buffers); a small one inline; both with the same bytes, from submit and map.
TEST(MpiPool, ByteBufferResultsComeBackOutOfBand) {
  concur::MpiPoolExecutor pool;
  using concur::multiprocessing::ByteBuffer;
  const auto big = std::make_shared<const std::vector<std::uint8_t>>(pattern(64u << 20));
  for (int round = 0; round < 2; ++round) {
    const ByteBuffer back = pool.submit(echo_buffer, ByteBuffer(big)).result();
    ASSERT_EQ(back.size(), big->size());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(back.data()) % 4096, 0u);
    EXPECT_TRUE(std::equal(big->begin(), big->end(), back.as<std::uint8_t>().begin()));
  }
  std::vector<ByteBuffer> inputs{ByteBuffer(pattern(100'000)), ByteBuffer(pattern(5)), ByteBuffer(),
                                 ByteBuffer(pattern(70'000))};
  std::size_t i = 0;
  for (const ByteBuffer& out : pool.map(echo_buffer, inputs, {.chunksize = 2})) {
    const auto expected = inputs[i++].as<std::uint8_t>();
    const auto got = out.as<std::uint8_t>();
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), got.begin(), got.end())) << i;
  }
  EXPECT_EQ(i, inputs.size());
  // Beside tiny tasks in the same batches: every future gets its own answer.
  std::vector<concur::Future<int>> tiny;
  for (int k = 0; k < 50; ++k) tiny.push_back(pool.submit(square, k));
  auto large = pool.submit(echo_buffer, ByteBuffer(pattern(200'000)));
  for (int k = 0; k < 50; ++k) EXPECT_EQ(tiny[static_cast<std::size_t>(k)].result(), k * k);
  EXPECT_EQ(large.result().size(), 200'000u);
}

// Issue 20: 100,000 tiny tasks (batched many to a message) all complete with the right values.
TEST(MpiPool, OneHundredThousandTinyTasksComplete) {
  concur::MpiPoolExecutor pool;
  const int n = 100'000 / kStressScale;
  std::vector<concur::Future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) futures.push_back(pool.submit(square, i % 1000));
  long long sum = 0;
  for (auto& f : futures) sum += f.result();
  long long expected = 0;
  for (int i = 0; i < n; ++i) expected += static_cast<long long>(i % 1000) * (i % 1000);
  EXPECT_EQ(sum, expected);
  std::vector<int> inputs(static_cast<std::size_t>(n), 3);
  long long mapped = 0;
  for (int v : pool.map(square, inputs, {.chunksize = 256})) mapped += v;
  EXPECT_EQ(mapped, 9LL * n);
}

// ---------------------------------------------------------------------------------------------
// Shutdown

// test_shutdown.py test_cancel_futures: queued tasks are cancelled, running ones finish.
TEST(MpiPool, ShutdownWithCancelFuturesCancelsWhatHasNotStarted) {
  concur::MpiPoolExecutor pool;
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 60; ++i) futures.push_back(pool.submit(sleep_then, 50, i));
  ASSERT_TRUE(
      concur::testing::eventually([&] { return futures[0].running() || futures[0].done(); }));
  pool.shutdown(true, true);
  int cancelled = 0;
  int finished = 0;
  for (std::size_t i = 0; i < futures.size(); ++i) {
    ASSERT_TRUE(futures[i].done());
    if (futures[i].cancelled()) {
      ++cancelled;
    } else {
      EXPECT_EQ(futures[i].result(), static_cast<int>(i));
      ++finished;
    }
  }
  EXPECT_GT(cancelled, 20);
  EXPECT_GT(finished, 0);
  EXPECT_THROW_MSG((void)pool.submit(square, 1), concur::RuntimeError, "after shutdown");
}

// test_shutdown.py test_run_after_shutdown / test_hang_issue12364: shutdown(wait) waits for all.
TEST(MpiPool, ShutdownWaitsForEveryTask) {
  concur::MpiPoolExecutor pool;
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(pool.submit(sleep_then, 10, i));
  pool.shutdown(true);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(futures[static_cast<std::size_t>(i)].result(0s), i);
}

// A pool made after another is served by the same ranks (the workers outlive pools).
TEST(MpiPool, APoolAfterAnotherUsesTheSameRanks) {
  for (int round = 0; round < 3; ++round) {
    concur::MpiPoolExecutor pool;
    EXPECT_EQ(pool.submit(square, round).result(), round * round);
  }
}

// ---------------------------------------------------------------------------------------------
// Faults (run under `mpirun --enable-recovery`; under a plain mpirun, Open MPI ends the job)

// test_process_pool.py test_killed_child, for a rank: every pending future fails with
// BrokenMpiPool (a BrokenExecutor) within a bounded time, later submits throw it, and a new
// pool runs on the ranks that are left.
TEST(MpiPoolFault, AWorkerRankKilledWithSigkillBreaksThePoolWithoutAHang) {
  std::vector<concur::Future<int>> slow;
  concur::Future<void> killer;
  {
    concur::MpiPoolExecutor pool({.heartbeat_timeout = 2s});
    for (int i = 0; i < 6; ++i) slow.push_back(pool.submit(sleep_then, 300, i));
    killer = pool.submit(kill_self);
    for (int i = 0; i < 6; ++i) slow.push_back(pool.submit(sleep_then, 300, i));
    EXPECT_TRUE(killer.wait(60s)) << "no answer within 60 s: the pool hangs";
    EXPECT_THROW(killer.result(), concur::BrokenMpiPool);
    auto [done, not_done] = concur::wait(slow, 60s);
    EXPECT_TRUE(not_done.empty());
    int broken = 0;
    for (auto& f : slow) {
      try {
        (void)f.result();
      } catch (const concur::BrokenExecutor& e) {
        EXPECT_NE(std::string(e.what()).find("sent nothing for"), std::string::npos) << e.what();
        ++broken;
      }
    }
    EXPECT_GT(broken, 0);
    EXPECT_THROW((void)pool.submit(square, 2), concur::BrokenMpiPool);
  }
  concur::MpiPoolExecutor after;
  EXPECT_EQ(after.max_workers(), static_cast<std::size_t>(concur::mpi::size() - 2));
  EXPECT_EQ(after.submit(square, 5).result(), 25);
}

// ---------------------------------------------------------------------------------------------
// Mode (b): a program started alone spawns its workers (CTest runs these without mpirun)

// mpi4py's test_futures.py (the spawning MPIPoolExecutor): results come back from 2 spawned
// workers, and a pool after it spawns its own again.
TEST(MpiPoolSpawn, APoolStartedAloneSpawnsItsWorkers) {
  ASSERT_EQ(concur::mpi::size(), 1) << "run this test without mpirun";
  for (int round = 0; round < 2; ++round) {
    concur::MpiPoolExecutor pool(2);
    EXPECT_EQ(pool.max_workers(), 2u);
    std::set<int> ranks;
    std::vector<concur::Future<int>> futures;
    for (int i = 0; i < 8; ++i) futures.push_back(pool.submit(rank_after, 30));
    for (auto& f : futures) ranks.insert(f.result());
    EXPECT_EQ(ranks, (std::set<int>{0, 1}));  // ranks of the spawned group
    EXPECT_EQ(pool.submit(square, 9).result(), 81);
    std::vector<int> inputs(500);
    std::iota(inputs.begin(), inputs.end(), 0);
    long sum = 0;
    for (int v : pool.map(square, inputs, {.chunksize = 16})) sum += v;
    EXPECT_EQ(sum, 41541750L);  // sum of i*i for i < 500
    EXPECT_THROW((void)pool.submit(divmod, 1, 0).result(), concur::RemoteError);
  }
}

int main(int argc, char** argv) {
  concur::mpi::main_guard(argc, argv);  // ranks 1.. serve the pools here and exit
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
