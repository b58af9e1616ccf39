// concur/asyncio/datagram.hpp: UDP sockets, Python's loop.create_datagram_endpoint with the
// protocol's callbacks turned into an awaitable recv_from(), on libuv.
//
//   DatagramSocket server = co_await asyncio::create_datagram_endpoint("127.0.0.1", 0);
//   for (;;) {
//     Datagram d = co_await server.recv_from();
//     server.send_to(d.data, d.from);                       // echo
//   }
//
//   DatagramSocket client = co_await asyncio::create_datagram_endpoint(
//       "127.0.0.1", 0, "127.0.0.1", server.sockname().port);
//   client.send("ping");                                     // connected: to the remote address
//   Datagram reply = co_await client.recv_from();
//
// Receiving: the socket receives from the moment it is created. A datagram that arrives while a
// recv_from() waits goes to the first waiter (FIFO); otherwise it is queued. The queue is bounded
// (DatagramOptions::max_queued, 1024 datagrams by default): when it is full, the oldest queued
// datagram is dropped to make room and counted by dropped() (UDP may lose datagrams anyway; a
// slow receiver loses old ones, never the newest). Datagrams are received into a 64 KiB buffer:
// every UDP payload over IPv4 fits (65,507 bytes at most); a larger IPv6 jumbogram is truncated.
//
// Sending: send_to() and send() never wait: the datagram is sent at once when the socket takes it
// (uv_udp_try_send), or copied and queued in libuv (send_queue_size() tells how many bytes wait);
// datagrams are sent in the order of the calls. There is no back-pressure (as Python's
// DatagramTransport without pause_writing): a sender faster than the network grows the queue.
//
// Errors: an error the call itself meets (a bad address, EMSGSIZE, a network unreachable, a
// pending ICMP error reported on send) is thrown by send_to() / send() as a concur exception
// (OSError, ConnectionRefusedError...). An error that comes later (a queued send that fails, an
// ICMP "port unreachable" reported on receive for a connected socket) is what Python passes to
// error_received(): it takes a datagram's place in the queue, in arrival order, and the
// recv_from() that reaches it throws it (ConnectionRefusedError...); the socket stays usable.
//
// Closing: close() (idempotent) stops receiving, drops the queued datagrams and closes the socket;
// a recv_from() waiting, and every later call that sends or receives, throws OSError with errno
// EBADF ("the socket is closed"). Datagrams queued in libuv for sending are dropped.
//
// Handles: DatagramSocket is a reference-counted handle (a copy is another reference to the same
// socket). The socket closes when close() is called or the last handle is gone; a recv_from()
// task holds a reference while it runs. A handle may outlive its loop: EventLoop::close() closes
// the socket (then sockname() is empty and the calls throw OSError EBADF); the loop does not wait
// for open sockets when it closes.
// Cancellation: recv_from() is cancellable (CancelledError); a datagram already handed to the
// cancelled call is put back at the front of the queue, so nothing is lost.
// Thread safety: none; a socket belongs to the thread of the loop that created it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "concur/asyncio/streams.hpp"
#include "concur/asyncio/task.hpp"

namespace concur::asyncio {

namespace detail {
struct DatagramState;
void add_ref(DatagramState* s) noexcept;
void release(DatagramState* s) noexcept;
}  // namespace detail

// One datagram received: its bytes and the address it came from.
struct Datagram {
  std::string data;
  SocketAddress from;
};

struct DatagramOptions {
  // Datagrams received and not yet taken by recv_from(); beyond this, the oldest is dropped (and
  // counted by dropped()). 0: a datagram that arrives while no recv_from() waits is dropped.
  std::size_t max_queued = 1024;
  // SO_REUSEPORT: several sockets may bind the same address and port (the kernel spreads the
  // datagrams among them), as Python's reuse_port.
  bool reuse_port = false;
  // SO_BROADCAST: may send to a broadcast address (Python's allow_broadcast).
  bool allow_broadcast = false;
};

class DatagramSocket {
 public:
  DatagramSocket() = default;
  DatagramSocket(const DatagramSocket& other) noexcept : s_(other.s_) {
    if (s_) detail::add_ref(s_);
  }
  DatagramSocket(DatagramSocket&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
  DatagramSocket& operator=(DatagramSocket other) noexcept {
    std::swap(s_, other.s_);
    return *this;
  }
  ~DatagramSocket() {
    if (s_) detail::release(s_);
  }

  // Sends one datagram to `to` (a numeric address: "127.0.0.1", "::1"; resolve names first with
  // asyncio::getaddrinfo). std::invalid_argument for a host that is not numeric; OSError EISCONN
  // on a connected socket (use send()); OSError EBADF once closed; see Errors above.
  void send_to(std::string_view data, const SocketAddress& to);
  // Sends one datagram to the remote address of a connected socket (OSError EDESTADDRREQ if it
  // is not connected).
  void send(std::string_view data);
  // The next datagram (or the error that came in its place, thrown). Waits while none is queued;
  // cancellable. Several tasks may wait at once: each datagram goes to one of them, FIFO.
  // OSError EBADF when the socket is (or gets) closed.
  Task<Datagram> recv_from() const;

  // The local address (the port chosen for port 0); empty (port 0) once closed.
  SocketAddress sockname() const;
  // The remote address of a connected socket; std::nullopt when not connected or closed.
  std::optional<SocketAddress> peername() const;
  // See Closing above. Idempotent; a no-op on an empty handle.
  void close();
  bool is_closing() const;

  // Datagrams received and waiting for recv_from().
  std::size_t queued() const;
  // Datagrams dropped because the queue was full (since the socket was created).
  std::uint64_t dropped() const;
  // Bytes of datagrams queued in libuv, not yet taken by the kernel.
  std::size_t send_queue_size() const;

  bool valid() const { return s_ != nullptr; }

  explicit DatagramSocket(detail::DatagramState* s) noexcept : s_(s) {}  // adopts a reference
  detail::DatagramState* state() const noexcept { return s_; }           // internal

 private:
  detail::DatagramState* require(const char* who) const;
  detail::DatagramState* s_ = nullptr;
};

// Creates a UDP socket bound to local_host:local_port (port 0: any free port; host "": the
// wildcard address, 0.0.0.0, or :: when the remote host is IPv6) and, when remote_host is not
// empty, connected to remote_host:remote_port. Either host may be a name: it is resolved (on
// libuv's thread pool), and the first pair of a local and a remote address of the same family that
// binds and connects is used. IPv4 and IPv6.
// Errors: OSError (EADDRINUSE, EADDRNOTAVAIL when ::1 is not configured, a name not found...).
// (The remote address is two plain parameters rather than a SocketAddress on purpose: GCC 12
// miscompiles an aggregate temporary that holds a std::string inside a co_await expression, e.g.
// `co_await f(SocketAddress{host, port})`: its short string is moved bitwise and freed wrongly.
// Build such aggregates in a variable before the co_await.)
Task<DatagramSocket> create_datagram_endpoint(std::string local_host, std::uint16_t local_port,
                                              std::string remote_host = {},
                                              std::uint16_t remote_port = 0,
                                              DatagramOptions options = {});

}  // namespace concur::asyncio
