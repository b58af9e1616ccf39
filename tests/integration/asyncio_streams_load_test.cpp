// Streams under load and loss (concur/asyncio/streams.hpp), over real loopback sockets: a peer's
// reset mid-read, back-pressure both ways against a peer that does not read, a thousand
// connections leaving no fd or frame behind, and many concurrent clients.
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
// Connection reset by the peer

Task<void> reset_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;
  link.peer.writer.write("partial");
  EXPECT_TRUE(co_await wait_buffered(r, 7));
  link.peer.writer.abort();  // RST
  EXPECT_TRUE(link.peer.writer.is_closing());

  // The bytes that came before the reset first, then the reset.
  EXPECT_EQ(co_await r.read(100), "partial");
  std::optional<ConnectionResetError> e =
      co_await catch_as<ConnectionResetError>([&] { return r.read(100); });
  EXPECT_TRUE(e.has_value()) << "the read after the reset must raise ConnectionResetError";
  if (e) {
    EXPECT_EQ(e->code().value(), ECONNRESET);
  }
  // The writer reports it too; write() itself drops the data quietly (Python's behaviour).
  std::optional<ConnectionResetError> d =
      co_await catch_as<ConnectionResetError>([&] { return link.client.writer.drain(); });
  EXPECT_TRUE(d.has_value()) << "drain() after the reset must raise";
  link.client.writer.write("lost");
  d = co_await catch_as<ConnectionResetError>([&] { return link.client.writer.drain(); });
  EXPECT_TRUE(d.has_value());
  co_await link.client.writer.wait_closed();  // the reset closed the connection
  co_await link.peer.writer.wait_closed();
  link.server.close();
  co_await link.server.wait_closed();
}

TEST_F(StreamsTest, PeerResetMidRead) {
  run(reset_body());
}

Task<void> reset_while_waiting_body() {
  // A readexactly() waiting (with some bytes already there) when the reset comes.
  Link link = co_await make_link();
  Task<std::string> t = asyncio::create_task(readexactly_task(link.client.reader, 100));
  co_await asyncio::sleep(0ms);
  link.peer.writer.write("some");
  EXPECT_TRUE(co_await wait_buffered(link.client.reader, 4));
  link.peer.writer.abort();
  std::optional<ConnectionResetError> e =
      co_await catch_as<ConnectionResetError>([&] { return t; });
  EXPECT_TRUE(e.has_value());

  // test_drain_raises: a writer that keeps writing to a peer that reset gets an error from
  // drain() (ConnectionResetError or BrokenPipeError) instead of writing forever.
  Link second = co_await make_link();
  second.peer.writer.abort();
  bool raised = false;
  for (int i = 0; i < 100000 && !raised; ++i) {
    try {
      second.client.writer.write("foo\n");
      co_await second.client.writer.drain();
    } catch (const ConnectionError&) {
      raised = true;
    }
    if (i % 64 == 63) co_await asyncio::sleep(1ms);
  }
  EXPECT_TRUE(raised);
  link.server.close();
  second.server.close();
  co_await link.server.wait_closed();
  co_await second.server.wait_closed();
}

TEST_F(StreamsTest, PeerResetWhileWaiting) {
  run(reset_while_waiting_body());
}

Task<void> back_pressure_body() {
  Link link = co_await make_link("127.0.0.1", asyncio::kDefaultStreamLimit, kReceiverLimit);
  Flood f;
  Task<void> writer = asyncio::create_task(flood(link.client.writer, &f, kFloodChunks));

  EXPECT_TRUE(co_await flood_stalled(&f)) << "drain() never blocked while the peer did not read";
  EXPECT_FALSE(f.finished);
  EXPECT_LT(f.chunks_written, kFloodChunks);
  // Suspended in the drain() of its last write, entered above the high-water mark, and not
  // back while the queue stays above the low-water mark: drain() blocks.
  EXPECT_TRUE(f.in_drain);
  EXPECT_EQ(f.drains_returned + 1, f.chunks_written);
  EXPECT_GT(f.entering_drain, kHighWater);
  EXPECT_GT(link.client.writer.write_buffer_size(), kLowWater);
  // The peer stopped reading its socket: its buffer is bounded, the rest waits in the kernel.
  std::size_t held = link.peer.reader.buffered();
  EXPECT_GT(held, 0u);
  EXPECT_LE(held, kReceiverBound);
  // Still stuck after more turns: nothing moves until the peer reads.
  std::size_t written = f.chunks_written;
  for (int i = 0; i < 20; ++i) co_await asyncio::sleep(1ms);
  EXPECT_EQ(f.chunks_written, written);
  EXPECT_LE(link.peer.reader.buffered(), kReceiverBound);

  // The peer reads: everything arrives intact, and the writer finishes.
  bool intact = false;
  std::size_t max_buffered =
      co_await drain_reader(link.peer.reader, 0, kFloodChunks * kChunk, &intact);
  EXPECT_TRUE(intact) << "the data did not all arrive intact";
  EXPECT_LE(max_buffered, kReceiverBound);
  co_await writer;
  EXPECT_TRUE(f.finished);
  EXPECT_EQ(f.drains_returned, kFloodChunks);
  // Awaiting drain() keeps the queue bounded: at most the high-water mark after drain(), plus
  // one chunk after a write.
  EXPECT_LE(f.max_after_drain, kHighWater);
  EXPECT_LE(f.max_after_write, kHighWater + kChunk);
  co_await close_link(link);
}

TEST_F(StreamsTest, SlowReaderBackPressure) {
  run(back_pressure_body());
}

// ---------------------------------------------------------------------------------------------
// Many connections: no fd, frame or connection left behind

Task<int> ping_client(std::uint16_t port, int id) {
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", port);
  std::string msg = "ping " + std::to_string(id) + "\n";
  c.writer.write(msg);
  std::string back = co_await c.reader.readline();
  c.writer.close();
  co_await c.writer.wait_closed();
  co_return back == msg ? 1 : 0;
}

Task<void> many_connections_body(int rounds, int per_round) {
  ServerOptions options;
  options.backlog = 1024;
  Server server = co_await asyncio::start_server(echo(), "127.0.0.1", 0, options);
  for (int round = 0; round < rounds; ++round) {
    std::vector<Task<int>> clients;
    clients.reserve(static_cast<std::size_t>(per_round));
    for (int i = 0; i < per_round; ++i) clients.push_back(ping_client(server.port(), i));
    std::vector<int> ok = co_await asyncio::gather(std::move(clients));
    int good = 0;
    for (int v : ok) good += v;
    EXPECT_EQ(good, per_round) << "round " << round;
    EXPECT_TRUE(co_await until([&] { return server.active_connections() == 0; }))
        << "round " << round << ": " << server.active_connections() << " connections left";
  }
  EXPECT_TRUE(server.is_serving());
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(server.is_serving());
  EXPECT_EQ(server.active_connections(), 0u);
}

TEST_F(StreamsTest, ThousandConnectionsLeaveNothingBehind) {
  const std::size_t fds_before = fd_baseline();
  const std::int64_t frames_before = asyncio::detail::live_frames();
  run(many_connections_body(5, 200));
  EXPECT_EQ(count_fds(), fds_before) << "file descriptors leaked";
  EXPECT_EQ(asyncio::detail::live_frames(), frames_before) << "coroutine frames leaked";
}

// ---------------------------------------------------------------------------------------------
// Many concurrent clients

Task<int> chatty_client(std::uint16_t port, int id, int rounds) {
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", port);
  int good = 0;
  for (int j = 0; j < rounds; ++j) {
    // Varying sizes, some beyond one segment.
    std::string msg = "client " + std::to_string(id) + " round " + std::to_string(j) + " " +
                      std::string(static_cast<std::size_t>((id * 37 + j * 1009) % 3000), 'x') +
                      "\n";
    c.writer.write(msg);
    co_await c.writer.drain();
    if (co_await c.reader.readline() == msg) ++good;
  }
  c.writer.close();
  co_await c.writer.wait_closed();
  co_return good;
}

Task<void> concurrent_clients_body(int clients, int rounds) {
  ServerOptions options;
  options.backlog = 1024;
  Server server = co_await asyncio::start_server(echo(), "127.0.0.1", 0, options);
  std::vector<Task<int>> tasks;
  for (int i = 0; i < clients; ++i) tasks.push_back(chatty_client(server.port(), i, rounds));
  std::vector<int> good = co_await asyncio::gather(std::move(tasks));
  int total = 0;
  for (int g : good) total += g;
  EXPECT_EQ(total, clients * rounds);
  server.close();
  co_await server.wait_closed();
  EXPECT_EQ(server.active_connections(), 0u);
}

TEST_F(StreamsTest, ManyConcurrentClients) {
  run(concurrent_clients_body(200, 10));
}

}  // namespace
