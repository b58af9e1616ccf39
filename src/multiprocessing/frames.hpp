// Internal: the frames every concur channel between processes carries (Connection, the bootstrap
// of a spawned child, the process pool's worker channels).
//
// A frame is a 24-byte header and a payload:
//   magic (u32) | kind (u16) | descriptor count (u16) | type tag (u64) | payload length (u64)
// Descriptors (SCM_RIGHTS) travel with the header bytes. A reader checks the magic and refuses a
// length above its limit before it allocates anything, and allocates a payload only as its bytes
// arrive, so garbage or a hostile peer yields a ProtocolError, never a huge allocation or a
// misparse (tests/fuzz/frames_fuzz.cpp).
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
// A channel's default limit: 8 GiB, well above any argument a program means to send (a 1 GiB
// array encodes to a little over 1 GiB), far below what a corrupt length would claim.
inline constexpr std::uint64_t kDefaultMaxFrameBytes = std::uint64_t{8} << 30;

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

// Appends a frame whose payload the caller appends to `out` itself (serialising straight into the
// outgoing buffer saves a copy): begin_frame writes the header and returns where it starts;
// end_frame, after the payload, fills in its length.
std::size_t begin_frame(std::string& out, std::uint16_t kind, std::uint64_t tag,
                        std::uint16_t fd_count = 0);
void end_frame(std::string& out, std::size_t frame_start);
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
  bool has_buffered_bytes() const { return start_ < buffer_.size() || big_.has_value(); }
  // Gives back the memory of frames already taken (after a big one).
  void release_consumed();
  void set_max_frame_bytes(std::uint64_t n) { max_frame_bytes_ = n; }

 private:
  struct Header {
    std::uint16_t kind;
    std::uint16_t fd_count;
    std::uint64_t tag;
    std::uint64_t length;
  };
  // The header at start_, checked; nullopt if not all of it is here. Throws ProtocolError.
  std::optional<Header> header() const;
  // If the first frame not taken yet is large and incomplete, moves what is here of its payload
  // into big_, so that the rest is read straight into place instead of through buffer_.
  void start_big_frame();

  std::uint64_t max_frame_bytes_;
  std::string buffer_;
  std::size_t start_ = 0;
  std::deque<int> fds_;
  std::optional<Frame> big_;    // a large frame being read directly into its payload
  std::uint16_t big_fds_ = 0;   // how many descriptors it carries
  std::size_t big_filled_ = 0;  // bytes of its payload received
  // The length its header claims. The payload grows toward it as bytes arrive (4x at a time), so
  // a header alone never makes the reader allocate what it claims.
  std::uint64_t big_length_ = 0;
};

// Blocks until a whole frame arrives (or the deadline). Returns nullopt at end of file before a
// frame starts; throws EOFError if the peer closed in the middle of one, TimeoutError at the
// deadline.
std::optional<Frame> receive_frame(int fd, FrameDecoder& decoder, const Deadline& deadline);

// Waits until fd is readable; false at the deadline.
bool wait_readable(int fd, const Deadline& deadline);

}  // namespace concur::multiprocessing::detail
