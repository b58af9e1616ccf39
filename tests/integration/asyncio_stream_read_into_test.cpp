// Tests of StreamReader::read_into (concur/asyncio/streams.hpp), the zero-copy read (issue 22),
// over real loopback connections: a waiting read_into receives into the caller's buffer, bytes
// already buffered are taken first and only as many as fit, an empty buffer and EOF give 0, a
// megabyte comes through whole mixed with read(), and a cancelled read_into loses nothing. Python's
// counterpart is readinto (loop.sock_recv_into); its cases in test_sock_lowlevel.py are the model.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_streams_support.hpp"

namespace {

using namespace concur::testing::streams;

Task<std::size_t> read_into_task(StreamReader r, std::span<char> buffer) {
  co_return co_await r.read_into(buffer);
}

Task<void> waiting_read_into_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;
  std::array<char, 30> buffer{};
  // Waiting when the bytes come: the socket is read straight into `buffer`.
  Task<std::size_t> t = asyncio::create_task(read_into_task(r, buffer));
  co_await asyncio::sleep(0ms);
  EXPECT_FALSE(t.done());
  link.peer.writer.write(kData);
  const std::size_t n = co_await t;
  EXPECT_EQ(n, kData.size());
  EXPECT_EQ(std::string(buffer.data(), n), kData);
  EXPECT_EQ(r.buffered(), 0u);
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadIntoAWaitingBufferReceivesTheBytes) {
  run(waiting_read_into_body());
}

Task<void> buffered_first_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;
  link.peer.writer.write("line1");
  link.peer.writer.write("line2");
  EXPECT_TRUE(co_await wait_buffered(r, 10));
  std::array<char, 4> small{};
  EXPECT_EQ(co_await r.read_into(small), 4u);  // only what fits
  EXPECT_EQ(std::string(small.data(), 4), "line");
  EXPECT_EQ(r.buffered(), 6u);
  std::vector<char> big(100);
  const std::size_t n = co_await r.read_into(big);  // what is there, not waiting for 100
  EXPECT_EQ(std::string(big.data(), n), "1line2");
  // An empty buffer returns 0 at once, with or without data coming.
  EXPECT_EQ(co_await r.read_into(std::span<char>()), 0u);
  // EOF: a waiting read_into gets 0, and so does every one after.
  Task<std::size_t> at_eof = asyncio::create_task(read_into_task(r, big));
  co_await asyncio::sleep(0ms);
  link.peer.writer.write_eof();
  EXPECT_EQ(co_await at_eof, 0u);
  EXPECT_TRUE(r.at_eof());
  EXPECT_EQ(co_await r.read_into(big), 0u);
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadIntoTakesBufferedBytesFirstAndGivesZeroAtEof) {
  run(buffered_first_body());
}

Task<void> megabyte_body() {
  Link link = co_await make_link();
  std::string sent(1 << 20, '\0');
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i * 7 + i / 4096);
  link.peer.writer.write(sent);
  Task<void> drain = asyncio::create_task([](StreamWriter w) -> Task<void> {
    co_await w.drain();
    w.write_eof();
  }(link.peer.writer));
  // 64 KiB pieces through read_into, every third through read(): both paths share the buffer.
  std::string got;
  std::vector<char> piece(64 * 1024);
  for (int i = 0;; ++i) {
    if (i % 3 == 2) {
      std::string s = co_await link.client.reader.read(64 * 1024);
      if (s.empty()) break;
      got += s;
    } else {
      const std::size_t n = co_await link.client.reader.read_into(piece);
      if (n == 0) break;
      got.append(piece.data(), n);
    }
  }
  co_await drain;
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent) << "the bytes differ";
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadIntoBringsAMegabyteWholeMixedWithRead) {
  run(megabyte_body());
}

Task<void> cancelled_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;
  std::array<char, 64> buffer{};
  Task<std::size_t> t = asyncio::create_task(read_into_task(r, buffer));
  EXPECT_TRUE(co_await cancel_and_check(t));
  // The stream is still usable, and nothing sent afterwards is lost.
  link.peer.writer.write(kData);
  EXPECT_EQ(co_await r.readexactly(kData.size()), kData);
  co_await close_link(link);
}

TEST_F(StreamsTest, ACancelledReadIntoLosesNothing) {
  run(cancelled_body());
}

}  // namespace
