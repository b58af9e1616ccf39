// concur/multiprocessing/serialization.hpp: how values cross a process boundary.
//
// Values are serialised with cereal's binary archive: plain data, std containers, and your own
// types once they have a cereal `serialize` (or save/load) function. Nothing in the bytes names
// code to run, unlike Python's pickle, which can make the receiver call any importable function
// (`__reduce__`); a concur process only ever runs functions registered with CONCUR_REGISTER
// (concur/multiprocessing/registry.hpp), and decodes received bytes only as the type it expects.
//
// Each message carries a tag of its C++ type, so a receiver that expects another type gets a
// concur::TypeError naming both, never a misread value.
#pragma once

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <cstring>
#include <istream>
#include <optional>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "concur/errors.hpp"

namespace concur::multiprocessing {

// The empty value a void function returns across a process boundary.
struct None {
  template <class Archive>
  void serialize(Archive&) {}
};

namespace detail {

// Appends everything written to a std::string (cereal writes through a std::ostream).
class StringSink : public std::streambuf {
 public:
  explicit StringSink(std::string* out = nullptr) : out_(out) {}
  void target(std::string* out) { out_ = out; }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_->append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) out_->push_back(static_cast<char>(c));
    return c;
  }

 private:
  std::string* out_;
};

// Reads from bytes someone else owns.
class BytesSource : public std::streambuf {
 public:
  explicit BytesSource(std::string_view bytes = {}) { target(bytes); }
  void target(std::string_view bytes) {
    char* p = const_cast<char*>(bytes.data());
    setg(p, p, p + bytes.size());
  }
  std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
};

// One std::ostream or std::istream per thread, reused by every serialize() and deserialize() on
// it: constructing a stream imbues the global locale (an atomic count every thread shares) and
// looks up its facets, which cost more than encoding a small message. A nested call (a type's
// save() that serialises something itself) gets a stream of its own.
template <class Stream, class Buffer>
class StreamLease {
 public:
  StreamLease() {
    Slot& slot = this_thread_slot();
    if (!slot.busy) {
      slot_ = &slot;
      slot.busy = true;
    } else {
      own_.emplace();
    }
  }
  ~StreamLease() {
    if (slot_) slot_->busy = false;
  }
  StreamLease(const StreamLease&) = delete;
  StreamLease& operator=(const StreamLease&) = delete;
  Buffer& buffer() { return slot_ ? slot_->buffer : own_->buffer; }
  Stream& stream() {
    Stream& s = slot_ ? slot_->stream : own_->stream;
    s.clear();  // a previous failed decode may have left error bits
    return s;
  }

 private:
  struct Slot {
    Buffer buffer;
    Stream stream{&buffer};
    bool busy = false;
  };
  static Slot& this_thread_slot() {
    thread_local Slot slot;
    return slot;
  }
  Slot* slot_ = nullptr;
  std::optional<Slot> own_;
};

// A stable (within one build of a program) 64-bit tag of a type: FNV-1a of its mangled name.
template <class T>
std::uint64_t type_tag() {
  std::uint64_t h = 1469598103934665603ull;
  for (const char* c = typeid(T).name(); *c; ++c) {
    h ^= static_cast<unsigned char>(*c);
    h *= 1099511628211ull;
  }
  return h;
}

// The readable name of a type (demangled), for error messages.
std::string type_name(const std::type_info& type);

// File descriptors that travel with a message (connections, shared memory): while a FdOutbox is
// current on this thread, serialising such an object adds a duplicate of its descriptor to it and
// writes the index; while a FdInbox is current, deserialising one takes the descriptor at that
// index. The frame layer sends and receives the descriptors (SCM_RIGHTS) beside the bytes.
class FdOutbox {
 public:
  FdOutbox();
  ~FdOutbox();  // closes the descriptors that were never sent
  FdOutbox(const FdOutbox&) = delete;
  FdOutbox& operator=(const FdOutbox&) = delete;
  // Duplicates fd and returns its index in this message.
  std::uint32_t add(int fd);
  const std::vector<int>& fds() const { return fds_; }
  // The outbox current on this thread, or nullptr.
  static FdOutbox* current();

 private:
  std::vector<int> fds_;
  FdOutbox* previous_;
};

class FdInbox {
 public:
  explicit FdInbox(std::vector<int> fds);
  ~FdInbox();  // closes the descriptors nobody took
  FdInbox(const FdInbox&) = delete;
  FdInbox& operator=(const FdInbox&) = delete;
  // Takes ownership of descriptor `index`; throws ProtocolError if there is none.
  int take(std::uint32_t index);
  static FdInbox* current();

 private:
  std::vector<int> fds_;
  FdInbox* previous_;
};

// For save()/load() of an object that is a descriptor: throws a clear error outside a transfer.
std::uint32_t export_fd(int fd, const char* what);
int import_fd(std::uint32_t index, const char* what);

}  // namespace detail

// Appends the encoding of `value` to `out`.
template <class T>
void serialize_into(std::string& out, const T& value) {
  detail::StreamLease<std::ostream, detail::StringSink> lease;
  lease.buffer().target(&out);
  cereal::BinaryOutputArchive archive(lease.stream());
  archive(value);
}

template <class T>
std::string serialize(const T& value) {
  std::string out;
  serialize_into(out, value);
  return out;
}

// Decodes a T that must take up all of `bytes`; throws concur::ProtocolError otherwise.
template <class T>
T deserialize(std::string_view bytes) {
  detail::StreamLease<std::istream, detail::BytesSource> lease;
  detail::BytesSource& source = lease.buffer();
  source.target(bytes);
  T value{};
  try {
    cereal::BinaryInputArchive archive(lease.stream());
    archive(value);
  } catch (const std::exception& e) {  // cereal::Exception, or a corrupt size (bad_alloc...)
    throw ProtocolError("concur::multiprocessing: a message did not decode as " +
                        detail::type_name(typeid(T)) + " (" + e.what() +
                        "); both sides must send and receive the same type");
  }
  if (source.remaining() != 0) {
    throw ProtocolError("concur::multiprocessing: a message had " +
                        std::to_string(source.remaining()) + " bytes left after decoding " +
                        detail::type_name(typeid(T)) + "; both sides must use the same type");
  }
  return value;
}

}  // namespace concur::multiprocessing
