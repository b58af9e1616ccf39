// ByteQueue: a ring buffer of length-prefixed messages in an anonymous shared segment.
#include "concur/multiprocessing/queue.hpp"

#include <cstring>
#include <new>
#include <stdexcept>

#include "multiprocessing/shared_sync.hpp"

namespace concur::multiprocessing::detail {

// Offsets grow forever (64 bits will not wrap); a position in the ring is offset % capacity.
// `tail` is the commit point of put(), `head` of get(): each is one store, made after the bytes
// are copied, so a process killed mid-copy leaves the queue as if it had not started.
struct ByteQueue::State {
  SharedMutex mutex;
  SharedCondition not_empty;
  SharedCondition not_full;
  std::size_t capacity = 0;
  std::size_t maxsize = 0;
  std::uint64_t head = 0;
  std::uint64_t tail = 0;
  std::size_t items = 0;  // for maxsize and qsize(); a crash can leave it off by one, never stuck
  SharedCondition all_done;      // JoinableQueue: unfinished reached 0
  std::uint64_t unfinished = 0;  // JoinableQueue: put() adds one, task_done() takes one

  unsigned char* ring() { return reinterpret_cast<unsigned char*>(this + 1); }
  std::size_t used() const { return static_cast<std::size_t>(tail - head); }

  void copy_in(std::uint64_t at, const void* from, std::size_t n) {
    const std::size_t pos = at % capacity;
    const std::size_t first = std::min(n, capacity - pos);
    std::memcpy(ring() + pos, from, first);
    std::memcpy(ring(), static_cast<const unsigned char*>(from) + first, n - first);
  }
  void copy_out(std::uint64_t at, void* to, std::size_t n) {
    const std::size_t pos = at % capacity;
    const std::size_t first = std::min(n, capacity - pos);
    std::memcpy(to, ring() + pos, first);
    std::memcpy(static_cast<unsigned char*>(to) + first, ring(), n - first);
  }
};

ByteQueue::ByteQueue(std::size_t maxsize, std::size_t capacity_bytes)
    : segment_(sizeof(State) + capacity_bytes, "concur Queue") {
  if (capacity_bytes < 64) {
    throw std::invalid_argument(
        "concur::multiprocessing::Queue: capacity_bytes must be at least 64");
  }
  State* s = new (segment_.data()) State();
  s->capacity = capacity_bytes;
  s->maxsize = maxsize;
}

ByteQueue::State* ByteQueue::state() const {
  return static_cast<State*>(segment_.data());
}

std::size_t ByteQueue::capacity_bytes() const {
  return state()->capacity;
}

bool ByteQueue::put(std::string_view message, const concur::detail::Deadline& deadline) {
  State& s = *state();
  const std::size_t need = sizeof(std::uint32_t) + message.size();
  if (need > s.capacity || message.size() > UINT32_MAX) {
    throw std::length_error("concur::multiprocessing::Queue::put(): a value of " +
                            std::to_string(message.size()) + " encoded bytes can never fit the " +
                            std::to_string(s.capacity) +
                            "-byte buffer; create the Queue with a larger capacity_bytes");
  }
  s.mutex.lock(std::nullopt);
  UnlockOnExit unlock(s.mutex);
  while (s.capacity - s.used() < need || (s.maxsize != 0 && s.items >= s.maxsize)) {
    if (!s.not_full.wait(s.mutex, deadline)) {
      if (s.capacity - s.used() >= need && (s.maxsize == 0 || s.items < s.maxsize)) break;
      return false;
    }
  }
  const auto length = static_cast<std::uint32_t>(message.size());
  s.copy_in(s.tail, &length, sizeof length);
  s.copy_in(s.tail + sizeof length, message.data(), message.size());
  s.tail += need;  // commit
  ++s.items;
  ++s.unfinished;
  s.not_empty.notify_one();
  return true;
}

std::optional<std::string> ByteQueue::get(const concur::detail::Deadline& deadline) {
  State& s = *state();
  s.mutex.lock(std::nullopt);
  UnlockOnExit unlock(s.mutex);
  while (s.head == s.tail) {
    if (!s.not_empty.wait(s.mutex, deadline) && s.head == s.tail) return std::nullopt;
  }
  std::uint32_t length = 0;
  s.copy_out(s.head, &length, sizeof length);
  std::string message(length, '\0');
  s.copy_out(s.head + sizeof length, message.data(), length);
  s.head += sizeof length + length;  // commit
  if (s.items > 0) --s.items;
  s.not_full.notify_all();  // a big message may need several small ones gone
  return message;
}

void ByteQueue::task_done() {
  State& s = *state();
  s.mutex.lock(std::nullopt);
  UnlockOnExit unlock(s.mutex);
  if (s.unfinished == 0) {
    throw std::invalid_argument(
        "concur::multiprocessing::JoinableQueue::task_done(): called too many times (Python's "
        "ValueError); call it once per item taken with get()");
  }
  if (--s.unfinished == 0) s.all_done.notify_all();
}

bool ByteQueue::join(const concur::detail::Deadline& deadline) {
  State& s = *state();
  s.mutex.lock(std::nullopt);
  UnlockOnExit unlock(s.mutex);
  while (s.unfinished != 0) {
    if (!s.all_done.wait(s.mutex, deadline)) return s.unfinished == 0;
  }
  return true;
}

std::size_t ByteQueue::qsize() const {
  State& s = *state();
  s.mutex.lock(std::nullopt);
  UnlockOnExit unlock(s.mutex);
  return s.items;
}

}  // namespace concur::multiprocessing::detail
