// Tests of StreamReader (concur/asyncio/streams.hpp) over real loopback connections: read,
// readexactly, readuntil, readline, their limits, at_eof, and one read at a time. From CPython's
// Lib/test/test_asyncio/test_streams.py, with a peer writing where it calls feed_data().
// Nothing here asserts a duration (see asyncio_streams_test.cpp).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "asyncio_streams_support.hpp"

namespace {

using namespace concur::testing::streams;

// ---------------------------------------------------------------------------------------------
// StreamReader: read, readexactly, readuntil, readline, limits, at_eof

Task<void> read_n_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;
  StreamWriter& peer = link.peer.writer;

  // test_read: a read(30) waiting when the data comes gets it.
  Task<std::string> t = asyncio::create_task(read_task(r, 30));
  co_await asyncio::sleep(0ms);
  EXPECT_FALSE(t.done());
  peer.write(kData);
  EXPECT_EQ(co_await t, kData);
  EXPECT_EQ(r.buffered(), 0u);

  // test_read_zero, test_read_line_breaks, test_readline_read_byte_count.
  peer.write("line1");
  peer.write("line2");
  EXPECT_TRUE(co_await wait_buffered(r, 10));
  EXPECT_EQ(co_await r.read(0), "");
  EXPECT_EQ(r.buffered(), 10u);
  EXPECT_EQ(co_await r.read(5), "line1");
  EXPECT_EQ(r.buffered(), 5u);
  EXPECT_EQ(co_await r.read(100), "line2");  // what is there, not waiting for 100
  peer.write(kData);
  EXPECT_TRUE(co_await wait_buffered(r, kData.size()));
  EXPECT_EQ(co_await r.readline(), "line1\n");
  EXPECT_EQ(co_await r.read(7), "line2\nl");
  EXPECT_EQ(r.buffered(), 5u);
  EXPECT_EQ(co_await r.readexactly(5), "ine3\n");
  EXPECT_FALSE(r.at_eof());

  // test_read_eof: a read waiting when EOF comes returns "".
  Task<std::string> at_eof = asyncio::create_task(read_task(r, 1024));
  co_await asyncio::sleep(0ms);
  peer.write_eof();
  EXPECT_EQ(co_await at_eof, "");
  EXPECT_TRUE(r.at_eof());
  EXPECT_EQ(co_await r.read(10), "");
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadN) {
  run(read_n_body());
}

Task<void> read_to_eof_body() {
  // test_read_until_eof.
  Link link = co_await make_link();
  link.peer.writer.write("chunk1\n");
  link.peer.writer.write("chunk2");
  link.peer.writer.close();
  EXPECT_EQ(co_await link.client.reader.read(), "chunk1\nchunk2");
  EXPECT_TRUE(link.client.reader.at_eof());
  EXPECT_EQ(co_await link.client.reader.read(), "");
  EXPECT_EQ(co_await link.client.reader.read(5), "");
  co_await close_link(link);

  // read() gathers everything up to EOF, however much more than 2 x limit that is: the reader
  // must not stop reading the socket while a read() that needs more waits.
  Link small = co_await make_link("127.0.0.1", 4096);
  std::string big = pattern(0, 1 << 20);
  small.peer.writer.write(big);
  small.peer.writer.close();
  std::string all = co_await small.client.reader.read();
  EXPECT_EQ(all.size(), big.size());
  EXPECT_TRUE(all == big) << "read() to EOF lost or reordered bytes";
  EXPECT_TRUE(small.client.reader.at_eof());
  co_await close_link(small);
}

TEST_F(StreamsTest, ReadToEof) {
  run(read_to_eof_body());
}

Task<void> readexactly_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;

  // test_readexactly: waits for n, leaves the rest.
  Task<std::string> t = asyncio::create_task(readexactly_task(r, 2 * kData.size()));
  co_await asyncio::sleep(0ms);
  link.peer.writer.write(kData);
  EXPECT_TRUE(co_await wait_buffered(r, kData.size()));
  EXPECT_FALSE(t.done());
  link.peer.writer.write(kData + kData);
  EXPECT_EQ(co_await t, kData + kData);
  EXPECT_TRUE(co_await wait_buffered(r, kData.size()));
  EXPECT_EQ(r.buffered(), kData.size());
  // test_readexactly_zero_or_less (zero; a negative count is not representable).
  EXPECT_EQ(co_await r.readexactly(0), "");
  EXPECT_EQ(r.buffered(), kData.size());
  EXPECT_EQ(co_await r.readexactly(kData.size()), kData);

  // test_readexactly_eof: IncompleteReadError with what came.
  link.peer.writer.write(kData);
  link.peer.writer.write_eof();
  std::optional<IncompleteReadError> e =
      co_await catch_as<IncompleteReadError>([&] { return r.readexactly(2 * kData.size()); });
  EXPECT_TRUE(e.has_value());
  if (e) {
    EXPECT_EQ(e->partial(), kData);
    EXPECT_EQ(e->expected(), 2 * kData.size());
  }
  EXPECT_EQ(r.buffered(), 0u);
  EXPECT_TRUE(r.at_eof());
  co_await close_link(link);

  // More than 2 x limit in one readexactly (test_readexactly_limit, scaled up to a real socket).
  Link small = co_await make_link("127.0.0.1", 4096);
  std::string big = pattern(0, 256 * 1024);
  small.peer.writer.write(big);
  std::string got = co_await small.client.reader.readexactly(big.size());
  EXPECT_TRUE(got == big) << "readexactly() of 256 KiB with limit 4 KiB came back different";
  co_await close_link(small);
}

TEST_F(StreamsTest, ReadExactly) {
  run(readexactly_body());
}

// Sends the pieces one by one to a readuntil(sep) already waiting, each arriving before the next
// is sent, and returns what the read returned.
Task<std::string> readuntil_pieces(Link& link, std::string sep, std::vector<std::string> pieces) {
  StreamReader& r = link.client.reader;
  Task<std::string> t = asyncio::create_task(readuntil_task(r, sep));
  co_await asyncio::sleep(0ms);
  std::size_t sent = 0;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_FALSE(t.done()) << "readuntil returned before piece " << i;
    link.peer.writer.write(pieces[i]);
    sent += pieces[i].size();
    if (i + 1 < pieces.size()) {
      EXPECT_TRUE(co_await wait_buffered(r, sent));
    }
  }
  co_return co_await t;
}

Task<void> readuntil_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;

  // test_readuntil_multi_chunks_1: the separator split across chunks, partial matches on the way.
  std::vector<std::string> p1 = {"QWEaa", "XYaa", "a"};
  EXPECT_EQ(co_await readuntil_pieces(link, "aaa", p1), "QWEaaXYaaa");
  std::vector<std::string> p2 = {"QWEaa", "XYa", "aa"};
  EXPECT_EQ(co_await readuntil_pieces(link, "aaa", p2), "QWEaaXYaaa");
  std::vector<std::string> p3 = {"XXX", "a", "a", "a"};
  EXPECT_EQ(co_await readuntil_pieces(link, "aaa", p3), "XXXaaa");
  EXPECT_EQ(r.buffered(), 0u);

  // test_readuntil_multi_chunks: what follows the separator stays buffered.
  link.peer.writer.write("lineAAAxxx");
  EXPECT_TRUE(co_await wait_buffered(r, 10));
  EXPECT_EQ(co_await r.readuntil("AAA"), "lineAAA");
  EXPECT_EQ(r.buffered(), 3u);
  EXPECT_EQ(co_await r.read(3), "xxx");
  link.peer.writer.write("aaa");
  EXPECT_TRUE(co_await wait_buffered(r, 3));
  EXPECT_EQ(co_await r.readuntil("aaa"), "aaa");

  // test_readuntil_separator.
  EXPECT_THROW((void)r.readuntil(""), std::invalid_argument);

  // test_readuntil_eof: IncompleteReadError with everything, expected 0 (Python's None).
  link.peer.writer.write("some dataAA");
  link.peer.writer.write_eof();
  std::optional<IncompleteReadError> e =
      co_await catch_as<IncompleteReadError>([&] { return r.readuntil("AAA"); });
  EXPECT_TRUE(e.has_value());
  if (e) {
    EXPECT_EQ(e->partial(), "some dataAA");
    EXPECT_EQ(e->expected(), 0u);
  }
  EXPECT_EQ(r.buffered(), 0u);
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadUntil) {
  run(readuntil_body());
}

Task<void> readuntil_limit_body() {
  // test_readuntil_limit_found_sep, with limit 3.
  Link link = co_await make_link("127.0.0.1", 3);
  StreamReader& r = link.client.reader;
  EXPECT_EQ(r.limit(), 3u);

  link.peer.writer.write("some dataAA");
  EXPECT_TRUE(co_await wait_buffered(r, 11));
  std::optional<LimitOverrunError> e =
      co_await catch_as<LimitOverrunError>([&] { return r.readuntil("AAA"); });
  EXPECT_TRUE(e.has_value());
  if (e) {
    EXPECT_TRUE(contains(e->what(), "not found")) << e->what();
    EXPECT_EQ(e->consumed(), 9u);  // Python: len(buffer) + 1 - len(separator)
  }
  EXPECT_EQ(r.buffered(), 11u) << "the data must stay buffered";
  EXPECT_EQ(co_await r.readexactly(11), "some dataAA");

  link.peer.writer.write("some dataAAA");
  EXPECT_TRUE(co_await wait_buffered(r, 12));
  e = co_await catch_as<LimitOverrunError>([&] { return r.readuntil("AAA"); });
  EXPECT_TRUE(e.has_value());
  if (e) {
    EXPECT_TRUE(contains(e->what(), "is found")) << e->what();
    EXPECT_EQ(e->consumed(), 9u);  // where the separator starts
  }
  EXPECT_EQ(r.buffered(), 12u) << "the data must stay buffered";
  EXPECT_EQ(co_await r.read(12), "some dataAAA");

  // The limit bounds where the separator starts, as Python's: 3 bytes and then "AAA" is fine.
  link.peer.writer.write("xyzAAA");
  EXPECT_TRUE(co_await wait_buffered(r, 6));
  EXPECT_EQ(co_await r.readuntil("AAA"), "xyzAAA");

  // test_read_limit / test_readexactly_limit: read(n) and readexactly(n) ignore the limit.
  link.peer.writer.write("chunk");
  EXPECT_TRUE(co_await wait_buffered(r, 5));
  EXPECT_EQ(co_await r.read(5), "chunk");
  link.peer.writer.write("chunk");
  EXPECT_EQ(co_await r.readexactly(5), "chunk");
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadUntilLimit) {
  run(readuntil_limit_body());
}

Task<void> readline_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;

  // test_readline: the line comes in pieces; what follows it stays.
  link.peer.writer.write("chunk1 ");
  EXPECT_TRUE(co_await wait_buffered(r, 7));
  std::vector<std::string> pieces = {"chunk2 ", "chunk3 ", "\n chunk4"};
  Task<std::string> t = asyncio::create_task(readline_task(r));
  co_await asyncio::sleep(0ms);
  std::size_t sent = 7;
  for (const std::string& p : pieces) {
    EXPECT_FALSE(t.done());
    link.peer.writer.write(p);
    sent += p.size();
    if (!t.done()) {
      EXPECT_TRUE(co_await until([&] { return t.done() || r.buffered() >= sent; }));
    }
  }
  EXPECT_EQ(co_await t, "chunk1 chunk2 chunk3 \n");
  EXPECT_TRUE(co_await wait_buffered(r, 7));
  EXPECT_EQ(co_await r.read(7), " chunk4");

  // test_readline_nolimit_nowait.
  link.peer.writer.write(kData.substr(0, 6));
  link.peer.writer.write(kData.substr(6));
  EXPECT_TRUE(co_await wait_buffered(r, kData.size()));
  EXPECT_EQ(co_await r.readline(), "line1\n");
  EXPECT_EQ(r.buffered(), 12u);
  EXPECT_EQ(co_await r.readline(), "line2\n");
  EXPECT_EQ(co_await r.readline(), "line3\n");

  // test_at_eof, test_readline_eof, test_readline_empty_eof: the partial line at EOF is a line.
  EXPECT_FALSE(r.at_eof());
  link.peer.writer.write("some data\n");
  EXPECT_EQ(co_await r.readline(), "some data\n");
  EXPECT_FALSE(r.at_eof());
  link.peer.writer.write("some data");
  link.peer.writer.write_eof();
  EXPECT_EQ(co_await r.readline(), "some data");
  EXPECT_EQ(co_await r.readline(), "");
  EXPECT_TRUE(r.at_eof());
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadLine) {
  run(readline_body());
}

Task<void> readline_limit_body() {
  // test_readline_limit, with limit 7.
  Link link = co_await make_link("127.0.0.1", 7);
  StreamReader& r = link.client.reader;

  // The strictness of the limit: a 7-byte line and its "\n" fit in limit 7.
  link.peer.writer.write("1234567\n");
  EXPECT_TRUE(co_await wait_buffered(r, 8));
  EXPECT_EQ(co_await r.readline(), "1234567\n");

  // Separator found beyond the limit: that line is discarded, the next one stays.
  link.peer.writer.write("chunk1chunk2\nchunk3\n");
  EXPECT_TRUE(co_await wait_buffered(r, 20));
  std::optional<LimitOverrunError> e =
      co_await catch_as<LimitOverrunError>([&] { return r.readline(); });
  EXPECT_TRUE(e.has_value());
  EXPECT_EQ(r.buffered(), 7u);
  EXPECT_EQ(co_await r.readline(), "chunk3\n");

  link.peer.writer.write("12345678\n");
  EXPECT_TRUE(co_await wait_buffered(r, 9));
  e = co_await catch_as<LimitOverrunError>([&] { return r.readline(); });
  EXPECT_TRUE(e.has_value());
  EXPECT_EQ(r.buffered(), 0u);

  // No separator within the limit: everything buffered is discarded.
  link.peer.writer.write("chunk1chunk2");
  EXPECT_TRUE(co_await wait_buffered(r, 12));
  e = co_await catch_as<LimitOverrunError>([&] { return r.readline(); });
  EXPECT_TRUE(e.has_value());
  EXPECT_EQ(r.buffered(), 0u);
  link.peer.writer.write("tail\n");
  EXPECT_EQ(co_await r.readline(), "tail\n");
  co_await close_link(link);
}

TEST_F(StreamsTest, ReadLineLimit) {
  run(readline_limit_body());
}

Task<void> limit_option_body() {
  Link link = co_await make_link("127.0.0.1", 1234, 4321);
  EXPECT_EQ(link.client.reader.limit(), 1234u);
  EXPECT_EQ(link.peer.reader.limit(), 4321u);
  co_await close_link(link);
  Link plain = co_await make_link();
  EXPECT_EQ(plain.client.reader.limit(), asyncio::kDefaultStreamLimit);
  EXPECT_EQ(plain.peer.reader.limit(), asyncio::kDefaultStreamLimit);
  co_await close_link(plain);
}

TEST_F(StreamsTest, LimitOption) {
  run(limit_option_body());
}

Task<void> empty_handles_body() {
  StreamReader r;
  StreamWriter w;
  EXPECT_FALSE(r.valid());
  EXPECT_FALSE(w.valid());
  EXPECT_THROW((void)r.read(1), InvalidStateError);
  EXPECT_THROW((void)r.buffered(), InvalidStateError);
  EXPECT_THROW(w.write("x"), InvalidStateError);
  EXPECT_THROW((void)w.drain(), InvalidStateError);
  Link link = co_await make_link();
  EXPECT_TRUE(link.client.reader.valid());
  EXPECT_THROW(link.client.writer.set_write_buffer_limits(1, 2), std::invalid_argument);
  co_await close_link(link);
}

TEST_F(StreamsTest, EmptyHandlesAndBadArguments) {
  run(empty_handles_body());
}

// ---------------------------------------------------------------------------------------------
// One read at a time

Task<void> concurrent_reads_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;
  Task<std::string> first = asyncio::create_task(read_task(r, 100));
  co_await asyncio::sleep(0ms);
  EXPECT_FALSE(first.done());
  std::optional<RuntimeError> e = co_await catch_as<RuntimeError>([&] { return r.read(10); });
  EXPECT_TRUE(e.has_value()) << "a second read while one waits must be a RuntimeError";
  e = co_await catch_as<RuntimeError>([&] { return r.readline(); });
  EXPECT_TRUE(e.has_value());
  e = co_await catch_as<RuntimeError>([&] { return r.readexactly(3); });
  EXPECT_TRUE(e.has_value());
  // Another task reading through another handle of the same reader: the same.
  Task<std::string> second = asyncio::create_task(readline_task(r));
  std::optional<RuntimeError> e2 = co_await catch_as<RuntimeError>([&] { return second; });
  EXPECT_TRUE(e2.has_value());

  // The first read was not disturbed, and reading goes on normally afterwards.
  EXPECT_FALSE(first.done());
  link.peer.writer.write("x");
  EXPECT_EQ(co_await first, "x");
  link.peer.writer.write("y\n");
  EXPECT_EQ(co_await r.readline(), "y\n");
  co_await close_link(link);
}

TEST_F(StreamsTest, TwoConcurrentReadsAreARuntimeError) {
  run(concurrent_reads_body());
}

}  // namespace
