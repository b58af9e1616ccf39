// concur/multiprocessing/serialization.hpp: values round-trip; bytes that are no message of the
// expected type, including hostile length fields, give a ProtocolError and no large allocation.
#include "concur/multiprocessing/serialization.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

namespace mp = concur::multiprocessing;

namespace {

struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(x, y, label);
  }
  bool operator==(const Point&) const = default;
};

// A type with cereal's save_minimal / load_minimal pair, which needs the decoding archive to be
// paired with cereal's binary output archive.
struct Celsius {
  double degrees = 0;
  template <class Archive>
  double save_minimal(const Archive&) const {
    return degrees;
  }
  template <class Archive>
  void load_minimal(const Archive&, const double& value) {
    degrees = value;
  }
};

std::string little_endian_u64(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
  return out;
}

TEST(Serialization, ValuesRoundTrip) {
  const std::tuple<int, std::string, std::vector<double>, std::map<std::string, int>, Point> value{
      7, "seven", {1.5, 2.5}, {{"a", 1}, {"b", 2}}, Point{1, 2.5, "p"}};
  EXPECT_EQ(mp::deserialize<std::remove_const_t<decltype(value)>>(mp::serialize(value)), value);
  EXPECT_EQ(mp::deserialize<Celsius>(mp::serialize(Celsius{21.5})).degrees, 21.5);
  EXPECT_EQ(mp::deserialize<std::string>(mp::serialize(std::string())), "");
  const std::vector<std::uint8_t> big(1 << 20, 0xab);
  EXPECT_EQ(mp::deserialize<std::vector<std::uint8_t>>(mp::serialize(big)), big);
}

TEST(Serialization, ATruncatedMessageIsAProtocolError) {
  const std::string bytes = mp::serialize(std::vector<double>{1, 2, 3});
  EXPECT_THROW_MSG(mp::deserialize<std::vector<double>>(bytes.substr(0, bytes.size() - 3)),
                   concur::ProtocolError, "ended 3 bytes early");
  EXPECT_THROW_MSG(mp::deserialize<int>(""), concur::ProtocolError, "did not decode as int");
}

TEST(Serialization, BytesLeftOverAreAProtocolError) {
  EXPECT_THROW_MSG(mp::deserialize<std::int32_t>(mp::serialize(std::int64_t{1})),
                   concur::ProtocolError, "4 bytes left after decoding int");
}

// Regression: cereal's own binary archive resized a string to the length the bytes claimed
// before reading it, so eight bytes could ask the receiver for 2^62 bytes of memory.
TEST(Serialization, AHostileLengthIsRefusedBeforeAnythingIsAllocated) {
  EXPECT_THROW_MSG(mp::deserialize<std::string>(little_endian_u64(std::uint64_t{1} << 62)),
                   concur::ProtocolError, "more than the 0 bytes left");
  EXPECT_THROW_MSG(mp::deserialize<std::vector<double>>(little_endian_u64(1'000'000) + "12345678"),
                   concur::ProtocolError, "a length of 1000000 elements is more than the 8 bytes");
  EXPECT_THROW_MSG(mp::deserialize<std::vector<std::string>>(little_endian_u64(~std::uint64_t{0})),
                   concur::ProtocolError, "did not decode");
  using IntMap = std::map<int, int>;
  EXPECT_THROW_MSG(mp::deserialize<IntMap>(little_endian_u64(1u << 30)), concur::ProtocolError,
                   "did not decode");
}

// Found by tests/fuzz/typed_values_fuzz: a byte other than 0 or 1 copied into a bool (undefined
// behaviour, and a "bool" that is neither true nor false).
TEST(Serialization, ABoolByteOtherThanZeroOrOneIsAProtocolError) {
  EXPECT_TRUE(mp::deserialize<bool>(mp::serialize(true)));
  EXPECT_FALSE(mp::deserialize<bool>(mp::serialize(false)));
  EXPECT_THROW_MSG(mp::deserialize<bool>(std::string(1, '\x02')), concur::ProtocolError,
                   "a bool was encoded as 2");
  EXPECT_THROW_MSG(mp::deserialize<std::optional<int>>(std::string("\x07\0\0\0\0", 5)),
                   concur::ProtocolError, "a bool was encoded as 7");
}

}  // namespace
