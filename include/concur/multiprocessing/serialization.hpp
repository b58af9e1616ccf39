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

// The archive every received message is decoded with: cereal's binary format, read straight
// from the bytes (no std::istream), and refusing any length field larger than the bytes left.
// cereal's own BinaryInputArchive resizes a string or vector to whatever length the bytes claim
// before reading it, so eight hostile bytes could make the receiver allocate exabytes; here a
// length can ask for at most as many elements as there are bytes left, which keeps every
// allocation within a small multiple of the message's own size. (A container of more elements
// of an empty type than the message has bytes is the one thing this refuses that cereal's
// archive would have read.)
// (In a namespace of its own, with its loaders below: cereal finds them by argument-dependent
// lookup, and there they hide no other function named serialize.)
namespace decoding {
class InputArchive : public cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit InputArchive(std::string_view bytes)
      : cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision>(this),
        next_(bytes.data()),
        end_(bytes.data() + bytes.size()) {}

  void loadBinary(void* data, std::size_t size) {
    if (size > remaining()) {
      throw cereal::Exception("the message ended " + std::to_string(size - remaining()) +
                              " bytes early");
    }
    if (size != 0) std::memcpy(data, next_, size);
    next_ += size;
  }
  // A length field: as many elements as there are bytes left, at most.
  void check_length(std::uint64_t length) const {
    if (length > remaining()) {
      throw cereal::Exception("a length of " + std::to_string(length) +
                              " elements is more than the " + std::to_string(remaining()) +
                              " bytes left in the message");
    }
  }
  std::size_t remaining() const { return static_cast<std::size_t>(end_ - next_); }

 private:
  const char* next_;
  const char* end_;
};
}  // namespace decoding
using decoding::InputArchive;

// One std::ostream per thread, reused by every serialize() on it: constructing a stream imbues the
// global locale (an atomic count every thread shares) and looks up its facets, which cost more than
// encoding a small message. A nested call (a type's save() that serialises something itself) gets a
// stream of its own.
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

// How cereal reads each primitive from an InputArchive (found by argument-dependent lookup), as
// cereal/archives/binary.hpp does for its own archive.
namespace decoding {
template <class T>
std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(
    InputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}
// A bool is one byte, 0 or 1: any other byte is no bool (copying it into one is undefined).
inline void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, bool& t) {
  unsigned char byte = 0;
  ar.loadBinary(&byte, 1);
  if (byte > 1) throw cereal::Exception("a bool was encoded as " + std::to_string(byte));
  t = byte == 1;
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(InputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(InputArchive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t length = 0;
  ar.loadBinary(&length, sizeof length);
  ar.check_length(length);
  t.size = static_cast<std::remove_reference_t<T>>(length);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}
}  // namespace decoding

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

// Decodes a T that must take up all of `bytes`; throws concur::ProtocolError otherwise (also for
// a length field that claims more elements than the bytes left: see detail::InputArchive).
template <class T>
T deserialize(std::string_view bytes) {
  T value{};
  std::size_t left = 0;
  try {
    detail::InputArchive archive(bytes);
    archive(value);
    left = archive.remaining();
  } catch (const std::exception& e) {  // cereal::Exception, or what a type's own load() threw
    throw ProtocolError("concur::multiprocessing: a message did not decode as " +
                        detail::type_name(typeid(T)) + " (" + e.what() +
                        "); both sides must send and receive the same type");
  }
  if (left != 0) {
    throw ProtocolError("concur::multiprocessing: a message had " + std::to_string(left) +
                        " bytes left after decoding " + detail::type_name(typeid(T)) +
                        "; both sides must use the same type");
  }
  return value;
}

}  // namespace concur::multiprocessing

// The decoding archive is a cereal archive like its binary one (for types with per-archive
// save/load functions, and for load_minimal / save_minimal pairing).
CEREAL_REGISTER_ARCHIVE(concur::multiprocessing::detail::decoding::InputArchive)
// (Half of CEREAL_SETUP_ARCHIVE_TRAITS: the other half would pair cereal's binary output archive
// with this one instead of with its own input archive.)
namespace cereal::traits::detail {
template <>
struct get_output_from_input<concur::multiprocessing::detail::decoding::InputArchive> {
  using type = cereal::BinaryOutputArchive;
};
}  // namespace cereal::traits::detail
