#include "concur/multiprocessing/shared_memory.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "concur/errors.hpp"
#include "multiprocessing/root.hpp"
#include "platform/process.hpp"
#include "platform/shared_memory.hpp"

namespace concur::multiprocessing {
namespace {

constexpr const char* kPrefix = "concur-";

[[noreturn]] void fail(const std::string& call, const std::string& name) {
  const std::string what = "concur::multiprocessing::SharedMemory: " + call + " '" + name + "'";
  if (errno == ENOENT) {
    throw FileNotFoundError(ENOENT, what +
                                        ": no segment has this name (already unlinked?); check "
                                        "the name, or unlink a segment once only");
  }
  throw OSError(errno, what + " (out of memory, descriptors or space in /dev/shm?)");
}

void* map_fd(int fd, std::size_t size, const std::string& name) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap", name);
  return p;
}

// "concur-<root>-<creator>-<n>" -> root pid, or -1 if the name is not concur's.
pid_t root_of(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return -1;
  char* end = nullptr;
  const long root = std::strtol(name.c_str() + std::char_traits<char>::length(kPrefix), &end, 10);
  return (end && *end == '-' && root > 0) ? static_cast<pid_t>(root) : -1;
}

std::vector<std::string> segments_in_dev_shm() {
  std::vector<std::string> names = platform::named_memory_segments();
  std::erase_if(names, [](const std::string& name) { return root_of(name) <= 0; });
  return names;
}

std::string unique_name() {
  static std::atomic<unsigned> counter{0};
  static std::once_flag sweep;
  std::call_once(sweep, [] { SharedMemory::cleanup_orphans(); });
  return std::string(kPrefix) + std::to_string(detail::program_root_pid()) + "-" +
         std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

struct SharedMemory::Mapping {
  int fd = -1;
  void* address = nullptr;
  std::size_t size = 0;
  std::string name;
  bool unlink_on_destroy = false;
  ~Mapping() {
    if (address) munmap(address, size);
    if (fd >= 0) ::close(fd);
    if (unlink_on_destroy) platform::remove_named_memory(name);
  }
};

SharedMemory SharedMemory::create(std::size_t size, std::string name) {
  if (size == 0) {
    throw std::invalid_argument(
        "concur::multiprocessing::SharedMemory::create(): size must be "
        "greater than 0");
  }
  const bool ours = name.empty();
  if (ours) name = unique_name();
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  const int fd = platform::create_named_memory(name);
  if (fd < 0) fail("shm_open (create)", name);
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  m->name = name;
  m->size = size;
  m->unlink_on_destroy = true;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) fail("ftruncate", name);
  m->address = map_fd(fd, size, name);
  SharedMemory shm;
  shm.mapping_ = std::move(m);
  return shm;
}

SharedMemory SharedMemory::attach(const std::string& name_in) {
  std::string name = name_in;
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  const int fd = platform::open_named_memory(name);
  if (fd < 0) fail("shm_open (attach)", name);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    fail("fstat", name);
  }
  return from_fd(fd, name, static_cast<std::size_t>(st.st_size));
}

SharedMemory SharedMemory::from_fd(int fd, std::string name, std::size_t size) {
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  m->name = std::move(name);
  m->size = size;
  m->address = map_fd(fd, std::max<std::size_t>(size, 1), m->name);
  SharedMemory shm;
  shm.mapping_ = std::move(m);
  return shm;
}

const std::string& SharedMemory::name() const noexcept {
  static const std::string none;
  return mapping_ ? mapping_->name : none;
}
std::size_t SharedMemory::size() const noexcept {
  return mapping_ ? mapping_->size : 0;
}
std::byte* SharedMemory::data() const noexcept {
  return mapping_ ? static_cast<std::byte*>(mapping_->address) : nullptr;
}
int SharedMemory::fd() const noexcept {
  return mapping_ ? mapping_->fd : -1;
}
void SharedMemory::close() noexcept {
  mapping_.reset();
}

void SharedMemory::unlink() {
  if (!mapping_) return;
  mapping_->unlink_on_destroy = false;
  // As Python's: a name already gone (unlinked through this or another handle) is an error.
  if (!platform::remove_named_memory(mapping_->name)) fail("unlink()", mapping_->name);
}

void SharedMemory::keep_name() noexcept {
  if (mapping_) mapping_->unlink_on_destroy = false;
}

std::size_t SharedMemory::cleanup_orphans() {
  std::size_t removed = 0;
  for (const std::string& name : segments_in_dev_shm()) {
    if (!platform::process_exists(root_of(name)) && platform::remove_named_memory(name)) ++removed;
  }
  return removed;
}

std::vector<std::string> SharedMemory::program_segments() {
  std::vector<std::string> mine;
  const pid_t root = detail::program_root_pid();
  for (const std::string& name : segments_in_dev_shm()) {
    if (root_of(name) == root) mine.push_back(name);
  }
  return mine;
}

// ---------------------------------------------------------------------------------------------

namespace detail {

void on_root_exit() {
  if (!is_program_root()) return;  // a forked child inherits the handler; only the root acts
  for (const std::string& name : SharedMemory::program_segments()) {
    platform::remove_named_memory(name);
  }
}

struct AnonymousSegment::Mapping {
  int fd = -1;
  void* address = nullptr;
  std::size_t size = 0;
  ~Mapping() {
    if (address) munmap(address, size);
    if (fd >= 0) ::close(fd);
  }
};

AnonymousSegment::AnonymousSegment(std::size_t size, const char* what) {
  // (Errors found unclear by tests/faults/: they now name concur, the call and a remedy.)
  const int fd = platform::create_anonymous_memory(what);
  if (fd < 0) {
    throw OSError(errno, std::string("concur::multiprocessing: memfd_create for a ") + what +
                             " (out of descriptors or memory?)");
  }
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  m->size = size;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    throw OSError(errno, std::string("concur::multiprocessing: ftruncate of a ") + what + " to " +
                             std::to_string(size) + " bytes (out of memory?)");
  }
  m->address = map_fd(fd, size, what);
  mapping_ = std::move(m);
}

AnonymousSegment AnonymousSegment::from_fd(int fd, std::size_t size) {
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  m->size = size;
  m->address = map_fd(fd, size, "received segment");
  AnonymousSegment s;
  s.mapping_ = std::move(m);
  return s;
}

void* AnonymousSegment::data() const noexcept {
  return mapping_ ? mapping_->address : nullptr;
}
std::size_t AnonymousSegment::size() const noexcept {
  return mapping_ ? mapping_->size : 0;
}
int AnonymousSegment::fd() const noexcept {
  return mapping_ ? mapping_->fd : -1;
}

}  // namespace detail

}  // namespace concur::multiprocessing
