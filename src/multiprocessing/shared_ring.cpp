#include "multiprocessing/shared_ring.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include "concur/errors.hpp"
#include "platform/shared_memory.hpp"

namespace concur::multiprocessing::detail {

namespace {

// The first page of the memfd: what the reader checks before it trusts the rest, and the release
// counter both sides use. The data starts on the next page.
struct Header {
  std::uint64_t magic;
  std::uint64_t capacity;
  std::atomic<std::uint64_t> released;
};
constexpr std::uint64_t kMagic = 0x676e695272636e43;  // "CncrRing"
constexpr std::uint64_t kHeaderBytes = 4096;
static_assert(sizeof(Header) <= kHeaderBytes);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the release counter is shared between processes: it must not need a lock");

std::uint64_t page_size() {
  static const auto size = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  return size;
}

char* map(int fd, std::uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
}

}  // namespace

SharedRing::SharedRing(int fd, char* mapping, std::uint64_t capacity)
    : fd_(fd),
      mapping_(mapping),
      data_(mapping + kHeaderBytes),
      capacity_(capacity),
      released_(&reinterpret_cast<Header*>(mapping)->released) {}

SharedRing::~SharedRing() {
  munmap(mapping_, kHeaderBytes + capacity_);
  ::close(fd_);
}

std::unique_ptr<SharedRing> SharedRing::create(std::uint64_t capacity) {
  capacity = (capacity + page_size() - 1) / page_size() * page_size();
  const int fd = platform::create_anonymous_memory("concur-pool-ring");
  if (fd < 0) throw OSError(errno, "concur: could not create a shared-memory ring (memfd_create)");
  if (ftruncate(fd, static_cast<off_t>(kHeaderBytes + capacity)) != 0) {
    const int error = errno;
    ::close(fd);
    throw OSError(error, "concur: could not size a shared-memory ring (ftruncate)");
  }
  char* mapping = map(fd, kHeaderBytes + capacity);
  if (!mapping) {
    const int error = errno;
    ::close(fd);
    throw OSError(error, "concur: could not map a shared-memory ring (mmap)");
  }
  new (mapping) Header{kMagic, capacity, {0}};
  return std::unique_ptr<SharedRing>(new SharedRing(fd, mapping, capacity));
}

std::unique_ptr<SharedRing> SharedRing::attach(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) <= kHeaderBytes) {
    ::close(fd);
    throw ProtocolError("concur: the descriptor sent as a shared-memory ring is not one");
  }
  const auto bytes = static_cast<std::uint64_t>(st.st_size);
  char* mapping = map(fd, bytes);
  if (!mapping) {
    const int error = errno;
    ::close(fd);
    throw OSError(error, "concur: could not map the shared-memory ring sent by the other process");
  }
  const auto* header = reinterpret_cast<const Header*>(mapping);
  if (header->magic != kMagic || header->capacity != bytes - kHeaderBytes) {
    munmap(mapping, bytes);
    ::close(fd);
    throw ProtocolError("concur: the descriptor sent as a shared-memory ring is not one");
  }
  return std::unique_ptr<SharedRing>(new SharedRing(fd, mapping, bytes - kHeaderBytes));
}

std::optional<std::uint64_t> SharedRing::allocate(std::uint64_t n) {
  if (n == 0 || n > capacity_) return std::nullopt;
  std::uint64_t released = released_->load(std::memory_order_acquire);
  if (released == head_ && head_ % capacity_ != 0) {
    // Empty: start again at the front, so that a ring used one space at a time stays in the same
    // few pages. The reader stores only ends of spaces it was told of, and it has released them
    // all, so it writes the counter no more until a new space is handed out.
    head_ += capacity_ - head_ % capacity_;
    released_->store(head_, std::memory_order_release);
    released = head_;
    if (touched_ > kKeptBytes) {
      // After a burst: give back the pages beyond what the next one will likely reuse.
      if (platform::discard_shared_pages(data_ + kKeptBytes, touched_ - kKeptBytes)) {
        touched_ = kKeptBytes;
      }
    }
  }
  std::uint64_t position = head_;
  const std::uint64_t offset = position % capacity_;
  if (offset + n > capacity_) position += capacity_ - offset;  // skip to the front
  if (position + n - released > capacity_) return std::nullopt;
  head_ = position + n;
  const std::uint64_t end = position % capacity_ + n;
  if (end > touched_) touched_ = (end + page_size() - 1) / page_size() * page_size();
  return position;
}

std::string_view SharedRing::view(std::uint64_t position, std::uint64_t n) const {
  const std::uint64_t offset = position % capacity_;
  if (n == 0 || n > capacity_ - offset) {
    throw ProtocolError("a shared-memory span of " + std::to_string(n) + " bytes at " +
                        std::to_string(offset) + " does not lie inside its ring of " +
                        std::to_string(capacity_) + " bytes");
  }
  return {data_ + offset, static_cast<std::size_t>(n)};
}

void SharedRing::release_through(std::uint64_t end) {
  released_->store(end, std::memory_order_release);
}

}  // namespace concur::multiprocessing::detail
