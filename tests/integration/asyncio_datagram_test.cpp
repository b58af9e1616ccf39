// Tests of concur/asyncio/datagram.hpp: UDP sockets (create_datagram_endpoint, DatagramSocket).
// The datagram cases of CPython's Lib/test/test_asyncio/test_events.py (echo through a bound and a
// connected socket, IPv4 and IPv6), plus what the awaitable recv_from() adds: its queue and its
// bound, cancellation, closing while a task receives, errors in the datagrams' place, and a socket
// that outlives its loop. Everything runs on loopback; every run is bounded by wait_for.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Datagram;
using asyncio::DatagramOptions;
using asyncio::DatagramSocket;
using asyncio::SocketAddress;
using asyncio::Task;
using concur::CancelledError;
using concur::OSError;

// Every run ends well within this, or the test has failed (wait_for throws TimeoutError).
constexpr auto kBound = 60s;

class DatagramTest : public concur::testing::AsyncioTest {
 protected:
  DatagramTest() { run_guard = kBound; }
};

// Echoes `count` datagrams back to their senders.
Task<void> echo_server(DatagramSocket socket, int count) {
  for (int i = 0; i < count; ++i) {
    Datagram d = co_await socket.recv_from();
    socket.send_to(d.data, d.from);
  }
}

Task<void> echo_round_trip(std::string host) {
  DatagramSocket server = co_await asyncio::create_datagram_endpoint(host, 0);
  const SocketAddress address = server.sockname();
  EXPECT_EQ(address.host, host);
  EXPECT_NE(address.port, 0);
  EXPECT_FALSE(server.peername().has_value());
  Task<void> echo = asyncio::create_task(echo_server(server, 4));
  server = DatagramSocket();  // the echo task's handle keeps the socket open

  // A connected client: send() goes to the server; what comes back is from the server.
  DatagramSocket client = co_await asyncio::create_datagram_endpoint(host, 0, host, address.port);
  std::optional<SocketAddress> peer = client.peername();
  EXPECT_TRUE(peer.has_value());
  EXPECT_EQ(peer.value_or(SocketAddress{}).port, address.port);
  EXPECT_EQ(client.sockname().family, address.family);
  client.send("hello");
  Datagram reply = co_await client.recv_from();
  EXPECT_EQ(reply.data, "hello");
  EXPECT_EQ(reply.from.host, host);
  EXPECT_EQ(reply.from.port, address.port);

  // An unconnected one: send_to() names the address each time.
  DatagramSocket other = co_await asyncio::create_datagram_endpoint(host, 0);
  other.send_to("world", address);
  reply = co_await other.recv_from();
  EXPECT_EQ(reply.data, "world");
  EXPECT_EQ(reply.from.port, address.port);
  other.send_to("", address);  // an empty datagram is a datagram
  reply = co_await other.recv_from();
  EXPECT_EQ(reply.data, "");
  // Binary data, the largest IPv4 payload.
  std::string big(65507, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  other.send_to(big, address);
  reply = co_await other.recv_from();
  EXPECT_EQ(reply.data, big);

  co_await echo;
  EXPECT_EQ(client.dropped(), 0u);
  EXPECT_EQ(other.dropped(), 0u);
  client.close();
  other.close();
}

TEST_F(DatagramTest, EchoOverIPv4) {
  run(echo_round_trip("127.0.0.1"));
}

Task<bool> ipv6_loopback_available() {
  try {
    DatagramSocket probe = co_await asyncio::create_datagram_endpoint("::1", 0);
    co_return probe.sockname().family == AF_INET6;
  } catch (const OSError&) {
    co_return false;
  }
}

TEST_F(DatagramTest, EchoOverIPv6) {
  if (!run(ipv6_loopback_available())) GTEST_SKIP() << "::1 is not available on this host";
  run(echo_round_trip("::1"));
}

// Datagrams that arrive while nobody waits are queued, in order.
Task<void> queue_while_nobody_waits() {
  DatagramSocket receiver = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  DatagramSocket sender = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  const std::string names[3] = {"d0", "d1", "d2"};
  for (const std::string& name : names) sender.send_to(name, receiver.sockname());
  for (int turns = 0; receiver.queued() < 3 && turns < 20'000; ++turns) {
    co_await asyncio::sleep(1ms);
  }
  EXPECT_EQ(receiver.queued(), 3u);
  for (int i = 0; i < 3; ++i) {
    Datagram d = co_await receiver.recv_from();
    EXPECT_EQ(d.data, names[i]);
    EXPECT_EQ(d.from.port, sender.sockname().port);
  }
  EXPECT_EQ(receiver.queued(), 0u);
}

TEST_F(DatagramTest, DatagramsThatArriveWhileNobodyWaitsAreQueued) {
  run(queue_while_nobody_waits());
}

// The queue is bounded: beyond max_queued the oldest are dropped, and counted.
Task<void> bounded_queue() {
  DatagramSocket receiver = co_await asyncio::create_datagram_endpoint(
      "127.0.0.1", 0, "", 0, DatagramOptions{.max_queued = 4});
  DatagramSocket sender = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  for (int i = 0; i < 10; ++i) sender.send_to(std::to_string(i), receiver.sockname());
  for (int turns = 0; receiver.queued() + receiver.dropped() < 10 && turns < 20'000; ++turns) {
    co_await asyncio::sleep(1ms);
  }
  EXPECT_EQ(receiver.queued(), 4u);
  EXPECT_EQ(receiver.dropped(), 6u);
  for (int i = 6; i < 10; ++i) {
    Datagram d = co_await receiver.recv_from();
    EXPECT_EQ(d.data, std::to_string(i)) << "the newest are kept";
  }
}

TEST_F(DatagramTest, TheQueueDropsTheOldestBeyondItsBound) {
  run(bounded_queue());
}

// Many datagrams from several senders, counted without regard to order. UDP has no flow control:
// the senders keep at most kWindow datagrams in flight between them, so that the kernel's buffers
// never overflow on loopback.
struct Tally {
  std::vector<int> seen;  // per datagram id
  int sent = 0;
  int received = 0;
};

Task<void> count_datagrams(DatagramSocket socket, Tally* tally, int total) {
  while (tally->received < total) {
    Datagram d = co_await socket.recv_from();
    int id = std::stoi(d.data);
    ++tally->received;
    if (id < 0 || id >= total) {
      ADD_FAILURE() << "unexpected datagram " << d.data;
      continue;
    }
    ++tally->seen[static_cast<std::size_t>(id)];
  }
}

Task<void> send_datagrams(SocketAddress to, int first, int count, Tally* tally) {
  constexpr int kWindow = 64;
  DatagramSocket socket = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  for (int i = 0; i < count; ++i) {
    while (tally->sent - tally->received >= kWindow) co_await asyncio::sleep(1ms);
    socket.send_to(std::to_string(first + i), to);
    ++tally->sent;
    if (i % 8 == 7) co_await asyncio::sleep(0ms);  // let the other senders interleave
  }
}

Task<void> many_datagrams(int senders, int per_sender) {
  DatagramSocket receiver = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  const int total = senders * per_sender;
  Tally tally;
  tally.seen.assign(static_cast<std::size_t>(total), 0);
  Task<void> counter = asyncio::create_task(count_datagrams(receiver, &tally, total));
  std::vector<Task<void>> tasks;
  for (int s = 0; s < senders; ++s) {
    tasks.push_back(send_datagrams(receiver.sockname(), s * per_sender, per_sender, &tally));
  }
  co_await asyncio::gather(std::move(tasks));
  co_await counter;
  EXPECT_EQ(tally.received, total);
  int missing = 0, duplicated = 0;
  for (int n : tally.seen) {
    missing += n == 0;
    duplicated += n > 1;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(receiver.dropped(), 0u);
}

TEST_F(DatagramTest, ManyDatagramsFromSeveralSendersAllArrive) {
  run(many_datagrams(4, 2000 / concur::testing::kStressScale));
}

// A cancelled recv_from() throws CancelledError and loses nothing: the socket goes on.
Task<void> cancel_recv() {
  DatagramSocket receiver = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  DatagramSocket sender = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  Task<Datagram> waiting = asyncio::create_task(receiver.recv_from());
  co_await asyncio::sleep(5ms);
  EXPECT_FALSE(waiting.done());
  EXPECT_TRUE(waiting.cancel());
  bool cancelled = false;
  try {
    co_await waiting;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(waiting.cancelled());
  sender.send_to("after", receiver.sockname());
  Datagram d = co_await receiver.recv_from();
  EXPECT_EQ(d.data, "after");
}

TEST_F(DatagramTest, CancellingRecvFromRaisesCancelledErrorAndTheSocketGoesOn) {
  run(cancel_recv());
}

// Receives one datagram, then cancels `other`, a recv_from() task already handed the next one
// (woken, not yet run): that datagram must come back to the queue.
Task<std::string> receive_then_cancel(DatagramSocket socket, Task<Datagram>* other) {
  Datagram d = co_await socket.recv_from();
  other->cancel();
  co_return d.data;
}

Task<void> cancel_after_hand_over() {
  DatagramSocket receiver = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  DatagramSocket sender = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  Task<Datagram> second;
  Task<std::string> first = asyncio::create_task(receive_then_cancel(receiver, &second));
  second = asyncio::create_task(receiver.recv_from());
  co_await asyncio::sleep(0ms);  // both are waiting now, first in line first
  // Both arrive in one poll: "a" goes to the first waiter, "b" to the second.
  sender.send_to("a", receiver.sockname());
  sender.send_to("b", receiver.sockname());
  std::string got = co_await first;
  EXPECT_EQ(got, "a");
  bool cancelled = false;
  try {
    co_await second;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  // It is queued again, so this returns at once; the bound only turns a loss into a failure.
  Datagram d = co_await asyncio::wait_for(receiver.recv_from(), 10s);
  EXPECT_EQ(d.data, "b") << "the datagram handed to the cancelled call was lost";
}

TEST_F(DatagramTest, ADatagramHandedToACancelledCallIsNotLost) {
  run(cancel_after_hand_over());
}

// close() while a task waits in recv_from(): it throws OSError EBADF, as does every later call.
Task<void> close_while_receiving() {
  DatagramSocket socket = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  const SocketAddress address = socket.sockname();
  Task<Datagram> waiting = asyncio::create_task(socket.recv_from());
  Task<Datagram> waiting2 = asyncio::create_task(socket.recv_from());
  co_await asyncio::sleep(5ms);
  EXPECT_FALSE(waiting.done());
  socket.close();
  socket.close();  // idempotent
  EXPECT_TRUE(socket.is_closing());
  for (Task<Datagram>* t : {&waiting, &waiting2}) {
    int error = 0;
    try {
      co_await *t;
    } catch (const OSError& e) {
      error = e.code().value();
    }
    EXPECT_EQ(error, EBADF);
  }
  int error = 0;
  try {
    co_await socket.recv_from();
  } catch (const OSError& e) {
    error = e.code().value();
  }
  EXPECT_EQ(error, EBADF);
  EXPECT_THROW(socket.send_to("x", address), OSError);
  EXPECT_EQ(socket.sockname().port, 0);
}

TEST_F(DatagramTest, CloseWhileReceivingRaisesOSErrorEBADF) {
  run(close_while_receiving());
}

// An ICMP "port unreachable" for a connected socket takes a datagram's place: recv_from() throws
// ConnectionRefusedError, and the socket stays usable.
Task<void> refused() {
  std::uint16_t port = 0;
  {
    DatagramSocket probe = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
    port = probe.sockname().port;
  }
  co_await asyncio::sleep(1ms);  // its close completes: nobody listens on `port` now
  DatagramSocket client =
      co_await asyncio::create_datagram_endpoint("127.0.0.1", 0, "127.0.0.1", port);
  bool refused = false;
  for (int attempt = 0; attempt < 50 && !refused; ++attempt) {
    try {
      client.send("anyone?");
      co_await asyncio::wait_for(client.recv_from(), 200ms);
      ADD_FAILURE() << "a datagram came from a port nobody listens on";
    } catch (const concur::ConnectionRefusedError&) {
      refused = true;  // from recv_from(), or from send() when the error was already pending
    } catch (const concur::TimeoutError&) {
      // an ICMP message may be rate-limited: try again
    }
  }
  EXPECT_TRUE(refused);
  EXPECT_FALSE(client.is_closing());
}

TEST_F(DatagramTest, APortUnreachableIsAConnectionRefusedErrorFromRecvFrom) {
  run(refused());
}

Task<void> misuse() {
  DatagramSocket socket = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  const SocketAddress named{"localhost", 9, 0};
  EXPECT_THROW(socket.send_to("x", named), std::invalid_argument);
  int error = 0;
  try {
    socket.send("not connected");
  } catch (const OSError& e) {
    error = e.code().value();
  }
  EXPECT_EQ(error, EDESTADDRREQ);
  // Binding an address in use.
  error = 0;
  try {
    co_await asyncio::create_datagram_endpoint("127.0.0.1", socket.sockname().port);
  } catch (const OSError& e) {
    error = e.code().value();
  }
  EXPECT_EQ(error, EADDRINUSE);
  DatagramSocket empty;
  EXPECT_THROW(empty.send("x"), concur::InvalidStateError);
  EXPECT_THROW(empty.recv_from(), concur::InvalidStateError);
  empty.close();  // a no-op
}

TEST_F(DatagramTest, MisuseAndBindErrorsAreExceptions) {
  run(misuse());
}

// The handle is reference-counted: the last one closes the socket.
Task<void> last_handle_closes() {
  DatagramSocket a = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  const std::uint16_t port = a.sockname().port;
  DatagramSocket b = a;
  a = DatagramSocket();
  EXPECT_FALSE(b.is_closing());
  b = DatagramSocket();
  co_await asyncio::sleep(1ms);  // the close completes
  // The port is free again.
  DatagramSocket again = co_await asyncio::create_datagram_endpoint("127.0.0.1", port);
  EXPECT_EQ(again.sockname().port, port);
}

TEST_F(DatagramTest, TheLastHandleClosesTheSocket) {
  run(last_handle_closes());
}

Task<std::uint16_t> open_and_receive(DatagramSocket* out, Task<Datagram>* receiving) {
  *out = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
  *receiving = asyncio::create_task(out->recv_from());
  co_return out->sockname().port;
}

// A socket whose handle outlives the loop: close() does not wait for it; the socket is closed and
// says so; the receiving task was cancelled.
TEST(DatagramLoopClose, ASocketOutlivingItsLoopIsClosed) {
  DatagramSocket socket;
  Task<Datagram> receiving;
  {
    asyncio::EventLoop loop;
    loop.run_until_complete(open_and_receive(&socket, &receiving));
    loop.close();
  }
  EXPECT_TRUE(receiving.cancelled());
  EXPECT_TRUE(socket.is_closing());
  EXPECT_EQ(socket.sockname().port, 0);
  int error = 0;
  try {
    socket.send_to("x", SocketAddress{"127.0.0.1", 9});
  } catch (const OSError& e) {
    error = e.code().value();
  }
  EXPECT_EQ(error, EBADF);
}

}  // namespace
