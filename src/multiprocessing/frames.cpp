#include "multiprocessing/frames.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "concur/errors.hpp"

namespace concur::multiprocessing::detail {
namespace {

constexpr std::size_t kMaxFdsPerFrame = 64;

int poll_timeout_ms(const Deadline& deadline) {
  if (!deadline) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count() + 1, 1 << 30));
}

bool wait_for(int fd, short events, const Deadline& deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, poll_timeout_ms(deadline));
    if (n > 0) return true;
    if (n == 0) {
      if (deadline && Clock::now() >= *deadline) return false;
      continue;
    }
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  }
}

void put_u16(std::string& out, std::uint16_t v) {
  out.append(reinterpret_cast<const char*>(&v), 2);
}
void put_u32(std::string& out, std::uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), 4);
}
void put_u64(std::string& out, std::uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), 8);
}

template <class T>
T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

bool wait_readable(int fd, const Deadline& deadline) {
  return wait_for(fd, POLLIN, deadline);
}

void append_frame(std::string& out, std::uint16_t kind, std::uint64_t tag, std::string_view payload,
                  std::uint16_t fd_count) {
  out.reserve(out.size() + kHeaderBytes + payload.size());
  put_u32(out, kFrameMagic);
  put_u16(out, kind);
  put_u16(out, fd_count);
  put_u64(out, tag);
  put_u64(out, payload.size());
  out.append(payload);
}

void send_all(int fd, std::string_view bytes, const std::vector<int>& fds,
              const Deadline& deadline) {
  if (fds.size() > kMaxFdsPerFrame) {
    throw ProtocolError("concur::multiprocessing: a message may carry at most 64 descriptors");
  }
  std::size_t sent = 0;
  bool fds_sent = fds.empty();
  while (sent < bytes.size() || !fds_sent) {
    iovec iov{const_cast<char*>(bytes.data() + sent), bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    if (!fds_sent) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      fds_sent = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(fd, POLLOUT, deadline)) {
        throw TimeoutError(
            "concur::multiprocessing: the other process did not take the message in time (its "
            "end is full: is it still reading?)");
      }
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET) {
      throw EOFError("concur::multiprocessing: the other end of the connection is closed");
    }
    if (errno == ENOTSOCK && fds.empty()) {  // a plain pipe
      const ssize_t w = write(fd, bytes.data() + sent, bytes.size() - sent);
      if (w >= 0) {
        sent += static_cast<std::size_t>(w);
        continue;
      }
      if (errno == EAGAIN || errno == EINTR) {
        if (errno == EAGAIN && !wait_for(fd, POLLOUT, deadline)) {
          throw TimeoutError("concur::multiprocessing: the other process did not take the message");
        }
        continue;
      }
      if (errno == EPIPE) throw EOFError("concur::multiprocessing: the other end is closed");
    }
    throw std::system_error(errno, std::generic_category(), "concur::multiprocessing: send");
  }
}

FrameDecoder::~FrameDecoder() {
  for (int fd : fds_) close(fd);
}

bool FrameDecoder::read_available(int fd) {
  if (start_ > 0 && start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  } else if (start_ > (1u << 20) && start_ > buffer_.size() / 2) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  char chunk[65536];
  for (;;) {
    iovec iov{chunk, sizeof chunk};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == ENOTSOCK) {
      n = read(fd, chunk, sizeof chunk);
      msg.msg_controllen = 0;
    }
    if (n > 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          for (std::size_t i = 0; i < count; ++i) {
            fds_.push_back(get<int>(reinterpret_cast<const char*>(CMSG_DATA(c)) + i * sizeof(int)));
          }
        }
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < sizeof chunk) return true;
      continue;  // there may be more
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (errno == ECONNRESET) return false;
    throw std::system_error(errno, std::generic_category(), "concur::multiprocessing: receive");
  }
}

std::optional<Frame> FrameDecoder::next() {
  const std::size_t available = buffer_.size() - start_;
  if (available < kHeaderBytes) return std::nullopt;
  const char* h = buffer_.data() + start_;
  if (get<std::uint32_t>(h) != kFrameMagic) {
    throw ProtocolError(
        "concur::multiprocessing: received bytes that are not a concur frame (bad magic); the "
        "channel is corrupt or the peer is not a concur process");
  }
  const auto length = get<std::uint64_t>(h + 16);
  if (length > max_frame_bytes_) {
    throw ProtocolError("concur::multiprocessing: a frame of " + std::to_string(length) +
                        " bytes is larger than this channel's limit of " +
                        std::to_string(max_frame_bytes_) +
                        " bytes; raise the limit (set_max_message_bytes) or send less at once");
  }
  if (available < kHeaderBytes + length) return std::nullopt;
  const auto fd_count = get<std::uint16_t>(h + 6);
  if (fd_count > fds_.size()) {
    throw ProtocolError("concur::multiprocessing: a frame claims descriptors that did not arrive");
  }
  Frame frame;
  frame.kind = get<std::uint16_t>(h + 4);
  frame.tag = get<std::uint64_t>(h + 8);
  frame.payload.assign(h + kHeaderBytes, length);
  for (std::uint16_t i = 0; i < fd_count; ++i) {
    frame.fds.push_back(fds_.front());
    fds_.pop_front();
  }
  start_ += kHeaderBytes + length;
  return frame;
}

std::optional<Frame> receive_frame(int fd, FrameDecoder& decoder, const Deadline& deadline) {
  for (;;) {
    if (auto frame = decoder.next()) return frame;
    if (!wait_readable(fd, deadline)) {
      throw TimeoutError("concur::multiprocessing: no message arrived within the timeout");
    }
    if (!decoder.read_available(fd)) {
      if (decoder.has_buffered_bytes()) {
        throw EOFError(
            "concur::multiprocessing: the other process closed the connection in the "
            "middle of a message");
      }
      return std::nullopt;
    }
  }
}

}  // namespace concur::multiprocessing::detail
