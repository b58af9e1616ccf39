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
// concur::OSError (EBADF) for a call on a closed Connection, or one in the wrong direction on a
// one-way Pipe end (Python's OSError "handle is closed", "connection is read-only");
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
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/futures.hpp"
#include "concur/multiprocessing/serialization.hpp"

namespace concur::multiprocessing {

// Python's multiprocessing.BufferTooShort: recv_bytes_into() got a message longer than the room
// in the buffer; message() is the whole of it (it has been read from the connection).
class BufferTooShort : public std::runtime_error {
 public:
  BufferTooShort(std::string message, std::size_t room)
      : std::runtime_error("concur::multiprocessing::Connection::recv_bytes_into(): a message of " +
                           std::to_string(message.size()) + " bytes does not fit in the " +
                           std::to_string(room) +
                           " bytes after the offset; it is in message(); pass a bigger buffer"),
        message_(std::move(message)) {}
  const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

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
  // Python's send_bytes(buf, offset, size): sends buffer[offset, offset + size) (size unset: to
  // the end). std::invalid_argument (Python's ValueError) if that range is not inside buffer.
  void send_bytes(std::string_view buffer, std::size_t offset,
                  std::optional<std::size_t> size = std::nullopt);
  std::string recv_bytes();
  // Python's recv_bytes_into(buf, offset): reads the next bytes message into buffer at offset and
  // returns its length. A message longer than the room after offset throws BufferTooShort, which
  // holds the whole message (it is consumed); an offset past the end is std::invalid_argument.
  std::size_t recv_bytes_into(std::span<std::byte> buffer, std::size_t offset = 0);

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

namespace connection {

// One thing wait() watches: a Connection (ready when recv() would not block: a message, or the
// end of the stream) or a descriptor such as Process::sentinel() (ready when readable).
class Waitable {
 public:
  Waitable(Connection& connection) noexcept : connection_(&connection) {}  // NOLINT: implicit
  Waitable(int fd) noexcept : fd_(fd) {}                                   // NOLINT: implicit
  Connection* connection() const noexcept { return connection_; }
  int fd() const noexcept { return connection_ ? connection_->fileno() : fd_; }

 private:
  Connection* connection_ = nullptr;
  int fd_ = -1;
};

// Python's multiprocessing.connection.wait(object_list, timeout): blocks until at least one of
// `objects` is ready or the timeout passes (unset: no limit), and returns the indices of those
// ready, in order (empty on timeout). Serves many children and pipes from one thread:
//   for (std::size_t i : connection::wait({p1.sentinel(), p2.sentinel(), conn})) ...
// Errors: concur::OSError for a closed Connection or a write-only Pipe end among them.
std::vector<std::size_t> wait(const std::vector<Waitable>& objects,
                              std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

}  // namespace connection

}  // namespace concur::multiprocessing
