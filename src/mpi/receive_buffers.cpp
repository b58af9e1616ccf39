// Reused receive buffers for out-of-band ByteBuffers (see receive_buffers.hpp).
#include "mpi/receive_buffers.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <new>

namespace concur::mpi::detail {
namespace {

// Regions are whole 2 MiB units, so that the kernel can back them with huge pages (THP in
// "madvise" mode, Debian's default, needs the advice) and a slightly smaller buffer reuses one.
constexpr std::size_t kUnit = std::size_t{2} << 20;

std::size_t round_up(std::size_t size) {
  return (std::max<std::size_t>(size, 1) + kUnit - 1) / kUnit * kUnit;
}

}  // namespace

ReceiveBuffers::~ReceiveBuffers() {
  for (const Region& r : idle_) munmap(r.data, r.capacity);
}

std::pair<multiprocessing::ByteBuffer, std::byte*> ReceiveBuffers::acquire(std::size_t size) {
  Region region;
  {
    base::MutexLock lock(mu_);
    // The smallest idle region that fits, so that a big one stays for a big buffer.
    auto best = idle_.end();
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->capacity >= size && (best == idle_.end() || it->capacity < best->capacity)) best = it;
    }
    if (best != idle_.end()) {
      region = *best;
      idle_.erase(best);
    }
  }
  if (!region.data) {
    region.capacity = round_up(size);
    void* p =
        mmap(nullptr, region.capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, region.capacity, MADV_HUGEPAGE);  // advice only: ignored where THP is off
    region.data = static_cast<std::byte*>(p);
  }
  // The owner gives the region back (or unmaps it once this pool is gone) when the last copy
  // of the ByteBuffer is dropped.
  std::weak_ptr<ReceiveBuffers> pool = weak_from_this();
  std::shared_ptr<const void> owner(region.data, [pool, region](const void*) {
    if (auto p = pool.lock()) {
      p->give_back(region);
    } else {
      munmap(region.data, region.capacity);
    }
  });
  return {multiprocessing::ByteBuffer(std::move(owner), {region.data, size}), region.data};
}

void ReceiveBuffers::give_back(Region region) {
  base::MutexLock lock(mu_);
  std::size_t idle_bytes = region.capacity;
  for (const Region& r : idle_) idle_bytes += r.capacity;
  // Keep the newest; unmap the oldest beyond the limits.
  idle_.push_back(region);
  while (!idle_.empty() && (idle_.size() > kMaxIdle || idle_bytes > kMaxIdleBytes)) {
    idle_bytes -= idle_.front().capacity;
    munmap(idle_.front().data, idle_.front().capacity);
    idle_.erase(idle_.begin());
  }
}

std::size_t ReceiveBuffers::idle_regions() const {
  base::MutexLock lock(mu_);
  return idle_.size();
}

}  // namespace concur::mpi::detail
