// Streams when things go wrong (concur/asyncio/streams.hpp), over real loopback sockets: every
// wait cancelled leaves the connection usable, errors and misuse get a clear error, closing wakes
// a waiting read, and a handler's exception is reported without stopping the server.
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
// Cancellation: every wait throws CancelledError and leaves the connection usable

Task<void> cancel_reads_body() {
  Link link = co_await make_link();
  StreamReader& r = link.client.reader;

  // read(n): nothing lost, the next read gets what comes.
  Task<std::string> t1 = asyncio::create_task(read_task(r, 100));
  co_await asyncio::sleep(0ms);
  EXPECT_TRUE(co_await cancel_and_check(t1));
  link.peer.writer.write("abc");
  EXPECT_EQ(co_await r.read(100), "abc");

  // readexactly(n) with part of it already there: the part stays for the next read.
  Task<std::string> t2 = asyncio::create_task(readexactly_task(r, 10));
  co_await asyncio::sleep(0ms);
  link.peer.writer.write("12345");
  EXPECT_TRUE(co_await wait_buffered(r, 5));
  EXPECT_TRUE(co_await cancel_and_check(t2));
  EXPECT_EQ(r.buffered(), 5u);
  link.peer.writer.write("67890");
  EXPECT_EQ(co_await r.readexactly(10), "1234567890");

  // readline() with a partial line there.
  Task<std::string> t3 = asyncio::create_task(readline_task(r));
  co_await asyncio::sleep(0ms);
  link.peer.writer.write("partial");
  EXPECT_TRUE(co_await wait_buffered(r, 7));
  EXPECT_TRUE(co_await cancel_and_check(t3));
  link.peer.writer.write(" line\n");
  EXPECT_EQ(co_await r.readline(), "partial line\n");

  // readuntil() scanning a partial separator.
  Task<std::string> t4 = asyncio::create_task(readuntil_task(r, "END"));
  co_await asyncio::sleep(0ms);
  link.peer.writer.write("xxEN");
  EXPECT_TRUE(co_await wait_buffered(r, 4));
  EXPECT_TRUE(co_await cancel_and_check(t4));
  link.peer.writer.write("Dyy");
  EXPECT_EQ(co_await r.readuntil("END"), "xxEND");
  EXPECT_EQ(co_await r.readexactly(2), "yy");

  // read() to EOF.
  Task<std::string> t5 = asyncio::create_task(read_task(r, -1));
  co_await asyncio::sleep(0ms);
  link.peer.writer.write("before ");
  EXPECT_TRUE(co_await wait_buffered(r, 7));
  EXPECT_TRUE(co_await cancel_and_check(t5));
  link.peer.writer.write("after");
  link.peer.writer.write_eof();
  EXPECT_EQ(co_await r.read(), "before after");

  // The other direction was never disturbed.
  link.client.writer.write("still here\n");
  EXPECT_EQ(co_await link.peer.reader.readline(), "still here\n");
  co_await close_link(link);
}

TEST_F(StreamsTest, CancelReads) {
  run(cancel_reads_body());
}

Task<void> cancel_drain_body() {
  Link link = co_await make_link("127.0.0.1", asyncio::kDefaultStreamLimit, kReceiverLimit);
  Flood f;
  Task<void> writer = asyncio::create_task(flood(link.client.writer, &f, kFloodChunks));
  EXPECT_TRUE(co_await flood_stalled(&f));
  EXPECT_TRUE(co_await cancel_and_check(writer));
  std::size_t written = f.chunks_written;
  EXPECT_LT(written, kFloodChunks);

  // What was written before the cancellation is still delivered, intact.
  bool intact = false;
  co_await drain_reader(link.peer.reader, 0, written * kChunk, &intact);
  EXPECT_TRUE(intact);
  EXPECT_TRUE(co_await until([&] { return link.client.writer.write_buffer_size() == 0; }));
  co_await link.client.writer.drain();
  link.client.writer.write("tail");
  EXPECT_EQ(co_await link.peer.reader.readexactly(4), "tail");
  co_await close_link(link);
}

TEST_F(StreamsTest, CancelDrain) {
  run(cancel_drain_body());
}

Task<void> cancel_wait_closed_body() {
  Link link = co_await make_link();
  Task<void> t = asyncio::create_task(wait_closed_task(link.client.writer));
  co_await asyncio::sleep(0ms);
  EXPECT_TRUE(co_await cancel_and_check(t));
  EXPECT_FALSE(link.client.writer.is_closing());
  link.client.writer.write("ping");
  EXPECT_EQ(co_await link.peer.reader.readexactly(4), "ping");
  link.peer.writer.write("pong");
  EXPECT_EQ(co_await link.client.reader.readexactly(4), "pong");
  co_await close_link(link);
}

TEST_F(StreamsTest, CancelWaitClosed) {
  run(cancel_wait_closed_body());
}

Task<void> cancel_open_connection_body(std::size_t fds_before) {
  // While connecting (to a port nobody listens on: the refusal would come at the next poll).
  std::uint16_t port = co_await closed_port();
  Task<StreamPair> connecting = asyncio::create_task(asyncio::open_connection("127.0.0.1", port));
  co_await asyncio::sleep(0ms);
  EXPECT_TRUE(co_await cancel_and_check(connecting));

  // While resolving the name on libuv's thread pool.
  Server server = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  Task<StreamPair> resolving =
      asyncio::create_task(asyncio::open_connection("localhost", server.port()));
  co_await asyncio::sleep(0ms);
  EXPECT_TRUE(co_await cancel_and_check(resolving));

  // Nothing is left half-open, and connecting again works.
  StreamPair c = co_await asyncio::open_connection("localhost", server.port());
  c.writer.write("after\n");
  EXPECT_EQ(co_await c.reader.readline(), "after\n");
  c.writer.close();
  co_await c.writer.wait_closed();
  server.close();
  co_await server.wait_closed();
  EXPECT_TRUE(co_await until([&] { return count_fds() == fds_before; }))
      << "file descriptors leaked: " << count_fds() << " vs " << fds_before;
}

TEST_F(StreamsTest, CancelOpenConnection) {
  run(cancel_open_connection_body(fd_baseline()));
}

Task<void> cancel_serve_forever_body() {
  Server server = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  std::uint16_t port = server.port();
  Task<void> serving = asyncio::create_task(server.serve_forever());
  co_await asyncio::sleep(0ms);
  EXPECT_TRUE(server.is_serving());
  // While it serves, it serves.
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", port);
  c.writer.write("x\n");
  EXPECT_EQ(co_await c.reader.readline(), "x\n");
  EXPECT_TRUE(co_await cancel_and_check(serving));
  EXPECT_FALSE(server.is_serving()) << "cancelling serve_forever() must close the server";
  std::optional<ConnectionRefusedError> e = co_await catch_as<ConnectionRefusedError>(
      [&] { return asyncio::open_connection("127.0.0.1", port); });
  EXPECT_TRUE(e.has_value());
  // The connection accepted before goes on (Python 3.12's close()).
  c.writer.write("y\n");
  EXPECT_EQ(co_await c.reader.readline(), "y\n");
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await server.wait_closed();

  // serve_forever() returns when close() is called.
  Server second = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  Task<void> s2 = asyncio::create_task(second.serve_forever());
  co_await asyncio::sleep(0ms);
  std::optional<RuntimeError> twice =
      co_await catch_as<RuntimeError>([&] { return second.serve_forever(); });
  EXPECT_TRUE(twice.has_value()) << "a second serve_forever() must be a RuntimeError";
  second.close();
  co_await s2;
  co_await second.wait_closed();
}

TEST_F(StreamsTest, CancelServeForever) {
  run(cancel_serve_forever_body());
}

// ---------------------------------------------------------------------------------------------
// Errors and misuse

Task<void> refused_and_in_use_body(std::size_t fds_before) {
  std::uint16_t port = co_await closed_port();
  std::optional<ConnectionRefusedError> refused = co_await catch_as<ConnectionRefusedError>(
      [&] { return asyncio::open_connection("127.0.0.1", port); });
  EXPECT_TRUE(refused.has_value());
  if (refused) {
    EXPECT_EQ(refused->code().value(), ECONNREFUSED);
  }

  Server first = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  std::optional<OSError> in_use = co_await catch_as<OSError>(
      [&] { return asyncio::start_server(echo(), "127.0.0.1", first.port()); });
  EXPECT_TRUE(in_use.has_value()) << "binding a port in use must raise OSError";
  if (in_use) {
    EXPECT_EQ(in_use->code().value(), EADDRINUSE) << in_use->what();
  }
  // The first server is unharmed.
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", first.port());
  c.writer.write("ok\n");
  EXPECT_EQ(co_await c.reader.readline(), "ok\n");
  c.writer.close();
  co_await c.writer.wait_closed();
  first.close();
  co_await first.wait_closed();
  EXPECT_TRUE(co_await until([&] { return count_fds() == fds_before; }))
      << "file descriptors leaked: " << count_fds() << " vs " << fds_before;
}

TEST_F(StreamsTest, ConnectionRefusedAndAddressInUse) {
  run(refused_and_in_use_body(fd_baseline()));
}

Task<void> write_after_close_body() {
  Link link = co_await make_link();
  StreamWriter& w = link.client.writer;
  w.write("last\n");
  w.close();
  EXPECT_TRUE(w.is_closing());
  EXPECT_THROW(w.write("x"), RuntimeError);
  co_await w.wait_closed();
  EXPECT_THROW(w.write("x"), RuntimeError);  // after the close completed too
  // test_async_writer_api_exception_after_close: drain() after close: ConnectionResetError.
  std::optional<ConnectionResetError> e =
      co_await catch_as<ConnectionResetError>([&] { return w.drain(); });
  EXPECT_TRUE(e.has_value());
  // The queued data was sent before closing.
  EXPECT_EQ(co_await link.peer.reader.readline(), "last\n");
  EXPECT_EQ(co_await link.peer.reader.read(), "");
  // test_eof_feed_when_closing_writer: closing our writer ends our reader too.
  EXPECT_TRUE(link.client.reader.at_eof());
  EXPECT_EQ(co_await link.client.reader.read(), "");
  EXPECT_TRUE(w.peername().host.empty());
  w.close();  // idempotent
  co_await close_link(link);
}

TEST_F(StreamsTest, WriteAfterCloseIsARuntimeError) {
  run(write_after_close_body());
}

Task<void> write_eof_body() {
  Link link = co_await make_link();
  StreamWriter& w = link.client.writer;
  EXPECT_TRUE(w.can_write_eof());
  w.write("abc");
  w.write_eof();
  EXPECT_THROW(w.write("x"), RuntimeError);
  EXPECT_FALSE(w.is_closing());
  // The peer reads what came, then EOF ...
  EXPECT_EQ(co_await link.peer.reader.read(), "abc");
  EXPECT_TRUE(link.peer.reader.at_eof());
  EXPECT_EQ(co_await link.peer.reader.read(10), "");
  // ... while the other direction still works, both ways round.
  link.peer.writer.write("reply 1\n");
  EXPECT_EQ(co_await link.client.reader.readline(), "reply 1\n");
  link.peer.writer.write("reply 2");
  link.peer.writer.close();
  EXPECT_EQ(co_await link.client.reader.read(), "reply 2");
  EXPECT_TRUE(link.client.reader.at_eof());
  co_await close_link(link);
}

TEST_F(StreamsTest, WriteEofHalfCloses) {
  run(write_eof_body());
}

// ---------------------------------------------------------------------------------------------
// Closing while a read waits

struct Waiting {
  int started = 0;
  int ended_at_eof = 0;
};

Task<void> waiting_handler(StreamReader r, StreamWriter w, std::shared_ptr<Waiting> st) {
  ++st->started;
  std::string line = co_await r.readline();
  if (line.empty() && r.at_eof()) ++st->ended_at_eof;
  (void)w;
}

Task<void> close_clients_body() {
  auto st = std::make_shared<Waiting>();
  asyncio::ClientHandler handler = [st](StreamReader r, StreamWriter w) {
    return waiting_handler(std::move(r), std::move(w), st);
  };
  Server server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
  std::vector<StreamPair> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(co_await asyncio::open_connection("127.0.0.1", server.port()));
  }
  EXPECT_TRUE(co_await until([&] { return st->started == 3; }));
  EXPECT_EQ(server.active_connections(), 3u);
  server.close();
  EXPECT_FALSE(server.is_serving());
  EXPECT_EQ(server.active_connections(), 3u) << "close() leaves the connections alone";
  // wait_closed() waits for the connections too.
  Task<void> closed = asyncio::create_task(server.wait_closed());
  for (int i = 0; i < 10; ++i) co_await asyncio::sleep(1ms);
  EXPECT_FALSE(closed.done()) << "wait_closed() returned while connections were open";
  // close_clients() closes them under the handlers' waiting reads: each read sees EOF, each
  // handler ends (and drops the last handles of its connection) inside that wake-up.
  server.close_clients();
  co_await closed;
  co_await server.wait_closed();
  EXPECT_EQ(server.active_connections(), 0u);
  EXPECT_EQ(st->ended_at_eof, 3);
  for (StreamPair& c : clients) {
    EXPECT_EQ(co_await c.reader.read(), "");
    c.writer.close();
    co_await c.writer.wait_closed();
  }
}

TEST_F(StreamsTest, CloseClientsWakesWaitingReads) {
  run(close_clients_body());
}

Task<void> close_while_reading_body() {
  // Our own close() under a read of ours waiting in another task: the read sees EOF.
  Link link = co_await make_link();
  Task<std::string> t = asyncio::create_task(read_task(link.client.reader, 100));
  co_await asyncio::sleep(0ms);
  link.client.writer.close();
  EXPECT_EQ(co_await t, "");
  co_await link.client.writer.wait_closed();
  EXPECT_TRUE(link.client.reader.at_eof());

  // The same when the reading task holds the only handles left.
  Link second = co_await make_link();
  StreamWriter w = second.client.writer;
  Task<std::string> t2 = asyncio::create_task(read_task(std::move(second.client.reader), 100));
  second.client = StreamPair();
  co_await asyncio::sleep(0ms);
  w.abort();
  w = StreamWriter();
  EXPECT_EQ(co_await t2, "");
  co_await close_link(link);
  second.peer.writer.close();
  co_await second.peer.writer.wait_closed();
  second.server.close();
  co_await second.server.wait_closed();
}

TEST_F(StreamsTest, CloseWhileReading) {
  run(close_while_reading_body());
}

// ---------------------------------------------------------------------------------------------
// Handler errors are reported and do not stop the server

Task<void> failing_handler(StreamReader r, StreamWriter w) {
  std::string line = co_await r.readline();
  if (line == "boom\n") throw HandlerError("the handler failed on purpose");
  w.write(line);
  co_await w.drain();
  w.close();
  co_await w.wait_closed();
}

Task<void> handler_errors_body(std::vector<std::string>* seen) {
  // Installed through get_running_loop(), as a Python program would.
  asyncio::get_running_loop().set_exception_handler(
      [seen](const asyncio::ExceptionContext& context) {
        seen->push_back(concur::testing::describe(context));
      });
  auto calls = std::make_shared<int>(0);
  asyncio::ClientHandler handler = [calls](StreamReader r, StreamWriter w) -> Task<void> {
    if (++*calls == 1) throw HandlerError("the handler threw before its coroutine started");
    return failing_handler(std::move(r), std::move(w));
  };
  Server server = co_await asyncio::start_server(handler, "127.0.0.1", 0);

  // 1: the handler function itself throws; the connection is dropped.
  StreamPair c1 = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_EQ(co_await c1.reader.read(), "");
  // 2: the handler's coroutine throws.
  StreamPair c2 = co_await asyncio::open_connection("127.0.0.1", server.port());
  c2.writer.write("boom\n");
  EXPECT_EQ(co_await c2.reader.read(), "");
  EXPECT_TRUE(co_await until([&] { return seen->size() >= 2; }));
  // 3: the server still serves.
  EXPECT_TRUE(server.is_serving());
  StreamPair c3 = co_await asyncio::open_connection("127.0.0.1", server.port());
  c3.writer.write("still serving\n");
  EXPECT_EQ(co_await c3.reader.readline(), "still serving\n");
  std::vector<StreamPair*> all = {&c1, &c2, &c3};
  for (StreamPair* c : all) {
    c->writer.close();
    co_await c->writer.wait_closed();
  }
  server.close();
  co_await server.wait_closed();
  EXPECT_EQ(*calls, 3);
}

TEST_F(StreamsTest, HandlerExceptionsGoToTheLoopHandler) {
  std::vector<std::string> seen;
  run(handler_errors_body(&seen));
  record_reports();  // the fixture's handler again, for what follows
  EXPECT_EQ(seen.size(), 2u);
  bool threw_before = false;
  bool threw_inside = false;
  for (const std::string& s : seen) {
    if (contains(s, "the handler threw before its coroutine started")) threw_before = true;
    if (contains(s, "the handler failed on purpose")) threw_inside = true;
  }
  EXPECT_TRUE(threw_before) << "the handler function's exception was not reported";
  EXPECT_TRUE(threw_inside) << "the handler task's exception was not reported";
}

}  // namespace
