// ByteBuffer's copies and the thread-current out-of-band outbox and inbox.
#include "concur/multiprocessing/byte_buffer.hpp"

#include <cstring>

namespace concur::multiprocessing {

ByteBuffer ByteBuffer::copy_of(std::span<const std::byte> bytes) {
  std::shared_ptr<std::byte[]> storage(new std::byte[bytes.empty() ? 1 : bytes.size()]);
  if (!bytes.empty()) std::memcpy(storage.get(), bytes.data(), bytes.size());
  const std::byte* data = storage.get();
  return ByteBuffer(std::move(storage), {data, bytes.size()});
}

namespace detail {
namespace {
thread_local BufferOutbox* tl_outbox = nullptr;
thread_local BufferInbox* tl_inbox = nullptr;
}  // namespace

BufferOutbox::BufferOutbox(std::size_t min_size) : min_size_(min_size), previous_(tl_outbox) {
  tl_outbox = this;
}

BufferOutbox::~BufferOutbox() {
  tl_outbox = previous_;
}

std::uint32_t BufferOutbox::add(const ByteBuffer& buffer) {
  buffers_.push_back(buffer);
  return static_cast<std::uint32_t>(buffers_.size() - 1);
}

BufferOutbox* BufferOutbox::current() {
  return tl_outbox;
}

BufferInbox::BufferInbox(const std::vector<ByteBuffer>& buffers)
    : buffers_(buffers), previous_(tl_inbox) {
  tl_inbox = this;
}

BufferInbox::~BufferInbox() {
  tl_inbox = previous_;
}

ByteBuffer BufferInbox::take(std::uint32_t index, std::uint64_t size) const {
  if (index >= buffers_.size()) {
    throw ProtocolError("concur::multiprocessing: a message refers to out-of-band buffer " +
                        std::to_string(index) + " of the " + std::to_string(buffers_.size()) +
                        " it carried");
  }
  if (buffers_[index].size() != size) {
    throw ProtocolError("concur::multiprocessing: out-of-band buffer " + std::to_string(index) +
                        " has " + std::to_string(buffers_[index].size()) +
                        " bytes where the message says " + std::to_string(size));
  }
  return buffers_[index];
}

BufferInbox* BufferInbox::current() {
  return tl_inbox;
}

OutOfBandPause::OutOfBandPause() : outbox_(tl_outbox), inbox_(tl_inbox) {
  tl_outbox = nullptr;
  tl_inbox = nullptr;
}

OutOfBandPause::~OutOfBandPause() {
  tl_outbox = outbox_;
  tl_inbox = inbox_;
}

}  // namespace detail
}  // namespace concur::multiprocessing
