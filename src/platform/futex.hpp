// Internal: wait on / wake a 32-bit word, the one blocking primitive the executors' fast paths use.
// Linux: the futex system call. A port to another OS implements these two functions (macOS:
// os_sync_wait_on_address; Windows: WaitOnAddress) and nothing else in concur changes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace concur::platform {

using Clock = std::chrono::steady_clock;

// Blocks while word == expected, until woken, the deadline passes, or spuriously.
// Returns false only when the deadline has passed.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const std::optional<Clock::time_point>& deadline) noexcept;
void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept;

// One pause of a spin-wait loop (the `pause` instruction on x86).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace concur::platform
