// Server::close_clients() and Server::abort_clients() (Python 3.13), over real sockets on
// 127.0.0.1: CPython's test_server.py (test_close_clients, test_abort_clients) carried over,
// with what each promises for data still queued: close_clients sends it first, abort_clients
// drops it and resets the connection. Neither stops the server listening.
// (Python's test_abort_clients checks the transports; here the client's side shows the data.)
#include <gtest/gtest.h>

#include <chrono>
#include <concur/asyncio.hpp>
#include <concur/errors.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"

namespace {

namespace asyncio = concur::asyncio;
using asyncio::Server;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using asyncio::Task;
using concur::testing::AsyncioTest;
using namespace std::chrono_literals;

using ServerClientsTest = AsyncioTest;

// More than loopback's socket buffers hold, so that some of it stays queued in the writer while
// the client does not read.
constexpr std::size_t kBig = 32u << 20;

struct Seen {
  int handlers = 0;
  std::size_t queued = 0;  // bytes still queued in the server's writer after its write()
};

Task<void> write_big_then_wait(StreamReader r, StreamWriter w, std::shared_ptr<Seen> seen) {
  ++seen->handlers;
  w.write(std::string(kBig, 'x'));
  seen->queued = w.write_buffer_size();
  try {
    (void)co_await r.read();  // until the connection ends
  } catch (const concur::ConnectionError&) {
  }
}

// Reads until EOF or a reset; returns the bytes read and whether a reset ended it.
Task<std::pair<std::size_t, bool>> drain_client(StreamReader r) {
  std::size_t got = 0;
  try {
    for (std::string chunk = co_await r.read(1 << 20); !chunk.empty();
         chunk = co_await r.read(1 << 20)) {
      got += chunk.size();
    }
  } catch (const concur::ConnectionResetError&) {
    co_return std::pair{got, true};
  }
  co_return std::pair{got, false};
}

template <class P>
Task<bool> until(P predicate) {
  for (int i = 0; i < 5000 && !predicate(); ++i) co_await asyncio::sleep(1ms);
  co_return predicate();
}

Task<void> clients_body(bool abort) {
  auto seen = std::make_shared<Seen>();
  asyncio::ClientHandler handler = [seen](StreamReader r, StreamWriter w) {
    return write_big_then_wait(std::move(r), std::move(w), seen);
  };
  Server server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
  auto client = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_TRUE(co_await until([&] { return seen->handlers == 1; }));
  EXPECT_GT(seen->queued, 0u) << "the test needs data still queued in the server's writer";

  if (abort) {
    server.abort_clients();
  } else {
    server.close_clients();
  }
  const auto [got, reset] = co_await drain_client(client.reader);
  if (abort) {
    // The reset is sent (SO_LINGER 0), but Linux lets the peer read what its socket already
    // holds and then reports the end as EOF, not ECONNRESET: either ends the read here.
    EXPECT_LT(got, kBig) << "abort_clients() sent what was queued";
  } else {
    EXPECT_EQ(got, kBig) << "close_clients() must send what was queued first";
    EXPECT_FALSE(reset);
  }
  EXPECT_TRUE(co_await until([&] { return server.active_connections() == 0; }));

  // The server still listens: a new client is served.
  EXPECT_TRUE(server.is_serving());
  auto second = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_TRUE(co_await until([&] { return seen->handlers == 2; }));
  second.writer.close();
  co_await second.writer.wait_closed();
  client.writer.close();
  co_await client.writer.wait_closed();
  server.close();
  server.abort_clients();
  co_await server.wait_closed();
  EXPECT_EQ(server.active_connections(), 0u);
}

TEST_F(ServerClientsTest, CloseClientsSendsWhatIsQueuedThenClosesAndKeepsListening) {
  run(clients_body(false));
}

TEST_F(ServerClientsTest, AbortClientsDropsWhatIsQueuedResetsAndKeepsListening) {
  run(clients_body(true));
}

// Both are harmless on an empty handle, with no client, and twice.
TEST_F(ServerClientsTest, CloseAndAbortClientsWithNoClientsDoNothing) {
  Server empty;
  empty.close_clients();
  empty.abort_clients();
  auto body = []() -> Task<void> {
    asyncio::ClientHandler handler = [](StreamReader, StreamWriter) -> Task<void> { co_return; };
    Server server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    server.close_clients();
    server.abort_clients();
    server.abort_clients();
    EXPECT_TRUE(server.is_serving());
    server.close();
    co_await server.wait_closed();
  };
  run(body());
}

}  // namespace
