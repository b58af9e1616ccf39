// fuzz_seeds DIR: writes the seed corpus of the fuzz targets (DIR/<target>/<seed>): valid
// messages of each kind, so that the fuzzers start from inputs that reach deep into the decoders.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include "concur/multiprocessing/byte_buffer.hpp"
#include "concur/multiprocessing/serialization.hpp"
#include "fuzz_functions.hpp"
#include "multiprocessing/frames.hpp"
#include "multiprocessing/task_message.hpp"

namespace mp = concur::multiprocessing;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

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

void frames(const fs::path& dir) {
  std::string two;
  mp::detail::append_frame(two, mp::detail::kUserMessage, 42, mp::serialize(std::string("hi")));
  mp::detail::append_frame(two, mp::detail::kResult, 7, std::string(300, 'x'));
  write(dir, "two-frames-chunk-1", std::string(1, '\0') + two);
  write(dir, "two-frames-chunk-64", std::string(1, '\x3f') + two);
  std::string empty;
  mp::detail::append_frame(empty, mp::detail::kControl, 0, "");
  write(dir, "empty-payload", std::string(1, '\x07') + empty);
}

void typed_values(const fs::path& dir) {
  const Order order{9, "ada", {{"tea", 2.5}, {"cake", 4}}, std::string("by noon")};
  write(dir, "0-string", '\0' + mp::serialize(std::string("hello")));
  write(dir, "1-ints", '\1' + mp::serialize(std::vector<std::int64_t>{1, -2, 3}));
  write(dir, "2-strings", '\2' + mp::serialize(std::vector<std::string>{"a", "", "ccc"}));
  write(dir, "3-map",
        '\3' + mp::serialize(
                   std::map<std::string, std::vector<double>>{{"x", {1.0, 2.0}}, {"y", {}}}));
  write(dir, "4-unordered",
        '\4' + mp::serialize(std::unordered_map<std::int32_t, std::string>{{1, "one"}}));
  write(dir, "5-variant",
        '\5' + mp::serialize(std::variant<int, std::string, std::vector<float>>{"v"}));
  write(dir, "6-tuple",
        '\6' + mp::serialize(std::make_tuple(1, std::optional<std::string>("o"),
                                             std::vector<std::vector<char>>{{'a', 'b'}, {}})));
  write(dir, "7-order", '\7' + mp::serialize(order));
  write(dir, "8-orders", '\x08' + mp::serialize(std::vector<Order>{order, order}));
  // ByteBuffers: inline (no inbox), then naming the two buffers the fuzzer's inbox delivers
  // (64 and 100,000 bytes) with one inline between them.
  using Triple = std::tuple<mp::ByteBuffer, int, mp::ByteBuffer>;
  write(dir, "f0-byte-buffers-inline",
        '\xf0' + mp::serialize(
                     Triple{mp::ByteBuffer(std::vector<std::uint8_t>(5, 9)), 3, mp::ByteBuffer()}));
  mp::detail::BufferOutbox outbox(64);
  write(dir, "f1-byte-buffers-out-of-band",
        '\xf1' + mp::serialize(Triple{mp::ByteBuffer(std::vector<std::uint8_t>(64, 1)), 4,
                                      mp::ByteBuffer(std::vector<std::uint8_t>(100'000, 2))}));
}

void calls(const fs::path& dir) {
  write(dir, "add", mp::serialize(mp::make_call(&concur_fuzz::add, 2, 3)));
  write(dir, "join",
        mp::serialize(mp::make_call(&concur_fuzz::join, std::vector<std::string>{"a", "b"},
                                    std::string(", "))));
  write(dir, "total",
        mp::serialize(mp::make_call(&concur_fuzz::total,
                                    std::map<std::string, std::vector<double>>{{"x", {1.5}}})));
  write(dir, "nothing", mp::serialize(mp::make_call(&concur_fuzz::nothing)));
  mp::Call other = mp::make_call(&concur_fuzz::add, 2, 3);
  other.signature = "int (*)(long, long)";
  write(dir, "add-other-signature", mp::serialize(other));
  other.function = "system";
  write(dir, "unregistered-name", mp::serialize(other));
}

// [calls][type][ResultMessage]: a one-call answer, a chunk's, an exception, and a short chunk.
void results(const fs::path& dir) {
  mp::detail::ResultMessage one;
  one.id = 3;
  one.results = {mp::serialize(std::int64_t{49})};
  write(dir, "one-int", std::string{'\0', '\0'} + mp::serialize(one));
  mp::detail::ResultMessage chunk;
  chunk.id = 4;
  chunk.results = {mp::serialize(std::string("a")), mp::serialize(std::string("bc")),
                   mp::serialize(std::string())};
  write(dir, "chunk-of-3-strings", std::string{'\2', '\1'} + mp::serialize(chunk));
  write(dir, "chunk-short", std::string{'\3', '\1'} + mp::serialize(chunk));
  mp::detail::ResultMessage raised;
  raised.id = 5;
  raised.status = mp::detail::ResultMessage::kRaised;
  raised.error_type = "std::runtime_error";
  raised.error_message = "boom";
  write(dir, "raised", std::string{'\0', '\2'} + mp::serialize(raised));
  mp::detail::ResultMessage shared;
  shared.id = 6;
  shared.results = {"", mp::serialize(std::string("small")), ""};
  shared.shared = {{0, 0, 16}, {2, 4096, 300}};
  write(dir, "shared-spans", std::string{'\2', '\1'} + mp::serialize(shared));
}

// [limit][reads][read bytes...][chunking seed][payload]: lines, a separator split across chunks,
// an overlong line, and readexactly past EOF.
void stream_reads(const fs::path& dir) {
  write(dir, "lines", std::string{'\x3f', '\3', '\6', '\6', '\x0c', '\5'} + "one\ntwo\nthree\n");
  write(dir, "until-split",
        std::string{'\x10', '\2', '\x0c', '\x0c', '\1'} + "xxabyyab and the rest");
  write(dir, "overlong-line", std::string{'\4', '\2', '\6', '\6', '\2'} + "0123456789\nok\n");
  write(dir, "exactly-past-eof", std::string{'\x20', '\1', '\x7a', '\3'} + "short");
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path dir = argc > 1 ? argv[1] : "corpus";
  frames(dir / "frames");
  typed_values(dir / "typed_values");
  calls(dir / "call");
  results(dir / "result");
  stream_reads(dir / "stream_reader");
  return 0;
}
