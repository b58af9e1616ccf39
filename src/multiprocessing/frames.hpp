// Internal: the frames every concur channel between processes carries (Connection, the bootstrap
// of a spawned child, the process pool's worker channels).
//
// A frame is a 24-byte header and a payload:
//   magic (u32) | kind (u16) | descriptor count (u16) | type tag (u64) | payload length (u64)
// Descriptors (SCM_RIGHTS) travel with the header bytes. A reader checks the magic and refuses a
// length above its limit before it allocates anything, so garbage or a hostile peer yields a
// ProtocolError, never a huge allocation or a misparse.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace concur::multiprocessing::detail {

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;

inline constexpr std::uint32_t kFrameMagic = 0x72436e43;  // "CnCr"
inline constexpr std::size_t kHeaderBytes = 24;
inline constexpr std::uint64_t kDefaultMaxFrameBytes = std::uint64_t{1} << 30;

enum FrameKind : std::uint16_t {
  kUserMessage = 1,  // Connection::send
  kBootstrap = 2,    // the task of a spawned or forkserver child
  kTask = 3,         // process pool: parent -> worker
  kResult = 4,       // process pool: worker -> parent
  kControl = 5,      // process pool: hello, initializer result, exit
};

struct Frame {
  std::uint16_t kind = 0;
  std::uint64_t tag = 0;
  std::string payload;
  std::vector<int> fds;  // owned by the receiver of the frame
};

// Appends one frame to `out` (for writers that batch several frames into one write).
void append_frame(std::string& out, std::uint16_t kind, std::uint64_t tag, std::string_view payload,
                  std::uint16_t fd_count = 0);

// Writes all of `bytes`, the descriptors attached to the first byte; blocks (poll) until done or
// the deadline. Throws EOFError if the peer is gone, TimeoutError at the deadline.
void send_all(int fd, std::string_view bytes, const std::vector<int>& fds,
              const Deadline& deadline);

// Accumulates bytes and descriptors read from a channel and cuts them into frames.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::uint64_t max_frame_bytes = kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}
  ~FrameDecoder();
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  // Reads what is available without blocking (the fd may be blocking or not: call after poll
  // said readable). Returns false on end of file (the peer closed).
  bool read_available(int fd);
  // The next complete frame, if any. Throws ProtocolError on a bad header.
  std::optional<Frame> next();
  bool has_buffered_bytes() const { return start_ < buffer_.size(); }
  void set_max_frame_bytes(std::uint64_t n) { max_frame_bytes_ = n; }

 private:
  std::uint64_t max_frame_bytes_;
  std::string buffer_;
  std::size_t start_ = 0;
  std::deque<int> fds_;
};

// Blocks until a whole frame arrives (or the deadline). Returns nullopt at end of file before a
// frame starts; throws EOFError if the peer closed in the middle of one, TimeoutError at the
// deadline.
std::optional<Frame> receive_frame(int fd, FrameDecoder& decoder, const Deadline& deadline);

// Waits until fd is readable; false at the deadline.
bool wait_readable(int fd, const Deadline& deadline);

}  // namespace concur::multiprocessing::detail
