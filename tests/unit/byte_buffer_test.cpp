// concur/multiprocessing/byte_buffer.hpp: a ByteBuffer shares its bytes (no copy on the way in),
// encodes inline where nothing sends it out of band, goes out of band while an outbox is current,
// and refuses every lie a received message could tell about its buffers.
#include "concur/multiprocessing/byte_buffer.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "concur/multiprocessing/serialization.hpp"
#include "test_support.hpp"

namespace mp = concur::multiprocessing;
using mp::ByteBuffer;

namespace {

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return v;
}

bool same_bytes(const ByteBuffer& b, const std::vector<std::uint8_t>& v) {
  return b.size() == v.size() && std::equal(v.begin(), v.end(), b.as<std::uint8_t>().begin());
}

TEST(ByteBuffer, TakingAVectorOverCopiesNothing) {
  std::vector<double> v(1000, 2.5);
  const double* where = v.data();
  ByteBuffer b(std::move(v));
  EXPECT_EQ(static_cast<const void*>(b.data()), static_cast<const void*>(where));
  EXPECT_EQ(b.size(), 1000 * sizeof(double));
  EXPECT_EQ(b.as<double>()[999], 2.5);
}

TEST(ByteBuffer, SharingKeepsTheObjectAliveAndCopiesShareTheBytes) {
  auto shared = std::make_shared<const std::vector<std::uint8_t>>(pattern(100));
  std::weak_ptr<const std::vector<std::uint8_t>> watch = shared;
  ByteBuffer a(shared);
  shared.reset();
  ASSERT_FALSE(watch.expired());  // the ByteBuffer holds it
  ByteBuffer b = a;
  EXPECT_EQ(a.data(), b.data());
  a = ByteBuffer();
  EXPECT_FALSE(watch.expired());
  b = ByteBuffer();
  EXPECT_TRUE(watch.expired());  // the last copy gone: freed
}

TEST(ByteBuffer, AsRefusesAWrongSizeOrAlignment) {
  ByteBuffer b(pattern(10));
  EXPECT_THROW_MSG((void)b.as<std::uint64_t>(), std::invalid_argument, "copy them instead");
  auto odd = ByteBuffer::copy_of(b.bytes().subspan(1, 8));
  EXPECT_EQ(odd.size(), 8u);
  const ByteBuffer misaligned(std::make_shared<int>(0), b.bytes().subspan(1, 8));
  if (reinterpret_cast<std::uintptr_t>(misaligned.data()) % alignof(std::uint64_t) != 0) {
    EXPECT_THROW((void)misaligned.as<std::uint64_t>(), std::invalid_argument);
  }
}

// With no outbox current (the process pool, a Connection, serialize()), the bytes go inline and
// come back as a ByteBuffer owning a copy.
TEST(ByteBuffer, EncodesInlineWhereNothingSendsItOutOfBand) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{70'000}}) {
    const auto v = pattern(n);
    const std::string bytes =
        mp::serialize(std::make_tuple(ByteBuffer(std::vector<std::uint8_t>(v)), 42));
    EXPECT_GE(bytes.size(), n);
    auto [back, tail] = mp::deserialize<std::tuple<ByteBuffer, int>>(bytes);
    EXPECT_TRUE(same_bytes(back, v)) << n;
    EXPECT_EQ(tail, 42);
  }
}

TEST(ByteBuffer, GoesOutOfBandAtTheOutboxsSizeAndBackThroughAnInbox) {
  const auto small = pattern(100);
  const auto large = pattern(200'000);
  const ByteBuffer large_buffer{std::vector<std::uint8_t>(large)};
  std::string bytes;
  std::vector<ByteBuffer> sent;
  {
    mp::detail::BufferOutbox outbox;  // ByteBuffer::kOutOfBandMin
    bytes = mp::serialize(
        std::make_tuple(ByteBuffer(std::vector<std::uint8_t>(small)), large_buffer, large_buffer));
    sent = outbox.take();
  }
  ASSERT_EQ(sent.size(), 2u);                      // the small one inline, each large one by index
  EXPECT_EQ(sent[0].data(), large_buffer.data());  // shared, not copied
  EXPECT_LT(bytes.size(), 1000u);
  // What a transport delivers: other memory with the same bytes.
  std::vector<ByteBuffer> received{ByteBuffer::copy_of(sent[0].bytes()),
                                   ByteBuffer::copy_of(sent[1].bytes())};
  const mp::detail::BufferInbox inbox(received);
  auto [a, b, c] = mp::deserialize<std::tuple<ByteBuffer, ByteBuffer, ByteBuffer>>(bytes);
  EXPECT_TRUE(same_bytes(a, small));
  EXPECT_TRUE(same_bytes(b, large));
  EXPECT_EQ(b.data(), received[0].data());  // the function sees the received bytes themselves
  EXPECT_EQ(c.data(), received[1].data());
}

TEST(ByteBuffer, NestedOutboxesAndInboxesHideTheOuterOnes) {
  mp::detail::BufferOutbox outer(1);
  {
    mp::detail::BufferOutbox inner(1);
    (void)mp::serialize(ByteBuffer(pattern(10)));
    EXPECT_EQ(inner.take().size(), 1u);
  }
  EXPECT_EQ(mp::detail::BufferOutbox::current(), &outer);
  EXPECT_TRUE(outer.take().empty());
}

// The bytes come from another process: each lie is a ProtocolError, never a wild read.
TEST(ByteBuffer, RefusesMessagesThatLieAboutTheirBuffers) {
  std::string bytes;
  std::vector<ByteBuffer> sent;
  {
    mp::detail::BufferOutbox outbox(1);
    bytes = mp::serialize(ByteBuffer(pattern(64)));
    sent = outbox.take();
  }
  // No inbox at all.
  EXPECT_THROW_MSG(mp::deserialize<ByteBuffer>(bytes), concur::ProtocolError, "carried no buffers");
  // Fewer buffers than the index names.
  {
    const std::vector<ByteBuffer> none;
    const mp::detail::BufferInbox inbox(none);
    EXPECT_THROW_MSG(mp::deserialize<ByteBuffer>(bytes), concur::ProtocolError,
                     "out-of-band buffer 0 of the 0");
  }
  // A buffer of another size.
  {
    const std::vector<ByteBuffer> wrong{ByteBuffer(pattern(63))};
    const mp::detail::BufferInbox inbox(wrong);
    EXPECT_THROW_MSG(mp::deserialize<ByteBuffer>(bytes), concur::ProtocolError,
                     "has 63 bytes where the message says 64");
  }
  // A corrupt "where" byte (offset 8, after the size).
  std::string corrupt = mp::serialize(ByteBuffer(pattern(4)));
  corrupt[8] = 7;
  EXPECT_THROW(mp::deserialize<ByteBuffer>(corrupt), concur::ProtocolError);
  // An inline size larger than the message: refused before anything is allocated.
  std::string huge = mp::serialize(ByteBuffer(pattern(4)));
  const std::uint64_t lie = std::uint64_t{1} << 60;
  std::memcpy(huge.data(), &lie, sizeof lie);
  std::memcpy(huge.data() + 9, &lie, sizeof lie);
  EXPECT_THROW(mp::deserialize<ByteBuffer>(huge), concur::ProtocolError);
  // The two inline sizes disagree.
  std::string differ = mp::serialize(ByteBuffer(pattern(4)));
  differ[0] = 3;
  EXPECT_THROW_MSG(mp::deserialize<ByteBuffer>(differ), concur::ProtocolError, "two sizes differ");
}

}  // namespace
