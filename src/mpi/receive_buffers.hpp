// Internal to concur::mpi: where a rank receives out-of-band ByteBuffers (byte_buffer.hpp).
//
// A 64 MiB std::vector is fresh memory each time (glibc maps blocks that large anew and gives
// them back on free), so each one costs 16,384 page faults and as many zeroed pages before a
// byte arrives: more than MPI's own copy. These buffers are kept and reused instead: a ByteBuffer
// handed to a task shares its region, and the region comes back here when the last copy of that
// ByteBuffer is dropped, with its pages still mapped (and asked to be transparent huge pages).
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "concur/base/mutex.hpp"
#include "concur/multiprocessing/byte_buffer.hpp"

namespace concur::mpi::detail {

class ReceiveBuffers : public std::enable_shared_from_this<ReceiveBuffers> {
 public:
  // Keeps at most this many idle regions, and this many bytes in them (the rest are unmapped).
  static constexpr std::size_t kMaxIdle = 4;
  static constexpr std::size_t kMaxIdleBytes = std::size_t{1} << 30;

  static std::shared_ptr<ReceiveBuffers> make() {
    return std::shared_ptr<ReceiveBuffers>(new ReceiveBuffers());
  }
  ~ReceiveBuffers();
  ReceiveBuffers(const ReceiveBuffers&) = delete;
  ReceiveBuffers& operator=(const ReceiveBuffers&) = delete;

  // A buffer of `size` bytes to receive into, and the ByteBuffer that will own it (its region
  // returns here when that ByteBuffer and all its copies are gone). Throws std::bad_alloc when
  // no memory can be mapped. Thread safety: any thread (a task may drop its buffer anywhere).
  std::pair<multiprocessing::ByteBuffer, std::byte*> acquire(std::size_t size);

  std::size_t idle_regions() const;

 private:
  struct Region {
    std::byte* data = nullptr;
    std::size_t capacity = 0;
  };
  ReceiveBuffers() = default;
  void give_back(Region region);

  mutable base::Mutex mu_;
  std::vector<Region> idle_ CONCUR_GUARDED_BY(mu_);
};

}  // namespace concur::mpi::detail
