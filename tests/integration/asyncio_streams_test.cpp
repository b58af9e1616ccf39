// Tests of concur/asyncio/streams.hpp: open_connection, start_server and Server, StreamReader,
// StreamWriter and getaddrinfo, over real loopback sockets (127.0.0.1 and ::1 only).
// The cases of CPython's Lib/test/test_asyncio/test_streams.py, carried over (its feed_data()
// becomes a peer writing on a real connection), plus what a real network adds: back-pressure
// both ways, resets, cancellation of every wait, and no fd or coroutine frame left behind.
//
// Nothing here asserts a duration: a condition that takes time is polled (a bounded number of
// 1 ms sleeps), and each test runs under a guard that turns a hang into a TimeoutError.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "concur/asyncio.hpp"
#include "concur/asyncio/streams.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Server;
using asyncio::ServerOptions;
using asyncio::SocketAddress;
using asyncio::StreamPair;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using asyncio::Task;
using concur::CancelledError;
using concur::ConnectionError;
using concur::ConnectionRefusedError;
using concur::ConnectionResetError;
using concur::IncompleteReadError;
using concur::InvalidStateError;
using concur::LimitOverrunError;
using concur::OSError;
using concur::RuntimeError;

// A test still running after this has hung: the guard cancels it and it fails with TimeoutError.
constexpr auto kGuard = 20s;
constexpr std::size_t kChunk = 64 * 1024;      // the reader's read size, and the flood's write size
constexpr std::size_t kHighWater = 64 * 1024;  // drain()'s default marks
constexpr std::size_t kLowWater = 16 * 1024;
const std::string kData = "line1\nline2\nline3\n";  // CPython's StreamTests.DATA

struct HandlerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::size_t count_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string describe(const asyncio::ExceptionContext& context) {
  std::string text = context.message;
  if (context.exception) {
    try {
      std::rethrow_exception(context.exception);
    } catch (const std::exception& e) {
      text += std::string(" | ") + e.what();
    } catch (...) {
      text += " | (unknown exception)";
    }
  }
  return text;
}

// Bytes whose value depends on their offset in the stream, so that a lost, duplicated or
// reordered piece shows.
std::string pattern(std::size_t offset, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((offset + i) % 251);
  return s;
}
bool matches_pattern(std::size_t offset, const std::string& data) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] != static_cast<char>((offset + i) % 251)) return false;
  }
  return true;
}

// Each test gets a loop whose exception handler records what it is told, and checks at the end
// that no coroutine frame leaked and that nothing was reported that the test did not expect.
class StreamsTest : public ::testing::Test {
 protected:
  StreamsTest() { record_reports(); }
  void record_reports() {
    loop.set_exception_handler(
        [this](const asyncio::ExceptionContext& context) { reports.push_back(describe(context)); });
  }
  void TearDown() override {
    loop.close();
    EXPECT_EQ(asyncio::detail::live_frames(), frames_before_) << "coroutine frames leaked";
    for (const std::string& r : reports) ADD_FAILURE() << "unexpected report: " << r;
  }
  template <class T>
  T run(Task<T> task) {
    // The guard turns a hang into a failure. (It also catches a loop that sleeps past its
    // timers: libuv's UV_RUN_ONCE once did, see poll_once in src/asyncio/loop.cpp; every test
    // here sleeps with sockets open.)
    return loop.run_until_complete(asyncio::wait_for(std::move(task), kGuard));
  }
  // The fds open once the loop has made its first stream (libuv then opens a spare fd per loop,
  // for running out of fds in accept()): the baseline of the fd-leak checks.
  std::size_t fd_baseline();

  std::int64_t frames_before_ = asyncio::detail::live_frames();
  std::vector<std::string> reports;
  asyncio::EventLoop loop;
};

// ---------------------------------------------------------------------------------------------
// Helpers (coroutines are plain functions, not lambdas, so that their frames own their arguments)

// Polls pred() until it holds: a few plain yields (for tasks that are ready), then 1 ms sleeps
// (which let the loop poll the sockets), at most ~10 s in all. Returns whether it held.
template <class Pred>
Task<bool> until(Pred pred) {
  for (int i = 0; i < 10000; ++i) {
    if (pred()) co_return true;
    co_await asyncio::sleep(i < 4 ? 0ms : 1ms);
  }
  co_return pred();
}

// Awaits what make() returns; the exception of type E it throws, if it throws one (another
// exception type escapes and fails the test).
template <class E, class F>
Task<std::optional<E>> catch_as(F make) {
  try {
    co_await make();
  } catch (const E& e) {
    co_return e;
  }
  co_return std::nullopt;
}

Task<void> echo_handler(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string data = co_await r.read(static_cast<long>(kChunk));
    if (data.empty()) break;
    w.write(data);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

asyncio::ClientHandler echo() {
  return &echo_handler;
}

// A connection whose two ends the test drives itself: `client` from open_connection, `peer` the
// server's end, handed over by a handler that just parks it.
struct Link {
  Server server;
  StreamPair client;
  StreamPair peer;
};

struct Parked {
  std::vector<StreamPair> pairs;
};

Task<void> park(StreamReader r, StreamWriter w, std::weak_ptr<Parked> parked) {
  // The handler holds the parking lot weakly: once the test has taken its end, a connection
  // nobody waits for is dropped (and closed) rather than kept alive by the server.
  if (std::shared_ptr<Parked> p = parked.lock()) {
    StreamPair pair;
    pair.reader = std::move(r);
    pair.writer = std::move(w);
    p->pairs.push_back(std::move(pair));
  }
  co_return;
}

Task<Link> make_link(std::string host = "127.0.0.1",
                     std::size_t client_limit = asyncio::kDefaultStreamLimit,
                     std::size_t server_limit = asyncio::kDefaultStreamLimit) {
  auto parked = std::make_shared<Parked>();
  std::weak_ptr<Parked> weak = parked;
  asyncio::ClientHandler handler = [weak](StreamReader r, StreamWriter w) {
    return park(std::move(r), std::move(w), weak);
  };
  ServerOptions options;
  options.limit = server_limit;
  Link link;
  link.server = co_await asyncio::start_server(handler, host, 0, options);
  link.client = co_await asyncio::open_connection(host, link.server.port(), client_limit);
  bool accepted = co_await until([&] { return !parked->pairs.empty(); });
  if (!accepted) throw std::runtime_error("make_link: the server never accepted the connection");
  link.peer = std::move(parked->pairs.front());
  co_return link;
}

Task<void> close_link(Link& link) {
  link.client.writer.close();
  link.peer.writer.close();
  co_await link.client.writer.wait_closed();
  co_await link.peer.writer.wait_closed();
  link.server.close();
  co_await link.server.wait_closed();
  EXPECT_EQ(link.server.active_connections(), 0u);
}

Task<bool> wait_buffered(const StreamReader& r, std::size_t n) {
  co_return co_await until([&] { return r.buffered() >= n; });
}

Task<std::string> read_task(StreamReader r, long n) {
  co_return co_await r.read(n);
}
Task<std::string> readexactly_task(StreamReader r, std::size_t n) {
  co_return co_await r.readexactly(n);
}
Task<std::string> readuntil_task(StreamReader r, std::string sep) {
  co_return co_await r.readuntil(sep);
}
Task<std::string> readline_task(StreamReader r) {
  co_return co_await r.readline();
}
Task<void> wait_closed_task(StreamWriter w) {
  co_await w.wait_closed();
}

// Cancels a task waiting (after it had a turn to start) and tells whether it ended cancelled.
template <class T>
Task<bool> cancel_and_check(Task<T> t) {
  EXPECT_FALSE(t.done()) << "the task should be waiting";
  t.cancel();
  std::optional<CancelledError> e = co_await catch_as<CancelledError>([&] { return t; });
  co_return e.has_value() && t.cancelled();
}

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

// ---------------------------------------------------------------------------------------------
// Back-pressure: a writer flooding a peer that does not read

struct Flood {
  std::size_t chunks_written = 0;
  std::size_t drains_returned = 0;
  bool in_drain = false;
  bool finished = false;
  std::size_t max_after_write = 0;  // write_buffer_size() just after each write()
  std::size_t max_after_drain = 0;  // ... just after each drain() returned
  std::size_t entering_drain = 0;   // write_buffer_size() as the last drain() was entered
};

Task<void> flood(StreamWriter w, Flood* f, std::size_t chunks) {
  for (std::size_t i = 0; i < chunks; ++i) {
    w.write(pattern(i * kChunk, kChunk));
    ++f->chunks_written;
    f->max_after_write = std::max(f->max_after_write, w.write_buffer_size());
    f->entering_drain = w.write_buffer_size();
    f->in_drain = true;
    co_await w.drain();
    f->in_drain = false;
    ++f->drains_returned;
    f->max_after_drain = std::max(f->max_after_drain, w.write_buffer_size());
  }
  f->finished = true;
}

// Waits until the flood is stuck in drain(): in drain, and no chunk written for 50 polls in a row
// (a drain that returns while nobody reads would let it write on, and eventually finish).
Task<bool> flood_stalled(Flood* f) {
  std::size_t last = ~std::size_t{0};
  int still = 0;
  for (int i = 0; i < 10000 && !f->finished; ++i) {
    co_await asyncio::sleep(1ms);
    if (f->in_drain && f->chunks_written == last) {
      if (++still >= 50) co_return true;
    } else {
      still = 0;
      last = f->chunks_written;
    }
  }
  co_return false;
}

// Reads `total` bytes from r checking the pattern from `offset`; returns the largest buffered()
// seen after a read.
Task<std::size_t> drain_reader(StreamReader& r, std::size_t offset, std::size_t total,
                               bool* intact) {
  std::size_t got = 0;
  std::size_t max_buffered = r.buffered();
  *intact = true;
  while (got < total) {
    std::string d = co_await r.read(static_cast<long>(std::min(kChunk, total - got)));
    if (d.empty()) break;
    if (!matches_pattern(offset + got, d)) *intact = false;
    got += d.size();
    max_buffered = std::max(max_buffered, r.buffered());
  }
  if (got != total) *intact = false;
  co_return max_buffered;
}

constexpr std::size_t kReceiverLimit = 16 * 1024;
// The most a reader holds: reading pauses above 2 x limit, after at most one read's chunk.
constexpr std::size_t kReceiverBound = 2 * kReceiverLimit + kChunk;
// Far more than the kernel's socket buffers on both ends, so that the flood has to stall.
constexpr std::size_t kFloodChunks = 512;  // 32 MiB

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

Task<std::uint16_t> closed_port() {
  Server s = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  std::uint16_t port = s.port();
  s.close();
  co_await s.wait_closed();
  co_return port;
}

std::size_t StreamsTest::fd_baseline() {
  run(closed_port());
  return count_fds();
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
      [seen](const asyncio::ExceptionContext& context) { seen->push_back(describe(context)); });
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
