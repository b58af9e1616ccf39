// Fuzz target: Connection::recv<T>'s decoding (concur::multiprocessing::deserialize<T>) of bytes
// as the types a program most often sends: strings, vectors, maps, optionals, variants, tuples
// and a user struct, and ByteBuffers (inline, or naming out-of-band buffers that a transport
// delivered, or naming some while none came). The first byte chooses the type. Whatever the bytes,
// the result is a value or a ProtocolError: never a crash, a read past the buffer, or an allocation
// the bytes ask for.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/byte_buffer.hpp"
#include "concur/multiprocessing/serialization.hpp"

namespace mp = concur::multiprocessing;

namespace {

struct Order {
  std::uint64_t id = 0;
  std::string customer;
  std::vector<std::pair<std::string, double>> lines;
  std::optional<std::string> note;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(id, customer, lines, note);
  }
};

template <class T>
void decode(std::string_view bytes) {
  try {
    (void)mp::deserialize<T>(bytes);
  } catch (const concur::ProtocolError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] >= 0xF0) {  // (above the nine cases below, so that their seeds keep their meaning)
    if (data[0] % 2 == 0) {
      decode<std::tuple<mp::ByteBuffer, int, mp::ByteBuffer>>(bytes);  // no inbox current
    } else {
      static const std::vector<mp::ByteBuffer> delivered{
          mp::ByteBuffer(std::vector<std::uint8_t>(64, 1)),
          mp::ByteBuffer(std::vector<std::uint8_t>(100'000, 2))};
      const mp::detail::BufferInbox inbox(delivered);
      decode<std::tuple<mp::ByteBuffer, int, mp::ByteBuffer>>(bytes);
    }
    return 0;
  }
  switch (data[0] % 9) {
    case 0:
      decode<std::string>(bytes);
      break;
    case 1:
      decode<std::vector<std::int64_t>>(bytes);
      break;
    case 2:
      decode<std::vector<std::string>>(bytes);
      break;
    case 3:
      decode<std::map<std::string, std::vector<double>>>(bytes);
      break;
    case 4:
      decode<std::unordered_map<std::int32_t, std::string>>(bytes);
      break;
    case 5:
      decode<std::variant<int, std::string, std::vector<float>>>(bytes);
      break;
    case 6:
      decode<std::tuple<int, std::optional<std::string>, std::vector<std::vector<char>>>>(bytes);
      break;
    case 7:
      decode<Order>(bytes);
      break;
    default:
      decode<std::vector<Order>>(bytes);
      break;
  }
  return 0;
}
