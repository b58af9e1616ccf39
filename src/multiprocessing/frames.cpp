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
    if (errno != EINTR) {
      throw OSError(errno,
                    "concur::multiprocessing: waiting on a channel (poll) failed; is the "
                    "descriptor still open?");
    }
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

std::size_t begin_frame(std::string& out, std::uint16_t kind, std::uint64_t tag,
                        std::uint16_t fd_count) {
  const std::size_t at = out.size();
  put_u32(out, kFrameMagic);
  put_u16(out, kind);
  put_u16(out, fd_count);
  put_u64(out, tag);
  put_u64(out, 0);
  return at;
}

void end_frame(std::string& out, std::size_t frame_start) {
  const std::uint64_t length = out.size() - frame_start - kHeaderBytes;
  std::memcpy(out.data() + frame_start + 16, &length, sizeof length);
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
    throw OSError(errno,
                  "concur::multiprocessing: sending on a channel failed (out of memory, or "
                  "a descriptor closed under it?)");
  }
}

FrameDecoder::~FrameDecoder() {
  for (int fd : fds_) close(fd);
}

namespace {
// Frames at least this large are read straight into their payload (one copy fewer).
constexpr std::uint64_t kDirectReadBytes = 64 * 1024;
}  // namespace

std::optional<FrameDecoder::Header> FrameDecoder::header() const {
  if (buffer_.size() - start_ < kHeaderBytes) return std::nullopt;
  const char* h = buffer_.data() + start_;
  if (get<std::uint32_t>(h) != kFrameMagic) {
    throw ProtocolError(
        "concur::multiprocessing: received bytes that are not a concur frame (bad magic); the "
        "channel is corrupt or the peer is not a concur process");
  }
  Header header{get<std::uint16_t>(h + 4), get<std::uint16_t>(h + 6), get<std::uint64_t>(h + 8),
                get<std::uint64_t>(h + 16)};
  if (header.length > max_frame_bytes_) {
    throw ProtocolError("concur::multiprocessing: a frame of " + std::to_string(header.length) +
                        " bytes is larger than this channel's limit of " +
                        std::to_string(max_frame_bytes_) +
                        " bytes; raise the limit (set_max_message_bytes) or send less at once");
  }
  return header;
}

void FrameDecoder::start_big_frame() {
  const auto h = header();
  if (!h || h->length < kDirectReadBytes) return;
  const std::size_t here = buffer_.size() - start_ - kHeaderBytes;
  if (here >= h->length) return;  // complete: next() takes it from the buffer
  big_.emplace();
  big_->kind = h->kind;
  big_->tag = h->tag;
  big_length_ = h->length;
  big_->payload.resize(std::min<std::uint64_t>(h->length, std::max(kDirectReadBytes, 2 * here)));
  std::memcpy(big_->payload.data(), buffer_.data() + start_ + kHeaderBytes, here);
  big_fds_ = h->fd_count;
  big_filled_ = here;
  buffer_.clear();
  start_ = 0;
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
    if (!big_) start_big_frame();
    const bool direct = big_ && big_filled_ < big_length_;
    if (direct && big_filled_ == big_->payload.size()) {
      // Grow 4x toward the claimed length: about a third of the payload copied once, in
      // exchange for allocating only what the peer has sent.
      big_->payload.resize(std::min<std::uint64_t>(big_length_, 4 * big_->payload.size()));
    }
    char* into = direct ? big_->payload.data() + big_filled_ : chunk;
    const std::size_t room = direct ? big_->payload.size() - big_filled_ : sizeof chunk;
    iovec iov{into, room};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == ENOTSOCK) {
      n = read(fd, into, room);
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
      if (direct) {
        big_filled_ += static_cast<std::size_t>(n);
        // A big frame just completed: hand it over before reading on. Reading on could meet the
        // end of the stream (a sender that closed after its last frame), and end of file with a
        // complete frame still held here must not look like a message cut in the middle.
        if (big_filled_ == big_length_) return true;
      } else {
        buffer_.append(chunk, static_cast<std::size_t>(n));
      }
      if (static_cast<std::size_t>(n) < room) return true;
      continue;  // there may be more
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (errno == ECONNRESET) return false;
    throw OSError(errno,
                  "concur::multiprocessing: receiving on a channel failed (a descriptor "
                  "closed under it?)");
  }
}

std::optional<Frame> FrameDecoder::next() {
  std::uint16_t fd_count = 0;
  Frame frame;
  if (big_) {
    if (big_filled_ < big_length_) return std::nullopt;
    fd_count = big_fds_;
    if (fd_count > fds_.size()) {
      throw ProtocolError(
          "concur::multiprocessing: a frame claims descriptors that did not arrive");
    }
    frame = std::move(*big_);
    big_.reset();
  } else {
    const auto h = header();
    if (!h || buffer_.size() - start_ - kHeaderBytes < h->length) return std::nullopt;
    fd_count = h->fd_count;
    if (fd_count > fds_.size()) {
      throw ProtocolError(
          "concur::multiprocessing: a frame claims descriptors that did not arrive");
    }
    frame.kind = h->kind;
    frame.tag = h->tag;
    frame.payload.assign(buffer_.data() + start_ + kHeaderBytes, h->length);
    start_ += kHeaderBytes + h->length;
  }
  for (std::uint16_t i = 0; i < fd_count; ++i) {
    frame.fds.push_back(fds_.front());
    fds_.pop_front();
  }
  return frame;
}

void FrameDecoder::release_consumed() {
  buffer_.erase(0, start_);
  start_ = 0;
  buffer_.shrink_to_fit();
}

std::optional<Frame> receive_frame(int fd, FrameDecoder& decoder, const Deadline& deadline) {
  for (;;) {
    if (auto frame = decoder.next()) return frame;
    if (!wait_readable(fd, deadline)) {
      throw TimeoutError("concur::multiprocessing: no message arrived within the timeout");
    }
    if (!decoder.read_available(fd)) {
      // The end of the stream: what arrived before it may still hold whole frames.
      if (auto frame = decoder.next()) return frame;
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
