// concur/multiprocessing/byte_buffer.hpp: a block of bytes that can cross to another process
// without being copied into the message (Python's pickle protocol 5 out-of-band buffers, PEP 574).
//
// Give a task a ByteBuffer instead of a std::vector when the data is large and read-only:
//
//   std::uint64_t checksum(concur::multiprocessing::ByteBuffer data);   // registered as usual
//   auto big = std::make_shared<const std::vector<std::uint8_t>>(load());
//   pool.submit(checksum, ByteBuffer(big));          // shares `big`: no copy on this side
//   pool.submit(checksum, ByteBuffer(std::move(v))); // takes v over: no copy either
//
// What it saves depends on the pool. concur::MpiPoolExecutor sends a ByteBuffer of at least
// kOutOfBandMin bytes as a message of its own straight from where it lies (nothing is encoded
// or copied on the sending side), and the receiving rank gets it in a buffer it reuses from
// task to task, so no page is faulted in afresh: the function sees the bytes where MPI put them.
// Anywhere else (the process pool, a Connection, serialize()) a ByteBuffer is encoded inline
// like a vector of bytes, one copy each way, and arrives as a ByteBuffer owning its bytes.
//
// Guarantees: the bytes are immutable (every copy of a ByteBuffer shares them; a task that
// wants to change them copies them first); they live as long as any copy of the ByteBuffer,
// so a task may keep its argument. A ByteBuffer made from a shared_ptr keeps that object alive
// until the pool has sent it, so the caller may drop its own pointer at once; it must not change
// the object meanwhile (it is declared const for that reason).
// Thread safety: like a std::shared_ptr: copies may be used and dropped on any threads at once.
#pragma once

#include <cereal/cereal.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "concur/errors.hpp"

namespace concur::multiprocessing {

class ByteBuffer {
 public:
  // A ByteBuffer at least this big goes out of band where the transport can send it so.
  static constexpr std::size_t kOutOfBandMin = 64 * 1024;

  ByteBuffer() = default;

  // Takes the vector over (no copy).
  template <class T>
  requires std::is_trivially_copyable_v<T>
  explicit ByteBuffer(std::vector<T>&& values)
      : ByteBuffer(std::make_shared<const std::vector<T>>(std::move(values))) {}

  // Shares the vector (no copy); keeps it alive as long as this ByteBuffer or a copy lives.
  template <class T>
  requires std::is_trivially_copyable_v<T>
  explicit ByteBuffer(std::shared_ptr<const std::vector<T>> values)
      : owner_(values),
        data_(values ? reinterpret_cast<const std::byte*>(values->data()) : nullptr),
        size_(values ? values->size() * sizeof(T) : 0) {}

  // Any bytes whose lifetime `owner` holds (for memory the program manages itself).
  ByteBuffer(std::shared_ptr<const void> owner, std::span<const std::byte> bytes)
      : owner_(std::move(owner)), data_(bytes.data()), size_(bytes.size()) {}

  // A ByteBuffer of its own copy of `bytes`.
  static ByteBuffer copy_of(std::span<const std::byte> bytes);

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

  // The bytes as elements of T. Throws std::invalid_argument if the size is not a multiple of
  // sizeof(T) or the bytes are not aligned for T (both hold for a buffer a pool delivered: its
  // storage is page-aligned, or came from operator new).
  template <class T>
  requires std::is_trivially_copyable_v<T> std::span<const T> as()
  const {
    if (size_ % sizeof(T) != 0 || reinterpret_cast<std::uintptr_t>(data_) % alignof(T) != 0) {
      throw std::invalid_argument(
          "concur::multiprocessing::ByteBuffer::as<T>(): " + std::to_string(size_) +
          " bytes are not a whole, aligned number of elements of this type; copy them instead");
    }
    return {reinterpret_cast<const T*>(data_), size_ / sizeof(T)};
  }

  template <class Archive>
  void save(Archive& archive) const;
  template <class Archive>
  void load(Archive& archive);

 private:
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace detail {

// While a BufferOutbox is current on a thread, encoding a ByteBuffer of at least `min_size`
// bytes on that thread records it here (sharing its bytes) and writes only its index; the
// transport sends the recorded buffers beside the message. While a BufferInbox is current,
// decoding such an index takes the buffer the transport received. One of each per thread at a
// time is current (a nested one hides the outer until it ends), as FdOutbox/FdInbox.
class BufferOutbox {
 public:
  explicit BufferOutbox(std::size_t min_size = ByteBuffer::kOutOfBandMin);
  ~BufferOutbox();
  BufferOutbox(const BufferOutbox&) = delete;
  BufferOutbox& operator=(const BufferOutbox&) = delete;

  std::size_t min_size() const { return min_size_; }
  std::uint32_t add(const ByteBuffer& buffer);
  std::vector<ByteBuffer> take() { return std::move(buffers_); }
  static BufferOutbox* current();

 private:
  std::size_t min_size_;
  std::vector<ByteBuffer> buffers_;
  BufferOutbox* previous_;
};

class BufferInbox {
 public:
  explicit BufferInbox(const std::vector<ByteBuffer>& buffers);
  ~BufferInbox();
  BufferInbox(const BufferInbox&) = delete;
  BufferInbox& operator=(const BufferInbox&) = delete;

  // The buffer at `index`, which the encoding says has `size` bytes; throws ProtocolError if
  // there is no such buffer or its size differs (the bytes come from another process).
  ByteBuffer take(std::uint32_t index, std::uint64_t size) const;
  static BufferInbox* current();

 private:
  const std::vector<ByteBuffer>& buffers_;
  BufferInbox* previous_;
};

// Hides the current outbox and inbox while a task's own code runs (its function between decoding
// its arguments and encoding its result), so that what the function itself serialises (to a
// Connection, another pool) is encoded as if no transport had one current.
class OutOfBandPause {
 public:
  OutOfBandPause();
  ~OutOfBandPause();
  OutOfBandPause(const OutOfBandPause&) = delete;
  OutOfBandPause& operator=(const OutOfBandPause&) = delete;

 private:
  BufferOutbox* outbox_;
  BufferInbox* inbox_;
};

}  // namespace detail

// The encoding: the size, then 0 and the bytes inline, or 1 and the index of an out-of-band
// buffer. The inline bytes are read through a size tag, so a decoding archive refuses a size
// larger than the message (see InputArchive in serialization.hpp).
template <class Archive>
void ByteBuffer::save(Archive& archive) const {
  const auto size = static_cast<std::uint64_t>(size_);
  detail::BufferOutbox* outbox = detail::BufferOutbox::current();
  if (outbox && size_ >= outbox->min_size()) {
    archive(size, std::uint8_t{1}, outbox->add(*this));
    return;
  }
  archive(size, std::uint8_t{0});
  archive(cereal::make_size_tag(size));
  if (size_ != 0) archive(cereal::binary_data(data_, size_));
}

template <class Archive>
void ByteBuffer::load(Archive& archive) {
  std::uint64_t size = 0;
  std::uint8_t where = 0;
  archive(size, where);
  if (where == 1) {
    std::uint32_t index = 0;
    archive(index);
    const detail::BufferInbox* inbox = detail::BufferInbox::current();
    if (!inbox) {
      throw ProtocolError(
          "concur::multiprocessing: a ByteBuffer was sent out of band, but this message carried "
          "no buffers");
    }
    *this = inbox->take(index, size);
    return;
  }
  if (where != 0) {
    throw ProtocolError("concur::multiprocessing: a ByteBuffer's encoding is corrupt");
  }
  std::uint64_t length = 0;
  archive(cereal::make_size_tag(length));
  if (length != size) {
    throw ProtocolError("concur::multiprocessing: a ByteBuffer's two sizes differ");
  }
  std::shared_ptr<std::byte[]> storage(new std::byte[length == 0 ? 1 : length]);
  if (length != 0) archive(cereal::binary_data(storage.get(), length));
  owner_ = storage;
  data_ = storage.get();
  size_ = static_cast<std::size_t>(length);
}

}  // namespace concur::multiprocessing
