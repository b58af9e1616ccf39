// concur/multiprocessing/connection.hpp: Pipe() and Connection, multiprocessing's two-ended
// channel between processes, with typed messages.
//
// Pipe() returns two connected ends. send(value) serialises the value (see serialization.hpp)
// and writes it as one frame; recv<T>() returns the next frame decoded as T. A frame records the
// sender's type, so recv<T>() of a message sent as another type throws concur::TypeError naming
// both. Messages arrive whole and in order.
//
// Passing an end to a child: give it to the Process (or task) as an argument: with fork the child
// has it already; with spawn and forkserver its descriptor is passed to the child (SCM_RIGHTS).
// Then close your copy of the child's end, as in Python.
//
// Blocking: send() blocks while the other side's buffer is full (back-pressure), recv() until a
// message arrives; both take an optional timeout (concur::TimeoutError). poll(timeout) says
// whether recv() would return at once.
// Errors: concur::EOFError when the other end is closed (send), or closed and drained (recv);
// concur::ProtocolError for corrupt bytes or a message over the size limit (default 8 GiB; set
// with set_max_message_bytes()), after which the connection is closed; concur::TypeError as above.
// Thread safety: one thread sends and one receives at a time on an end (as Python's Connection).
// Lifetime: an end closes its descriptor when destroyed (move-only).
//
// Example:
//   auto [parent, child] = concur::multiprocessing::Pipe();
//   concur::multiprocessing::Process p(echo_twice, std::move(child));   // echo_twice registered
//   p.start();
//   parent.send(std::string("hi"));
//   std::string reply = parent.recv<std::string>();
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/futures.hpp"
#include "concur/multiprocessing/serialization.hpp"

namespace concur::multiprocessing {

class Connection {
 public:
  Connection() noexcept;
  // Adopts a connected socket or pipe end.
  explicit Connection(int fd, bool readable = true, bool writable = true);
  ~Connection();
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  template <class T>
  void send(const T& value) {
    send_value(value, std::nullopt);
  }
  template <class T, class Rep, class Period>
  void send(const T& value, std::chrono::duration<Rep, Period> timeout) {
    send_value(value, concur::detail::deadline_after(timeout));
  }

  template <class T>
  T recv() {
    return decode<T>(receive_tagged(detail::type_tag<T>(), std::nullopt));
  }
  template <class T, class Rep, class Period>
  T recv(std::chrono::duration<Rep, Period> timeout) {
    return decode<T>(
        receive_tagged(detail::type_tag<T>(), concur::detail::deadline_after(timeout)));
  }

  // Raw bytes, as Python's send_bytes / recv_bytes.
  void send_bytes(std::string_view bytes);
  std::string recv_bytes();

  // True if recv() would not block (a message, or the end of the stream, is waiting).
  bool poll(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::zero());

  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  int fileno() const noexcept { return fd_; }
  void set_max_message_bytes(std::uint64_t bytes);

  // Crossing to another process: the descriptor travels (see the top of this file).
  template <class Archive>
  void save(Archive& archive) const {
    archive(detail::export_fd(fd_, "Connection"), readable_, writable_);
  }
  template <class Archive>
  void load(Archive& archive) {
    std::uint32_t index = 0;
    bool readable = true;
    bool writable = true;
    archive(index, readable, writable);
    *this = Connection(detail::import_fd(index, "Connection"), readable, writable);
  }

 private:
  struct Received {
    std::string type_name;
    std::string payload;
    std::vector<int> fds;
  };
  template <class T>
  void send_value(const T& value, const concur::detail::Deadline& deadline) {
    detail::FdOutbox outbox;  // collects the descriptors of connections inside `value`
    std::string payload = serialize(value);
    send_tagged(detail::type_tag<T>(), detail::type_name(typeid(T)), payload, outbox.fds(),
                deadline);
  }
  void send_tagged(std::uint64_t tag, const std::string& type_name, const std::string& payload,
                   const std::vector<int>& fds, const concur::detail::Deadline& deadline);
  Received receive_tagged(std::uint64_t tag, const concur::detail::Deadline& deadline);
  template <class T>
  T decode(Received r) {
    detail::FdInbox inbox(std::move(r.fds));
    return deserialize<T>(r.payload);
  }

  int fd_ = -1;
  bool readable_ = true;
  bool writable_ = true;
  struct Reader;
  std::unique_ptr<Reader> reader_;
};

// Two connected ends: both send and receive (duplex, a socket pair), or the first only receives
// and the second only sends (duplex = false, an OS pipe), as Python's Pipe().
std::pair<Connection, Connection> Pipe(bool duplex = true);

}  // namespace concur::multiprocessing
