#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "platform/futex.hpp"

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "futex words must be plain 32-bit integers");

namespace concur::platform {
namespace {

std::uint32_t* address(std::atomic<std::uint32_t>& word) {
  // The futex call takes the word's address; std::atomic<uint32_t> is a plain uint32_t (above).
  return reinterpret_cast<std::uint32_t*>(&word);
}

}  // namespace

bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const std::optional<Clock::time_point>& deadline) noexcept {
  if (!deadline) {
    syscall(SYS_futex, address(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
    return true;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, which is what steady_clock reads on
  // Linux, so a wait that is interrupted and restarted does not stretch its deadline.
  const auto since_epoch = deadline->time_since_epoch();
  if (since_epoch.count() <= 0) return Clock::now() < *deadline;
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
  const long rc = syscall(SYS_futex, address(word), FUTEX_WAIT_BITSET_PRIVATE, expected, &ts,
                          nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT) return false;
  return true;
}

void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept {
  syscall(SYS_futex, address(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace concur::platform
