// Tests of concur/asyncio/streams.hpp over real loopback sockets (127.0.0.1 and ::1 only): echo
// round trips, names and addresses. The cases of CPython's Lib/test/test_asyncio/test_streams.py,
// carried over (its feed_data() becomes a peer writing on a real connection). The rest of the
// stream tests: asyncio_stream_reader_test.cpp (the reads), asyncio_streams_load_test.cpp (resets,
// back-pressure, many connections), asyncio_streams_errors_test.cpp (cancellation, misuse,
// closing, handler errors); their shared fixture is asyncio_streams_support.hpp.
//
// Nothing here asserts a duration: a condition that takes time is polled (a bounded number of
// 1 ms sleeps), and each test runs under a guard that turns a hang into a TimeoutError.
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
// Echo round trips, names and addresses

struct SeenNames {
  SocketAddress peer;  // the server's view of the client
  SocketAddress sock;
};

Task<void> recording_echo(StreamReader r, StreamWriter w, std::shared_ptr<SeenNames> seen) {
  seen->peer = w.peername();
  seen->sock = w.sockname();
  co_await echo_handler(std::move(r), std::move(w));
}

Task<void> echo_round_trip(std::string host, int family) {
  auto seen = std::make_shared<SeenNames>();
  asyncio::ClientHandler handler = [seen](StreamReader r, StreamWriter w) {
    return recording_echo(std::move(r), std::move(w), seen);
  };
  Server server = co_await asyncio::start_server(handler, host, 0);
  EXPECT_TRUE(server.is_serving());
  EXPECT_NE(server.port(), 0);
  std::vector<SocketAddress> sockets = server.sockets();
  EXPECT_EQ(sockets.size(), 1u);
  if (!sockets.empty()) {
    EXPECT_EQ(sockets[0].host, host);
    EXPECT_EQ(sockets[0].port, server.port());
    EXPECT_EQ(sockets[0].family, family);
  }

  StreamPair c = co_await asyncio::open_connection(host, server.port());
  c.writer.write("hello world!\n");
  co_await c.writer.drain();
  EXPECT_EQ(co_await c.reader.readline(), "hello world!\n");

  // Larger than the limit, the kernel's first window and one read: many chunks each way.
  std::string big = pattern(0, 300 * 1000);
  c.writer.write(big);
  std::string back = co_await c.reader.readexactly(big.size());
  EXPECT_TRUE(back == big) << "the echo of 300 kB came back different";
  c.writer.writelines({"a", "b", "c\n"});
  EXPECT_EQ(co_await c.reader.readline(), "abc\n");
  co_await c.writer.drain();
  EXPECT_EQ(c.writer.write_buffer_size(), 0u);

  SocketAddress mine = c.writer.sockname();
  SocketAddress theirs = c.writer.peername();
  EXPECT_EQ(mine.host, host);
  EXPECT_EQ(mine.family, family);
  EXPECT_NE(mine.port, 0);
  EXPECT_EQ(theirs.host, host);
  EXPECT_EQ(theirs.port, server.port());
  EXPECT_EQ(theirs.family, family);
  EXPECT_EQ(seen->peer.host, mine.host);
  EXPECT_EQ(seen->peer.port, mine.port);
  EXPECT_EQ(seen->sock.port, server.port());
  EXPECT_EQ(theirs.to_string(), family == AF_INET6
                                    ? "[" + host + "]:" + std::to_string(server.port())
                                    : host + ":" + std::to_string(server.port()));
  EXPECT_EQ(server.active_connections(), 1u);

  EXPECT_FALSE(c.writer.is_closing());
  c.writer.close();
  EXPECT_TRUE(c.writer.is_closing());
  co_await c.writer.wait_closed();
  server.close();
  EXPECT_FALSE(server.is_serving());
  co_await server.wait_closed();
  EXPECT_EQ(server.active_connections(), 0u);
  EXPECT_TRUE(server.sockets().size() == 1u);  // what it listened on stays known
}

Task<bool> ipv6_loopback_available() {
  try {
    Server s = co_await asyncio::start_server(echo(), "::1", 0);
    s.close();
    co_await s.wait_closed();
    co_return true;
  } catch (const OSError&) {
    co_return false;
  }
}

// With a socket open and nothing else to do, the loop's poll must still wake for each timer:
// libuv's UV_RUN_ONCE runs an already-due timer before polling and then polls without a bound, so
// a loop that armed its libuv timer a fraction of a millisecond early slept until the next I/O
// (the guard turns such a hang into a failure).
Task<int> sleep_beside_idle_server() {
  Server server = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  int slept = 0;
  for (int i = 0; i < 300; ++i) {
    co_await asyncio::sleep(i % 2 ? 1ms : 300us);
    ++slept;
  }
  server.close();
  co_await server.wait_closed();
  co_return slept;
}

TEST_F(StreamsTest, TimersFireWhileSocketsAreIdle) {
  EXPECT_EQ(run(sleep_beside_idle_server()), 300);
}

TEST_F(StreamsTest, EchoRoundTripIPv4) {
  run(echo_round_trip("127.0.0.1", AF_INET));
}

TEST_F(StreamsTest, EchoRoundTripIPv6) {
  if (!run(ipv6_loopback_available())) GTEST_SKIP() << "::1 cannot be bound on this host";
  run(echo_round_trip("::1", AF_INET6));
}

Task<void> localhost_body(bool v6) {
  std::vector<SocketAddress> addresses = co_await asyncio::getaddrinfo("localhost", 8080);
  EXPECT_FALSE(addresses.empty());
  for (const SocketAddress& a : addresses) {
    EXPECT_TRUE(a.host == "127.0.0.1" || a.host == "::1") << a.host;
    EXPECT_EQ(a.port, 8080);
    EXPECT_EQ(a.family, a.host == "::1" ? AF_INET6 : AF_INET);
  }
  std::vector<SocketAddress> numeric = co_await asyncio::getaddrinfo("127.0.0.1", 5);
  EXPECT_EQ(numeric.size(), 1u);
  if (!numeric.empty()) {
    EXPECT_EQ(numeric[0].host, "127.0.0.1");
    EXPECT_EQ(numeric[0].port, 5);
    EXPECT_EQ(numeric[0].family, AF_INET);
  }
  std::vector<SocketAddress> numeric6 = co_await asyncio::getaddrinfo("::1", 6);
  EXPECT_EQ(numeric6.size(), 1u);
  if (!numeric6.empty()) {
    EXPECT_EQ(numeric6[0].family, AF_INET6);
  }

  // A server on 127.0.0.1 alone: "localhost" goes through the resolver, and each address it gives
  // is tried in turn until one answers (::1, if it comes first, refuses).
  Server server = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  StreamPair c = co_await asyncio::open_connection("localhost", server.port());
  c.writer.write("via localhost\n");
  EXPECT_EQ(co_await c.reader.readline(), "via localhost\n");
  EXPECT_EQ(c.writer.peername().host, "127.0.0.1");
  c.writer.close();
  co_await c.writer.wait_closed();
  server.close();
  co_await server.wait_closed();

  if (!v6) co_return;
  // start_server("localhost", 0) listens on every address of localhost, all on one port.
  Server both = co_await asyncio::start_server(echo(), "localhost", 0);
  std::vector<SocketAddress> sockets = both.sockets();
  EXPECT_GE(sockets.size(), 1u);
  for (const SocketAddress& a : sockets) {
    EXPECT_TRUE(a.host == "127.0.0.1" || a.host == "::1") << a.host;
    EXPECT_EQ(a.port, both.port());
    StreamPair each = co_await asyncio::open_connection(a.host, a.port);
    each.writer.write("to " + a.host + "\n");
    EXPECT_EQ(co_await each.reader.readline(), "to " + a.host + "\n");
    EXPECT_EQ(each.writer.peername().host, a.host);
    each.writer.close();
    co_await each.writer.wait_closed();
  }
  both.close();
  co_await both.wait_closed();
}

TEST_F(StreamsTest, LocalhostThroughGetaddrinfo) {
  bool v6 = run(ipv6_loopback_available());
  run(localhost_body(v6));
}

}  // namespace
