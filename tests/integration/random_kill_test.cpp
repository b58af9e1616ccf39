// Kills at random points (issue 19): pool workers and children of Process killed with SIGKILL
// after a random delay, hundreds of times, so that the kill lands while a task is decoded, run or
// answered, while a large argument is received, in the middle of a Queue.put or while a Lock is
// held. Each round checks what concur promises after any such kill:
//   - the pool: every future ends, with its right value or BrokenProcessPool, never a hang or a
//     wrong value, and the pool's workers are gone after shutdown;
//   - Queue: no item whose put() returned is lost, none is duplicated or corrupt, the queue stays
//     usable;
//   - Lock: the next acquire() succeeds; the data it guards is consistent unless
//     previous_owner_died() says the holder died inside.
// Each test runs up to its number of rounds within a time budget (sanitizers make rounds slower),
// and needs enough delivered kills to mean something.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <dirent.h>
#include <chrono>
#include <concur/errors.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/queue.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/multiprocessing/synchronize.hpp>
#include <concur/process_pool.hpp>
#include <cstdint>
#include <fstream>
#include <random>
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

std::uint64_t checksum(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t sum = 0;
  for (std::uint8_t b : bytes) sum += b;
  return sum;
}
CONCUR_REGISTER(checksum);

int nap_then(int micros, int value) {
  std::this_thread::sleep_for(std::chrono::microseconds(micros));
  return value;
}
CONCUR_REGISTER(nap_then);

// Puts 0, 1, 2, ... and records in returned[0] the last value whose put() returned.
void put_forever(mp::Queue<std::string> queue, mp::SharedArray<long> returned) {
  for (long i = 0;; ++i) {
    queue.put(std::to_string(i) + ":" + std::string(static_cast<std::size_t>(i % 97), 'x'));
    returned[0] = i;
  }
}
CONCUR_REGISTER(put_forever);

// Keeps pair[0] == pair[1] outside the lock; inside, they differ for a moment.
void bump_pair_forever(mp::Lock lock, mp::SharedArray<long> pair) {
  for (;;) {
    lock.acquire();
    pair[0] += 1;
    std::this_thread::yield();  // a window in which the two counters differ
    pair[1] += 1;
    lock.release();
  }
}
CONCUR_REGISTER(bump_pair_forever);

namespace {

// The budget of every test here: rounds stop at whichever comes first.
constexpr auto kBudget = 40s;
constexpr int kMinKills = 20;  // fewer delivered kills than this and the test proves too little

// This process's live children (from /proc/self/task/*/children).
std::set<pid_t> children() {
  std::set<pid_t> out;
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return out;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + entry->d_name + "/children");
    for (pid_t pid; in >> pid;) out.insert(pid);
  }
  closedir(tasks);
  return out;
}

class RandomKill : public ::testing::Test {
 protected:
  std::mt19937 rng{std::random_device{}()};
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  std::chrono::microseconds random_delay(int max_us) {
    return std::chrono::microseconds(uniform(0, max_us));
  }
};

TEST_F(RandomKill, APoolWorkerKilledAnywhereFailsItsFuturesAsBrokenAndNothingHangs) {
  const int rounds = 400 / concur::testing::kStressScale;
  {
    concur::ProcessPoolExecutor warm(1);  // the forkserver, a lasting child, exists from here on
    EXPECT_EQ(warm.submit(square, 2).result(60s), 4);
  }
  const std::set<pid_t> before = children();
  const auto start = std::chrono::steady_clock::now();
  int done_rounds = 0;
  int kills = 0;
  int broken = 0;
  for (; done_rounds < rounds && std::chrono::steady_clock::now() - start < kBudget;
       ++done_rounds) {
    concur::ProcessPoolExecutor pool(2);
    // A large argument in every round (64 MiB in one of 20), tiny tasks and short naps.
    const std::size_t big_size = done_rounds % 20 == 0 ? (64u << 20) : (1u << 20);
    const std::vector<std::uint8_t> big(big_size, 3);
    std::vector<concur::Future<int>> small;
    for (int i = 0; i < 16; ++i) small.push_back(pool.submit(square, i));
    auto large = pool.submit(checksum, big);
    for (int i = 0; i < 4; ++i) small.push_back(pool.submit(nap_then, uniform(0, 2000), i));
    std::this_thread::sleep_for(random_delay(4000));
    const std::vector<int> pids = pool.worker_pids();
    if (!pids.empty() &&
        ::kill(pids[static_cast<std::size_t>(uniform(0, static_cast<int>(pids.size()) - 1))],
               SIGKILL) == 0) {
      ++kills;
    }
    bool round_broken = false;
    for (std::size_t i = 0; i < small.size(); ++i) {
      try {
        const int got = small[i].result(60s);
        const int want = i < 16 ? static_cast<int>(i * i) : static_cast<int>(i - 16);
        EXPECT_EQ(got, want) << "round " << done_rounds << ", future " << i;
      } catch (const concur::BrokenProcessPool&) {
        round_broken = true;
      } catch (const concur::TimeoutError&) {
        ADD_FAILURE() << "round " << done_rounds << ": future " << i << " hung for 60 s";
      }
    }
    try {
      EXPECT_EQ(large.result(60s), 3u * big_size);
    } catch (const concur::BrokenProcessPool&) {
      round_broken = true;
    } catch (const concur::TimeoutError&) {
      ADD_FAILURE() << "round " << done_rounds << ": the large argument's future hung for 60 s";
    }
    broken += round_broken ? 1 : 0;
  }  // each pool's destructor waits for its workers: a hang here is caught by CTest's timeout
  EXPECT_GE(kills, std::min(kMinKills, done_rounds)) << done_rounds << " rounds";
  EXPECT_GT(broken, 0) << "no kill broke a pool in " << kills << " kills: the kills landed nowhere";
  EXPECT_TRUE(concur::testing::eventually([&] { return children() == before; }))
      << "a worker outlived its pool";
  RecordProperty("rounds", done_rounds);
  RecordProperty("kills", kills);
  std::printf("pool: %d rounds, %d kills delivered, %d pools broken\n", done_rounds, kills, broken);
}

TEST_F(RandomKill, AProducerKilledInPutLosesNoItemWhosePutReturned) {
  const int rounds = 300 / concur::testing::kStressScale;
  const auto start = std::chrono::steady_clock::now();
  int done_rounds = 0;
  int kills = 0;
  long items = 0;
  for (; done_rounds < rounds && std::chrono::steady_clock::now() - start < kBudget;
       ++done_rounds) {
    mp::Queue<std::string> queue(0, 256 * 1024);  // small: the producer also blocks when full
    mp::SharedArray<long> returned(1);
    returned[0] = -1;
    mp::Process producer(put_forever, queue, returned);
    producer.start();
    std::this_thread::sleep_for(random_delay(3000));
    // Every item must be 0, 1, 2, ... in order, whole: those taken while the producer runs and
    // those drained after it died alike. `next` is the value the following item must have.
    long next = 0;
    auto check = [&](const std::string& item) {
      const auto colon = item.find(':');
      ASSERT_NE(colon, std::string::npos) << "a corrupt item: " << item;
      const long value = std::stol(item.substr(0, colon));
      ASSERT_EQ(item.size() - colon - 1, static_cast<std::size_t>(value % 97)) << "a torn item";
      ASSERT_EQ(value, next) << "an item lost or duplicated in round " << done_rounds;
      next = value + 1;
      ++items;
    };
    // Let it block on a full queue sometimes, and be killed mid-put other times.
    std::vector<std::string> taken;
    if (done_rounds % 3 == 0) {
      for (int i = 0; i < 10 && queue.qsize() > 0; ++i) taken.push_back(queue.get(1s));
    }
    producer.kill();
    producer.join(30s);
    ASSERT_FALSE(producer.is_alive()) << "round " << done_rounds;
    ++kills;
    const long last_returned = returned[0];
    for (const std::string& item : taken) {
      check(item);
      if (::testing::Test::HasFatalFailure()) return;
    }
    // Drain: together with what this round already took, the items must reach at least the
    // last put that returned.
    for (;;) {
      std::string item;
      try {
        item = queue.get_nowait();
      } catch (const mp::Empty&) {
        break;
      }
      check(item);
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_GE(next - 1, last_returned) << "round " << done_rounds << ": the put of "
                                       << last_returned << " returned but its item is gone";
    queue.put("after");  // still usable
    EXPECT_EQ(queue.get(5s), "after");
  }
  EXPECT_GE(kills, std::min(kMinKills, done_rounds));
  RecordProperty("rounds", done_rounds);
  std::printf("queue: %d rounds, %d kills, %ld items checked\n", done_rounds, kills, items);
}

TEST_F(RandomKill, ALockHolderKilledAnywhereLeavesTheLockUsableAndSaysIfItDiedInside) {
  const int rounds = 300 / concur::testing::kStressScale;
  const auto start = std::chrono::steady_clock::now();
  int done_rounds = 0;
  int died_inside = 0;
  for (; done_rounds < rounds && std::chrono::steady_clock::now() - start < kBudget;
       ++done_rounds) {
    mp::Lock lock;
    mp::SharedArray<long> pair(2);
    mp::Process worker(bump_pair_forever, lock, pair);
    worker.start();
    std::this_thread::sleep_for(random_delay(3000));
    worker.kill();
    worker.join(30s);
    ASSERT_FALSE(worker.is_alive());
    ASSERT_TRUE(lock.acquire(10s)) << "round " << done_rounds << ": the dead holder kept the lock";
    if (lock.previous_owner_died()) {
      ++died_inside;
      EXPECT_LE(pair[1], pair[0]);  // half updated at most: the first counter moves first
      EXPECT_GE(pair[1] + 1, pair[0]);
    } else {
      EXPECT_EQ(pair[0], pair[1]) << "round " << done_rounds
                                  << ": inconsistent data though nobody died holding the lock";
    }
    lock.release();
    ASSERT_TRUE(lock.acquire(1s));
    EXPECT_FALSE(lock.previous_owner_died());
    lock.release();
  }
  RecordProperty("rounds", done_rounds);
  std::printf("lock: %d rounds, the holder died inside %d times\n", done_rounds, died_inside);
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
