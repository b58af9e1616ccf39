// Fuzz target: the IPC frame reader (src/multiprocessing/frames.cpp), the first code to touch
// bytes that arrive from another process. The input is cut into chunks of sizes the input itself
// chooses and written to a socket pair between reads, so that headers and payloads arrive split
// at every point. Whatever arrives, the decoder yields frames or a ProtocolError: never a crash,
// a read past its buffer, or an allocation the bytes alone ask for.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "concur/errors.hpp"
#include "multiprocessing/frames.hpp"

namespace {

using concur::multiprocessing::detail::FrameDecoder;

// A limit far below the default (8 GiB): a header may claim up to this, and the decoder must not
// allocate what was claimed before the bytes arrive.
constexpr std::uint64_t kMaxFrame = std::uint64_t{1} << 30;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  // The first byte picks the chunk size (1..256 bytes), so the fuzzer explores the split points.
  const std::size_t chunk = static_cast<std::size_t>(data[0]) + 1;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  FrameDecoder decoder(kMaxFrame);
  std::size_t frames = 0;
  try {
    while (!rest.empty()) {
      const std::size_t n = std::min(chunk, rest.size());
      if (write(fds[1], rest.data(), n) != static_cast<ssize_t>(n)) break;
      rest.remove_prefix(n);
      if (!decoder.read_available(fds[0])) break;
      while (auto frame = decoder.next()) {
        ++frames;
        if (frame->payload.size() > size) __builtin_trap();  // a frame larger than the input
      }
    }
  } catch (const concur::ProtocolError&) {
  }
  close(fds[0]);
  close(fds[1]);
  return 0;
}
