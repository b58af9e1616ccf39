// Poller on Linux: epoll, with an eventfd for wake().
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "concur/errors.hpp"
#include "platform/poller.hpp"

namespace concur::platform {

namespace {
// The eventfd's token; watch() refuses 0 from callers.
constexpr std::uint64_t kWakeToken = 0;
constexpr int kMaxEvents = 64;
}  // namespace

Poller::Poller() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  poll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeToken;
  if (wake_fd_ < 0 || poll_fd_ < 0 || epoll_ctl(poll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    const int error = errno;
    const char* call = wake_fd_ < 0 ? "eventfd" : poll_fd_ < 0 ? "epoll_create1" : "epoll_ctl";
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (poll_fd_ >= 0) ::close(poll_fd_);
    throw OSError(error, std::string("concur: could not set up a wait for events (") + call +
                             "); free some descriptors or memory and try again");
  }
}

Poller::~Poller() {
  ::close(wake_fd_);
  ::close(poll_fd_);
}

bool Poller::watch(int fd, std::uint64_t token) noexcept {
  if (token == kWakeToken) {
    errno = EINVAL;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = token;
  return epoll_ctl(poll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Poller::unwatch(int fd) noexcept {
  epoll_ctl(poll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Poller::wake() noexcept {
  if (wake_pending_.exchange(true)) return;
  const std::uint64_t one = 1;
  while (write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

Poller::Ready Poller::wait(int timeout_ms, std::span<std::uint64_t> tokens) noexcept {
  epoll_event events[kMaxEvents];
  const int room = static_cast<int>(std::min<std::size_t>(tokens.size(), kMaxEvents));
  const int n = epoll_wait(poll_fd_, events, room, timeout_ms);
  Ready ready;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == kWakeToken) {
      std::uint64_t drained = 0;
      while (read(wake_fd_, &drained, sizeof drained) > 0) {
      }
      // Cleared after draining: a wake() from now on writes again, so none is lost.
      wake_pending_ = false;
      ready.woken = true;
    } else {
      tokens[ready.count++] = events[i].data.u64;
    }
  }
  return ready;
}

}  // namespace concur::platform
