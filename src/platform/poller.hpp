// Internal: Poller, one blocking wait over many descriptors, plus a wake-up any thread can post.
//
// The process pool's manager thread sleeps here on its workers' sockets and exit watches and on
// its callers' "there is new work". Linux: epoll and an eventfd. A port implements this class
// (macOS: kqueue with EVFILT_USER for the wake-up; Windows: an I/O completion port) and the pool
// does not change.
//
// Thread safety: wake() from any thread, at any time; everything else from the one thread that
// owns the poller. Watched descriptors stay owned by the caller: unwatch() (or close) them, and
// the poller never closes them.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

namespace concur::platform {

class Poller {
 public:
  // Throws concur::OSError naming the call that failed (out of descriptors or memory).
  Poller();
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Reports `token` (not 0) from wait() whenever fd is readable or hung up (level-triggered).
  // Returns false, errno set, if the kernel refused (ENOMEM, ENOSPC, a bad fd).
  [[nodiscard]] bool watch(int fd, std::uint64_t token) noexcept;
  void unwatch(int fd) noexcept;

  // Makes the current or the next wait() return. Wake-ups posted before that wait coalesce into
  // one (a burst of submits costs one system call, not one each).
  void wake() noexcept;

  struct Ready {
    std::size_t count = 0;  // tokens written to the front of the span
    bool woken = false;     // a wake() was consumed
  };
  // Blocks up to timeout_ms (-1: no limit) until a watched fd is ready or wake() was called, and
  // writes the tokens of ready fds into `tokens` (at most its size; the rest stay ready for the
  // next call). An interrupted wait returns an empty Ready.
  Ready wait(int timeout_ms, std::span<std::uint64_t> tokens) noexcept;

 private:
  int poll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> wake_pending_{false};
};

}  // namespace concur::platform
