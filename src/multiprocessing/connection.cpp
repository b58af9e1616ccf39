#include "concur/multiprocessing/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "concur/errors.hpp"
#include "multiprocessing/frames.hpp"
#include "platform/descriptors.hpp"

namespace concur::multiprocessing {

// A received user message carries its sender's type: tag (in the header) and name (a prefix of
// the payload: u32 length, then the name), so that a mismatch can name both types.
struct Connection::Reader {
  detail::FrameDecoder decoder;
};

Connection::Connection() noexcept = default;

Connection::Connection(int fd, bool readable, bool writable)
    : fd_(fd), readable_(readable), writable_(writable), reader_(std::make_unique<Reader>()) {}

Connection::~Connection() {
  close();
}

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      readable_(other.readable_),
      writable_(other.writable_),
      reader_(std::move(other.reader_)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    readable_ = other.readable_;
    writable_ = other.writable_;
    reader_ = std::move(other.reader_);
  }
  return *this;
}

void Connection::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Connection::set_max_message_bytes(std::uint64_t bytes) {
  if (reader_) reader_->decoder.set_max_frame_bytes(bytes);
}

namespace {

// Python raises OSError for both ("handle is closed", "connection is read-only").
void check_open(int fd, bool allowed, const char* call, const char* direction) {
  if (fd < 0) {
    throw OSError(EBADF, std::string("concur::multiprocessing::Connection::") + call +
                             "(): the connection is closed (handle is closed); use it before "
                             "close(), or open a new Pipe()");
  }
  if (!allowed) {
    throw OSError(EBADF, std::string("concur::multiprocessing::Connection::") + call +
                             "(): this end of a one-way Pipe cannot " + direction +
                             "; use the other end, or Pipe(true) for a two-way one");
  }
}

}  // namespace

void Connection::send_tagged(std::uint64_t tag, const std::string& type_name,
                             const std::string& payload, const std::vector<int>& fds,
                             const concur::detail::Deadline& deadline) {
  check_open(fd_, writable_, "send", "send");
  std::string body;
  const auto name_length = static_cast<std::uint32_t>(type_name.size());
  body.append(reinterpret_cast<const char*>(&name_length), 4);
  body.append(type_name);
  body.append(payload);
  std::string frame;
  detail::append_frame(frame, detail::kUserMessage, tag, body,
                       static_cast<std::uint16_t>(fds.size()));
  detail::send_all(fd_, frame, fds, deadline);
}

Connection::Received Connection::receive_tagged(std::uint64_t tag,
                                                const concur::detail::Deadline& deadline) {
  check_open(fd_, readable_, "recv", "receive");
  std::optional<detail::Frame> frame;
  try {
    frame = detail::receive_frame(fd_, reader_->decoder, deadline);
  } catch (const ProtocolError&) {
    close();
    throw;
  }
  if (!frame) throw EOFError("concur::multiprocessing::Connection::recv(): the other end closed");
  if (frame->kind != detail::kUserMessage || frame->payload.size() < 4) {
    for (int fd : frame->fds) ::close(fd);
    close();
    throw ProtocolError("concur::multiprocessing::Connection::recv(): not a message frame");
  }
  std::uint32_t name_length = 0;
  std::memcpy(&name_length, frame->payload.data(), 4);
  if (name_length > frame->payload.size() - 4) {
    for (int fd : frame->fds) ::close(fd);
    close();
    throw ProtocolError("concur::multiprocessing::Connection::recv(): a corrupt message header");
  }
  Received r{frame->payload.substr(4, name_length), frame->payload.substr(4 + name_length),
             std::move(frame->fds)};
  if (frame->tag != tag) {
    for (int fd : r.fds) ::close(fd);
    throw TypeError("concur::multiprocessing::Connection::recv(): the message was sent as " +
                    r.type_name + ", not the type asked for; recv<" + r.type_name +
                    ">() would read it");
  }
  return r;
}

void Connection::send_bytes(std::string_view bytes) {
  send(std::string(bytes));
}

void Connection::send_bytes(std::string_view buffer, std::size_t offset,
                            std::optional<std::size_t> size) {
  if (offset > buffer.size()) {
    throw std::invalid_argument(
        "concur::multiprocessing::Connection::send_bytes(): buffer length < offset (" +
        std::to_string(buffer.size()) + " < " + std::to_string(offset) +
        "); pass an offset within the buffer");
  }
  const std::size_t n = size.value_or(buffer.size() - offset);
  if (n > buffer.size() - offset) {
    throw std::invalid_argument(
        "concur::multiprocessing::Connection::send_bytes(): buffer length < offset + size (" +
        std::to_string(buffer.size()) + " < " + std::to_string(offset) + " + " + std::to_string(n) +
        "); pass a size that fits after the offset");
  }
  send_bytes(buffer.substr(offset, n));
}

std::string Connection::recv_bytes() {
  return recv<std::string>();
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buffer, std::size_t offset) {
  if (offset > buffer.size()) {
    throw std::invalid_argument(
        "concur::multiprocessing::Connection::recv_bytes_into(): offset out of bounds (" +
        std::to_string(offset) + " > buffer length " + std::to_string(buffer.size()) + ")");
  }
  std::string message = recv_bytes();
  if (message.size() > buffer.size() - offset) {
    throw BufferTooShort(std::move(message), buffer.size() - offset);
  }
  std::memcpy(buffer.data() + offset, message.data(), message.size());
  return message.size();
}

bool Connection::poll(std::chrono::nanoseconds timeout) {
  check_open(fd_, readable_, "poll", "receive");
  if (reader_->decoder.has_buffered_bytes()) return true;
  return detail::wait_readable(fd_, concur::detail::deadline_after(timeout));
}

namespace connection {

namespace {

std::vector<std::size_t> ready_now(const std::vector<Waitable>& objects) {
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (Connection* c = objects[i].connection()) {
      if (c->poll()) ready.push_back(i);  // counts bytes it has already read, too
    } else {
      pollfd pfd{objects[i].fd(), POLLIN, 0};
      if (::poll(&pfd, 1, 0) > 0) ready.push_back(i);
    }
  }
  return ready;
}

}  // namespace

std::vector<std::size_t> wait(const std::vector<Waitable>& objects,
                              std::optional<std::chrono::nanoseconds> timeout) {
  const concur::detail::Deadline deadline =
      timeout ? concur::detail::deadline_after(*timeout) : concur::detail::Deadline{};
  std::vector<pollfd> fds(objects.size());
  for (;;) {
    std::vector<std::size_t> ready = ready_now(objects);
    if (!ready.empty()) return ready;
    int wait_ms = -1;
    if (deadline) {
      const auto left = *deadline - concur::detail::Clock::now();
      if (left <= left.zero()) return ready;
      wait_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    }
    for (std::size_t i = 0; i < objects.size(); ++i) fds[i] = {objects[i].fd(), POLLIN, 0};
    if (::poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) {
      throw OSError(errno, "concur::multiprocessing::connection::wait(): poll");
    }
  }
}

}  // namespace connection

std::pair<Connection, Connection> Pipe(bool duplex) {
  int fds[2];
  if (duplex) {
    if (!platform::stream_socket_pair(fds)) {
      throw OSError(errno,
                    "concur::multiprocessing::Pipe(duplex=true): no socket pair could be made "
                    "(out of descriptors? close some, or raise `ulimit -n`)");
    }
    return {Connection(fds[0]), Connection(fds[1])};
  }
  if (!platform::pipe_pair(fds)) {
    throw OSError(errno,
                  "concur::multiprocessing::Pipe(duplex=false): no pipe could be made (out of "
                  "descriptors? close some, or raise `ulimit -n`)");
  }
  return {Connection(fds[0], true, false), Connection(fds[1], false, true)};
}

}  // namespace concur::multiprocessing
