// The fixture, constants and coroutines shared by the stream tests over real loopback sockets
// (asyncio_streams_*_test.cpp): a StreamsTest fixture whose runs are guarded, byte patterns that
// show a lost or reordered piece, an echo server, links whose two ends a test drives, and fd
// counts.
#pragma once

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

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "concur/asyncio/streams.hpp"
#include "test_support.hpp"

namespace concur::testing::streams {

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
inline constexpr auto kGuard = 20s;
inline constexpr std::size_t kChunk =
    64 * 1024;  // the reader's read size, and the flood's write size
inline constexpr std::size_t kHighWater = 64 * 1024;  // drain()'s default marks
inline constexpr std::size_t kLowWater = 16 * 1024;
inline const std::string kData = "line1\nline2\nline3\n";  // CPython's StreamTests.DATA

struct HandlerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::size_t count_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

using concur::testing::contains;

// Bytes whose value depends on their offset in the stream, so that a lost, duplicated or
// reordered piece shows.
inline std::string pattern(std::size_t offset, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((offset + i) % 251);
  return s;
}
inline bool matches_pattern(std::size_t offset, const std::string& data) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] != static_cast<char>((offset + i) % 251)) return false;
  }
  return true;
}

// Each test gets a loop whose exception handler records what it is told, and checks at the end
// that no coroutine frame leaked and that nothing was reported that the test did not expect
// (concur::testing::AsyncioTest).
class StreamsTest : public concur::testing::AsyncioTest {
 protected:
  // The guard turns a hang into a failure. (It also catches a loop that sleeps past its timers:
  // libuv's UV_RUN_ONCE once did, see poll_once in src/asyncio/loop.cpp; every test here sleeps
  // with sockets open.)
  StreamsTest() { run_guard = kGuard; }
  // The fds open once the loop has made its first stream (libuv then opens a spare fd per loop,
  // for running out of fds in accept()): the baseline of the fd-leak checks.
  std::size_t fd_baseline();
};

// ---------------------------------------------------------------------------------------------
// Helpers (coroutines are plain functions, not lambdas, so that their frames own their arguments)

// Polls pred() until it holds: a few plain yields (for tasks that are ready), then 1 ms sleeps
// (which let the loop poll the sockets), at most ~10 s in all. Returns whether it held.
template <class Pred>
inline Task<bool> until(Pred pred) {
  for (int i = 0; i < 10000; ++i) {
    if (pred()) co_return true;
    co_await asyncio::sleep(i < 4 ? 0ms : 1ms);
  }
  co_return pred();
}

// Awaits what make() returns; the exception of type E it throws, if it throws one (another
// exception type escapes and fails the test).
template <class E, class F>
inline Task<std::optional<E>> catch_as(F make) {
  try {
    co_await make();
  } catch (const E& e) {
    co_return e;
  }
  co_return std::nullopt;
}

inline Task<void> echo_handler(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string data = co_await r.read(static_cast<long>(kChunk));
    if (data.empty()) break;
    w.write(data);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

inline asyncio::ClientHandler echo() {
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

inline Task<void> park(StreamReader r, StreamWriter w, std::weak_ptr<Parked> parked) {
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

inline Task<Link> make_link(std::string host = "127.0.0.1",
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

inline Task<void> close_link(Link& link) {
  link.client.writer.close();
  link.peer.writer.close();
  co_await link.client.writer.wait_closed();
  co_await link.peer.writer.wait_closed();
  link.server.close();
  co_await link.server.wait_closed();
  EXPECT_EQ(link.server.active_connections(), 0u);
}

inline Task<bool> wait_buffered(const StreamReader& r, std::size_t n) {
  co_return co_await until([&] { return r.buffered() >= n; });
}

inline Task<std::string> read_task(StreamReader r, long n) {
  co_return co_await r.read(n);
}
inline Task<std::string> readexactly_task(StreamReader r, std::size_t n) {
  co_return co_await r.readexactly(n);
}
inline Task<std::string> readuntil_task(StreamReader r, std::string sep) {
  co_return co_await r.readuntil(sep);
}
inline Task<std::string> readline_task(StreamReader r) {
  co_return co_await r.readline();
}
inline Task<void> wait_closed_task(StreamWriter w) {
  co_await w.wait_closed();
}

// Cancels a task waiting (after it had a turn to start) and tells whether it ended cancelled.
template <class T>
inline Task<bool> cancel_and_check(Task<T> t) {
  EXPECT_FALSE(t.done()) << "the task should be waiting";
  t.cancel();
  std::optional<CancelledError> e = co_await catch_as<CancelledError>([&] { return t; });
  co_return e.has_value() && t.cancelled();
}

inline Task<std::uint16_t> closed_port() {
  Server s = co_await asyncio::start_server(echo(), "127.0.0.1", 0);
  std::uint16_t port = s.port();
  s.close();
  co_await s.wait_closed();
  co_return port;
}

inline std::size_t StreamsTest::fd_baseline() {
  run(closed_port());
  return count_fds();
}

// ---------------------------------------------------------------------------------------------
// Back-pressure: a writer flooding a peer that does not read

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

inline Task<void> flood(StreamWriter w, Flood* f, std::size_t chunks) {
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
inline Task<bool> flood_stalled(Flood* f) {
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
inline Task<std::size_t> drain_reader(StreamReader& r, std::size_t offset, std::size_t total,
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

inline constexpr std::size_t kReceiverLimit = 16 * 1024;
// The most a reader holds: reading pauses above 2 x limit, after at most one read's chunk.
inline constexpr std::size_t kReceiverBound = 2 * kReceiverLimit + kChunk;
// Far more than the kernel's socket buffers on both ends, so that the flood has to stall.
inline constexpr std::size_t kFloodChunks = 512;  // 32 MiB

}  // namespace concur::testing::streams
