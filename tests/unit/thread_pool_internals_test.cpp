// Tests of the thread pool's internal queues (src/thread_pool/): the Chase-Lev deque and the
// injection queue, each hammered from several threads with every item checked to come out once.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test_support.hpp"
#include "thread_pool/injection_queue.hpp"
#include "thread_pool/work_stealing_deque.hpp"

namespace {

using concur::detail::InjectionQueue;
using concur::detail::StateBase;
using concur::detail::WorkStealingDeque;
using concur::testing::kStressScale;

TEST(WorkStealingDeque, OwnerPopsNewestFirstThievesStealOldestFirst) {
  WorkStealingDeque<int*> deque(16);
  int items[4] = {0, 1, 2, 3};
  for (int& i : items) deque.push(&i);
  EXPECT_EQ(deque.steal(), &items[0]);
  EXPECT_EQ(deque.pop(), &items[3]);
  EXPECT_EQ(deque.steal(), &items[1]);
  EXPECT_EQ(deque.pop(), &items[2]);
  EXPECT_EQ(deque.pop(), nullptr);
  EXPECT_EQ(deque.steal(), nullptr);
  EXPECT_TRUE(deque.empty());
}

TEST(WorkStealingDeque, GrowsPastItsFirstCapacityKeepingEveryItem) {
  WorkStealingDeque<int*> deque(16);
  std::vector<int> items(1000);
  for (int& i : items) deque.push(&i);
  for (int k = 999; k >= 0; --k) ASSERT_EQ(deque.pop(), &items[static_cast<std::size_t>(k)]);
  EXPECT_EQ(deque.pop(), nullptr);
}

TEST(WorkStealingDeque, EveryItemIsTakenExactlyOnceUnderConcurrentStealing) {
  const int count = 200'000 / kStressScale;
  std::vector<int> items(static_cast<std::size_t>(count));
  std::vector<std::atomic<int>> taken(static_cast<std::size_t>(count));
  WorkStealingDeque<int*> deque(16);
  std::atomic<bool> done{false};
  auto take = [&](int* item) { taken[static_cast<std::size_t>(item - items.data())].fetch_add(1); };
  std::vector<std::thread> thieves;
  for (int t = 0; t < 3; ++t) {
    thieves.emplace_back([&] {
      while (!done.load() || !deque.empty()) {
        if (int* item = deque.steal()) take(item);
      }
    });
  }
  for (int i = 0; i < count; ++i) {
    deque.push(&items[static_cast<std::size_t>(i)]);
    if (i % 3 == 0) {
      if (int* item = deque.pop()) take(item);
    }
  }
  while (int* item = deque.pop()) take(item);
  done.store(true);
  for (auto& t : thieves) t.join();
  for (int i = 0; i < count; ++i) ASSERT_EQ(taken[static_cast<std::size_t>(i)].load(), 1) << i;
}

class Node final : public StateBase {
 public:
  int id = 0;
};

TEST(InjectionQueue, FifoForOneProducer) {
  InjectionQueue queue;
  std::vector<Node> nodes(10);
  for (int i = 0; i < 10; ++i) {
    nodes[static_cast<std::size_t>(i)].id = i;
    queue.push(&nodes[static_cast<std::size_t>(i)]);
  }
  ASSERT_TRUE(queue.try_lock());
  EXPECT_FALSE(queue.try_lock());
  for (int i = 0; i < 10; ++i) {
    auto* n = static_cast<Node*>(queue.pop());
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->id, i);
  }
  EXPECT_EQ(queue.pop(), nullptr);
  EXPECT_FALSE(queue.maybe_nonempty());
  queue.unlock();
}

TEST(InjectionQueue, ManyProducersManyConsumersEachNodeOnce) {
  const int per_producer = 50'000 / kStressScale;
  constexpr int kProducers = 4;
  std::vector<Node> nodes(static_cast<std::size_t>(per_producer * kProducers));
  std::vector<std::atomic<int>> seen(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) nodes[i].id = static_cast<int>(i);
  InjectionQueue queue;
  std::atomic<int> consumed{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) {
        queue.push(&nodes[static_cast<std::size_t>(p * per_producer + i)]);
      }
    });
  }
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      while (consumed.load() < static_cast<int>(nodes.size())) {
        if (!queue.try_lock()) continue;
        while (auto* n = static_cast<Node*>(queue.pop())) {
          seen[static_cast<std::size_t>(n->id)].fetch_add(1);
          consumed.fetch_add(1);
        }
        queue.unlock();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

// The race that once stranded a task in a pool whose workers all slept: the consumer takes the
// queue's last node while a producer pushes another. Whatever the interleaving, the new node must
// keep the queue non-empty until it is taken; each round sets the race up afresh.
TEST(InjectionQueue, ANodePushedWhileTheLastIsTakenKeepsTheQueueNonEmpty) {
  const int rounds = 100'000 / kStressScale;
  std::vector<Node> first(static_cast<std::size_t>(rounds));
  std::vector<Node> second(static_cast<std::size_t>(rounds));
  InjectionQueue queue;
  std::atomic<int> go{-1};
  std::atomic<int> pushed{-1};
  std::thread producer([&] {
    for (int r = 0; r < rounds; ++r) {
      while (go.load(std::memory_order_acquire) < r) {
      }
      queue.push(&second[static_cast<std::size_t>(r)]);
      pushed.store(r, std::memory_order_release);
    }
  });
  ASSERT_TRUE(queue.try_lock());
  int hidden = 0;
  for (int r = 0; r < rounds; ++r) {
    const auto i = static_cast<std::size_t>(r);
    queue.push(&first[i]);
    go.store(r, std::memory_order_release);
    StateBase* got = queue.pop();  // races the producer's push
    while (pushed.load(std::memory_order_acquire) < r) {
    }
    // Both nodes were pushed and at most the first taken: the queue holds at least one.
    if (!queue.maybe_nonempty()) ++hidden;
    std::vector<StateBase*> rest;
    while (StateBase* n = queue.pop()) rest.push_back(n);
    if (got == nullptr) {
      ASSERT_EQ(rest.size(), 2u) << "round " << r;
      EXPECT_EQ(rest[0], &first[i]);
      EXPECT_EQ(rest[1], &second[i]);
    } else {
      ASSERT_EQ(got, &first[i]) << "round " << r;
      ASSERT_EQ(rest.size(), 1u) << "round " << r;
      EXPECT_EQ(rest[0], &second[i]);
    }
    ASSERT_FALSE(queue.maybe_nonempty()) << "round " << r;
  }
  queue.unlock();
  producer.join();
  EXPECT_EQ(hidden, 0) << "rounds in which a queued node was reported as an empty queue";
}

}  // namespace
