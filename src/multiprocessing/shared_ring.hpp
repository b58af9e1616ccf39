// Internal to concur: a ring of shared memory through which one process hands large byte strings
// to another (the process pool's large arguments and results) instead of writing them into a
// socket.
//
// Why: a 1 MiB argument sent through a worker's socket is copied six times (encoded, framed, into
// the kernel, out of it, out of the frame, decoded) in some thirty system calls; through a ring,
// three times (encoded, into the ring, decoded in place), and the message that says where it is
// stays small.
//
// One process writes a ring, one reads it, and spaces are given back in the order they were
// handed out: a pool worker runs its tasks one after another and answers in that order, so both
// the arguments of the task answered first and the first answer read are always the oldest space.
// Positions are 64-bit counters that never wrap (a space at position p is at byte p % capacity);
// a space never straddles the end of the ring: the writer skips to the front instead.
//
// The memory is a memfd: it has no name, so nothing can be left in /dev/shm whatever happens to
// either process, and it is freed when the last of them unmaps it. Pages are touched only where
// spaces are written; after a burst, when the ring is empty again, the writer gives back what it
// used beyond kKeptBytes.
//
// Thread safety: the writer's calls (allocate, data) from one thread at a time; view() and
// release_through() from the reader's, one at a time. The two sides meet only in the release
// counter, an atomic in the ring's first page.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace concur::multiprocessing::detail {

class SharedRing {
 public:
  // Room a ring offers (virtual: only the pages written are ever memory). An item larger than this
  // goes through the socket.
  static constexpr std::uint64_t kDefaultCapacity = std::uint64_t{256} << 20;
  // What an emptied ring keeps mapped for the next burst instead of giving it back (as a pool
  // worker keeps freed heap, pool_worker.cpp): fresh pages are zeroed by the kernel on first
  // touch, which costs about as much as the copy itself.
  static constexpr std::uint64_t kKeptBytes = std::uint64_t{32} << 20;

  // The writer's side: a new ring of `capacity` bytes. Throws OSError (memfd_create, ftruncate or
  // mmap failed): the caller then sends its bytes through the socket.
  static std::unique_ptr<SharedRing> create(std::uint64_t capacity = kDefaultCapacity);
  // The reader's side, from the descriptor the writer sent (this takes it: it is closed here, on
  // failure too). Throws ProtocolError if it is not a ring, OSError if it cannot be mapped.
  static std::unique_ptr<SharedRing> attach(int fd);

  ~SharedRing();
  SharedRing(const SharedRing&) = delete;
  SharedRing& operator=(const SharedRing&) = delete;

  // The descriptor, to send to the reader (still owned by the ring).
  int fd() const { return fd_; }
  std::uint64_t capacity() const { return capacity_; }

  // Writer: the position of a space of n bytes (n > 0), or nullopt if the ring has not that much
  // room free now, contiguous; never blocks.
  std::optional<std::uint64_t> allocate(std::uint64_t n);
  // Writer: where to write the space at `position`.
  char* data(std::uint64_t position) { return data_ + position % capacity_; }

  // Reader: the n bytes at `position`, as a message from the writer named them. The writer is
  // another process: a span that does not lie inside the ring throws ProtocolError.
  std::string_view view(std::uint64_t position, std::uint64_t n) const;
  // Reader: everything before `end` (a space's position + its length) has been read; the writer
  // may reuse it.
  void release_through(std::uint64_t end);

 private:
  SharedRing(int fd, char* mapping, std::uint64_t capacity);

  int fd_;
  char* mapping_;  // the header page, then the data
  char* data_;
  std::uint64_t capacity_;
  std::atomic<std::uint64_t>* released_;  // in the header page: the reader's release counter
  std::uint64_t head_ = 0;                // writer: the end of the last space handed out
  std::uint64_t touched_ = 0;             // writer: how far into the data pages were written
};

}  // namespace concur::multiprocessing::detail
