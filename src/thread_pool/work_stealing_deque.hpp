// Internal: the Chase-Lev work-stealing deque (Chase & Lev 2005; the C11 memory orderings of
// Le, Pop, Cohen & Zappa Nardelli, PPoPP 2013), holding task pointers.
//
// The owner thread pushes and pops at the bottom (LIFO: the task it just made is hot in its cache
// and is usually the one it is about to wait for); any thread steals from the top (FIFO: the
// oldest, usually biggest, piece of work). The buffer grows when full; old buffers are kept until
// the deque dies because a thief may still be reading one.
//
// Where the paper uses a seq_cst fence next to a relaxed access, this code makes the access itself
// seq_cst: the same instructions on x86, and ThreadSanitizer understands it (it does not model
// standalone fences).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace concur::detail {

template <class T>
class WorkStealingDeque {
  static_assert(std::is_pointer_v<T>, "the deque holds pointers");

 public:
  explicit WorkStealingDeque(std::size_t capacity = 256) {
    auto first = std::make_unique<Buffer>(round_up(capacity));
    buffer_.store(first.get(), std::memory_order_relaxed);
    buffers_.push_back(std::move(first));
  }
  WorkStealingDeque(const WorkStealingDeque&) = delete;
  WorkStealingDeque& operator=(const WorkStealingDeque&) = delete;

  // Owner only.
  void push(T item) {
    const std::int64_t bottom = bottom_.load(std::memory_order_relaxed);
    const std::int64_t top = top_.load(std::memory_order_acquire);
    Buffer* buffer = buffer_.load(std::memory_order_relaxed);
    if (bottom - top >= static_cast<std::int64_t>(buffer->capacity))
      buffer = grow(buffer, top, bottom);
    buffer->put(bottom, item);
    // seq_cst rather than the paper's release: the pool's wake-up protocol reads the sleepers
    // next and needs this store ordered before that load (see scheduler.hpp).
    bottom_.store(bottom + 1, std::memory_order_seq_cst);
  }

  // Owner only. nullptr when empty.
  T pop() {
    const std::int64_t bottom = bottom_.load(std::memory_order_relaxed) - 1;
    Buffer* buffer = buffer_.load(std::memory_order_relaxed);
    bottom_.store(bottom, std::memory_order_seq_cst);
    std::int64_t top = top_.load(std::memory_order_seq_cst);
    if (top > bottom) {  // was empty
      bottom_.store(bottom + 1, std::memory_order_relaxed);
      return nullptr;
    }
    T item = buffer->get(bottom);
    if (top == bottom) {  // the last item: race the thieves for it
      if (!top_.compare_exchange_strong(top, top + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
        item = nullptr;
      }
      bottom_.store(bottom + 1, std::memory_order_relaxed);
    }
    return item;
  }

  // Any thread. nullptr when empty or when another thief won the race (the caller may retry).
  T steal() {
    std::int64_t top = top_.load(std::memory_order_seq_cst);
    const std::int64_t bottom = bottom_.load(std::memory_order_seq_cst);
    if (top >= bottom) return nullptr;
    Buffer* buffer = buffer_.load(std::memory_order_acquire);
    T item = buffer->get(top);
    if (!top_.compare_exchange_strong(top, top + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
      return nullptr;
    }
    return item;
  }

  // Any thread; a snapshot that may be stale by the time it returns.
  bool empty() const noexcept {
    return bottom_.load(std::memory_order_seq_cst) <= top_.load(std::memory_order_seq_cst);
  }

 private:
  friend struct SchedulerInspection;  // reads the fields concur-ps follows
  struct Buffer {
    explicit Buffer(std::size_t cap)
        : capacity(cap), mask(cap - 1), slots(new std::atomic<T>[cap]) {}
    T get(std::int64_t i) const noexcept {
      return slots[static_cast<std::size_t>(i) & mask].load(std::memory_order_relaxed);
    }
    void put(std::int64_t i, T item) noexcept {
      slots[static_cast<std::size_t>(i) & mask].store(item, std::memory_order_relaxed);
    }
    std::size_t capacity;
    std::size_t mask;
    std::unique_ptr<std::atomic<T>[]> slots;
  };

  static std::size_t round_up(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n) cap *= 2;
    return cap;
  }

  Buffer* grow(Buffer* old, std::int64_t top, std::int64_t bottom) {
    auto bigger = std::make_unique<Buffer>(old->capacity * 2);
    for (std::int64_t i = top; i < bottom; ++i) bigger->put(i, old->get(i));
    Buffer* raw = bigger.get();
    buffers_.push_back(std::move(bigger));
    buffer_.store(raw, std::memory_order_release);
    return raw;
  }

  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  std::atomic<Buffer*> buffer_{nullptr};
  std::vector<std::unique_ptr<Buffer>> buffers_;  // owner only; every buffer ever used
};

}  // namespace concur::detail
