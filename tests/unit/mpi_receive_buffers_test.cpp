// src/mpi/receive_buffers.hpp: a region comes back when the last copy of its ByteBuffer is
// dropped and is handed out again (its pages stay mapped); the idle ones are bounded; a buffer
// that outlives its pool is unmapped, not leaked or returned to freed memory.
#include "mpi/receive_buffers.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

namespace {

using concur::mpi::detail::ReceiveBuffers;

TEST(MpiReceiveBuffers, ARegionIsReusedOnceTheLastCopyIsDropped) {
  auto pool = ReceiveBuffers::make();
  auto [first, into] = pool->acquire(3u << 20);
  std::memset(into, 0x5a, 3u << 20);
  const std::byte* where = first.data();
  auto copy = first;
  first = {};
  EXPECT_EQ(pool->idle_regions(), 0u);  // a copy still holds it
  copy = {};
  EXPECT_EQ(pool->idle_regions(), 1u);
  // A smaller request fits the same region (whole 2 MiB units), and gets it back.
  auto [again, into2] = pool->acquire(2u << 20);
  EXPECT_EQ(again.data(), where);
  EXPECT_EQ(again.size(), 2u << 20);
  EXPECT_EQ(into2, where);
  EXPECT_EQ(pool->idle_regions(), 0u);
}

TEST(MpiReceiveBuffers, TheSmallestIdleRegionThatFitsIsChosen) {
  auto pool = ReceiveBuffers::make();
  auto [big, a] = pool->acquire(8u << 20);
  auto [small, b] = pool->acquire(2u << 20);
  const std::byte* small_at = small.data();
  big = {};
  small = {};
  auto [next, c] = pool->acquire(1000);
  EXPECT_EQ(next.data(), small_at);
}

TEST(MpiReceiveBuffers, IdleRegionsAreBounded) {
  auto pool = ReceiveBuffers::make();
  std::vector<concur::multiprocessing::ByteBuffer> held;
  for (std::size_t i = 0; i < ReceiveBuffers::kMaxIdle + 3; ++i) {
    held.push_back(pool->acquire(1u << 20).first);
  }
  held.clear();
  EXPECT_EQ(pool->idle_regions(), ReceiveBuffers::kMaxIdle);
}

TEST(MpiReceiveBuffers, ABufferMayOutliveItsPoolAndBeDroppedOnAnotherThread) {
  concur::multiprocessing::ByteBuffer kept;
  {
    auto pool = ReceiveBuffers::make();
    auto [buffer, into] = pool->acquire(100);
    std::memcpy(into, "bytes", 5);
    kept = buffer;
  }
  EXPECT_EQ(std::memcmp(kept.data(), "bytes", 5), 0);  // still mapped
  std::thread([k = std::move(kept)]() mutable { k = {}; }).join();
}

}  // namespace
