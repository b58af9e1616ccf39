// concur/multiprocessing/shared_memory.hpp: SharedMemory and SharedArray<T>, memory that several
// processes map at once (Python's multiprocessing.shared_memory), with no copy between them.
//
// SharedMemory::create(size) makes a named POSIX segment (mode 0600) and maps it; attach(name)
// maps an existing one. The creating handle unlinks the name when it is destroyed (RAII; call
// keep_name() to leave it for others to attach later, then unlink() when done). Mappings stay
// valid in every process that has one until it closes them, whatever happens to the name.
//
// Passed to a child (as a Process or task argument) a SharedMemory or SharedArray travels as its
// descriptor, so the child maps the very same memory even if the name is gone by then.
//
// Leaks, Python's resource_tracker problem: a segment whose creator was killed is never unlinked
// by it. concur names its segments "concur-<root pid>-<creator pid>-<n>", where the root is the
// first concur process of the program; when the root exits normally it unlinks every segment of
// its program that is still named, and any concur process that creates a segment first unlinks
// the segments of programs whose root is gone (cleanup_orphans() does it on demand). A segment
// given an explicit name by the caller is the caller's to unlink.
//
// Thread safety: handles are not synchronised; the memory is shared by design, synchronise its
// use (Lock, Event, Queue of concur/multiprocessing/synchronize.hpp and queue.hpp).
// Errors: concur::FileNotFoundError (an OSError, a std::system_error) when the name does not
// exist: attach() of an unknown name, and unlink() of a name already unlinked (through this
// handle or another), as Python's; std::system_error with the call and the name for other OS
// failures (permission, size); std::invalid_argument for a zero size.
//
// Example:
//   auto shm = concur::multiprocessing::SharedArray<double>(1 << 20);   // 8 MiB, zeroed
//   concur::multiprocessing::Process p(fill, shm);  // `fill` writes into shm[i] in the child
//   p.start(); p.join();                            // the parent now sees what the child wrote
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "concur/multiprocessing/serialization.hpp"

namespace concur::multiprocessing {

class SharedMemory {
 public:
  SharedMemory() = default;
  // A new segment of `size` bytes, zero-filled. `name` empty: a unique concur name.
  static SharedMemory create(std::size_t size, std::string name = {});
  // An existing segment, by name.
  static SharedMemory attach(const std::string& name);

  const std::string& name() const noexcept;
  std::size_t size() const noexcept;
  std::byte* data() const noexcept;
  std::span<std::byte> buf() const noexcept { return {data(), size()}; }
  bool valid() const noexcept { return mapping_ != nullptr; }

  // Unmaps this handle (others keep their mappings).
  void close() noexcept;
  // Removes the name now (attached mappings stay valid). Throws concur::FileNotFoundError if the
  // name is already gone. Does nothing on a closed handle.
  void unlink();
  // This handle will not unlink the name when destroyed.
  void keep_name() noexcept;

  // Unlinks the concur segments of programs that are no longer running; returns how many.
  static std::size_t cleanup_orphans();
  // The segments this program has named and not unlinked (for tests and leak reports).
  static std::vector<std::string> program_segments();

  template <class Archive>
  void save(Archive& archive) const {
    archive(detail::export_fd(fd(), "SharedMemory"), name(), size());
  }
  template <class Archive>
  void load(Archive& archive) {
    std::uint32_t index = 0;
    std::string name;
    std::size_t size = 0;
    archive(index, name, size);
    *this = from_fd(detail::import_fd(index, "SharedMemory"), std::move(name), size);
  }

 private:
  struct Mapping;
  static SharedMemory from_fd(int fd, std::string name, std::size_t size);
  int fd() const noexcept;
  std::shared_ptr<Mapping> mapping_;
};

// A fixed-size array of trivially copyable T in a SharedMemory segment: zero copies between
// processes. Copies of a SharedArray share the same memory.
template <class T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>,
                "SharedArray<T> needs a trivially copyable T: the bytes are shared as they are");

 public:
  using value_type = T;

  SharedArray() = default;
  explicit SharedArray(std::size_t count, std::string name = {})
      : memory_(SharedMemory::create(std::max<std::size_t>(1, count) * sizeof(T), std::move(name))),
        count_(count) {}
  static SharedArray attach(const std::string& name) {
    SharedArray a;
    a.memory_ = SharedMemory::attach(name);
    a.count_ = a.memory_.size() / sizeof(T);
    return a;
  }

  T* data() const noexcept { return reinterpret_cast<T*>(memory_.data()); }
  std::size_t size() const noexcept { return count_; }
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + count_; }
  std::span<T> span() const noexcept { return {data(), count_}; }
  const std::string& name() const noexcept { return memory_.name(); }
  SharedMemory& memory() noexcept { return memory_; }

  template <class Archive>
  void save(Archive& archive) const {
    archive(memory_, count_);
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(memory_, count_);
  }

 private:
  SharedMemory memory_;
  std::size_t count_ = 0;
};

namespace detail {

// An anonymous shared segment (memfd): the backing of Queue, Lock, Semaphore and Event. It has
// no name, so nothing can leak when a process dies; it reaches other processes only as a
// descriptor (fork, or passed with a message).
class AnonymousSegment {
 public:
  AnonymousSegment() = default;
  explicit AnonymousSegment(std::size_t size, const char* what);
  void* data() const noexcept;
  std::size_t size() const noexcept;
  bool valid() const noexcept { return mapping_ != nullptr; }

  template <class Archive>
  void save(Archive& archive) const {
    archive(export_fd(fd(), "process-shared object"), size());
  }
  template <class Archive>
  void load(Archive& archive) {
    std::uint32_t index = 0;
    std::size_t size = 0;
    archive(index, size);
    *this = from_fd(import_fd(index, "process-shared object"), size);
  }

 private:
  struct Mapping;
  static AnonymousSegment from_fd(int fd, std::size_t size);
  int fd() const noexcept;
  std::shared_ptr<Mapping> mapping_;
};

}  // namespace detail

}  // namespace concur::multiprocessing
