// Internal: one TCP or pipe connection's state, shared by its StreamReader and StreamWriter, the
// code that connects, and the server that accepted it; and the operations on it that more than
// one of those use. The libuv callbacks that move its bytes live in stream_state.cpp.
//
// Where data flows: bytes arrive in on_read (stream_state.cpp), either straight into a waiting
// read or into `rbuf`; a read (stream_reader.cpp) takes them with take()/discard(). A write
// (stream_writer.cpp) goes to the socket at once if it can (uv_try_write), else through
// start_write(), with later writes coalesced in `pending`. Connecting (open_connection.cpp) and
// accepting (server.cpp) make the state with new_stream() and hand it to one reader and one
// writer handle.
//
// Lifetime. The state is freed once its handle is closed and no StreamReader or StreamWriter refers
// to it. Those counts change only in the handles' constructors and destructors (streams.hpp):
// internal code that needs the state to stay alive holds a handle, never a count of its own.
// Thread safety: none; the loop's thread.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "asyncio/stream_internal.hpp"
#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/detail/wait.hpp"
#include "concur/asyncio/streams.hpp"

namespace concur::asyncio::detail {

// The size of one libuv read.
inline constexpr std::size_t kReadChunk = 64 * 1024;

// A connection's TLS (tls_stream.hpp), freed with the state.
struct TlsSession;
struct TlsDeleter {
  void operator()(TlsSession* t) const noexcept;
};

struct StreamState : LoopResource {
  union Handle {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t stream;
    uv_handle_t handle;
  } h;
  LoopCore* core = nullptr;
  ServerState* server = nullptr;
  StreamState* next_in_server = nullptr;
  StreamState* prev_in_server = nullptr;

  // Reading.
  std::string rbuf;
  std::size_t rpos = 0;
  std::size_t limit = kDefaultStreamLimit;
  StreamReader::ReadOp* reader_op = nullptr;
  int read_error = 0;
  bool eof = false;
  bool reading = false;

  // Writing.
  struct WriteReq {
    uv_write_t req;
    StreamState* s;
    std::string data;
  };
  std::string pending;  // queued behind the write in flight, sent as one write after it
  bool write_in_flight = false;
  std::size_t high_water = 64 * 1024;
  std::size_t low_water = 16 * 1024;
  int write_error = 0;
  WaitList drainers{"StreamWriter.drain"};
  WaitList closers{"StreamWriter.wait_closed"};

  // TLS: null for plain TCP and pipes, and testing it is all TLS costs their reads and writes.
  std::unique_ptr<TlsSession, TlsDeleter> tls;

  bool is_tcp = true;
  bool closing = false;  // close() called: flush, then close the handle
  bool closed = false;   // the handle's close callback ran
  bool eof_requested = false;
  bool eof_sent = false;
  // Handles referring to this state. Changed only by StreamReader and StreamWriter themselves.
  std::uint32_t reader_refs = 0;
  std::uint32_t writer_refs = 0;

  std::size_t buffered() const { return rbuf.size() - rpos; }
  std::size_t write_buffered() const { return h.stream.write_queue_size + pending.size(); }
  uv_stream_t* stream() { return &h.stream; }
  uv_handle_t* handle() { return &h.handle; }
};

struct ServerState : LoopResource {
  LoopCore* core = nullptr;
  ClientHandler handler;
  ServerOptions options;
  std::vector<uv_tcp_t*> listeners;
  std::size_t listeners_open = 0;
  StreamState* connections = nullptr;
  std::size_t active = 0;
  std::uint32_t refs = 0;  // Server handles
  bool closing = false;
  bool serving_forever = false;
  WaitList closed_waiters{"Server.wait_closed"};
  WaitList serve_waiters{"Server.serve_forever"};
  std::vector<SocketAddress> addresses;
  // Failed accepts are reported at most once a second (with how many were not), as Python's
  // server logs and pauses for a second: at the descriptor limit every new client fails one.
  std::int64_t last_accept_report_ns = 0;
  std::uint64_t unreported_accept_failures = 0;
};

// A new state for a handle the caller initialises next (uv_tcp_init / uv_pipe_init, then
// `h.handle.data = s`), with no handle referring to it yet: wrap it in a StreamReader and a
// StreamWriter (or close it) before returning to the loop.
StreamState* new_stream(LoopCore& core, std::size_t limit);

// Frees the state if its handle is closed and no handle refers to it.
void maybe_free(StreamState* s);
// The server's counterparts: frees it once nothing refers to it; wakes wait_closed() once closed.
void maybe_free_server(ServerState* srv);
void check_server_closed(ServerState* srv);

// Closing. close_handle: now, nothing more is sent. close_after_flush: StreamWriter::close() and
// Server::close_clients(), after what is queued. abort_now: StreamWriter::abort() and
// Server::abort_clients(), at once with a reset for TCP. on_closed is libuv's close callback.
void close_handle(StreamState* s);
void close_after_flush(StreamState* s);
void abort_now(StreamState* s);
void on_closed(uv_handle_t* handle);

// Writing: queues `data` from `offset` as one libuv write; sends the half-close; records a
// failure (both directions) and closes.
void start_write(StreamState* s, std::string data, std::size_t offset = 0);
// Sends what the socket takes now (uv_try_write); how many bytes it took, or -1 if the write
// failed (the connection has then failed).
long try_send(StreamState* s, std::string_view data);
void do_shutdown(StreamState* s);
void fail(StreamState* s, int err);
// Throws the connection's failure: TLS's own exception when TLS failed (tls_stream.hpp), else
// the libuv error err as concur's OSError.
[[noreturn]] void throw_stream_error(StreamState* s, int err, const std::string& what);

// Reading: starts libuv reading unless at EOF, failed, closing or already reading; takes or drops
// k bytes from the front of the buffer (and resumes reading once the buffer is under the limit).
void start_reading(StreamState* s);
// Bytes of the stream arrived (plaintext, for TLS): to the waiting read or the buffer, pausing
// reading above the limit; resumes the read once satisfied (inline: it may write or close).
void bytes_arrived(StreamState* s, const char* data, std::size_t n);
// The loop thread's read buffer (kReadChunk bytes), lent to each read callback in turn.
char* read_buffer();
std::string take(StreamState* s, std::size_t k);
void discard(StreamState* s, std::size_t k);
// readuntil: no separator in `have` bytes, and it could no longer start within the limit
// (Python's len(buffer) + 1 - len(separator) > limit).
bool sep_overrun(std::size_t have, std::size_t sep_size, std::size_t limit);

// What the connection's callbacks do to a waiting read: the one door to ReadOp's private parts
// besides StreamReader.
struct ReadOpAccess {
  // on_read with an empty buffer and a waiting read(n): hands up to n bytes over without
  // buffering them; returns how many it took.
  static std::size_t deliver(StreamReader::ReadOp& op, const char* data, std::size_t size);
  static bool wants_direct_delivery(const StreamReader::ReadOp& op);
  // A waiting read_into's buffer, for libuv to read into directly; empty for other reads.
  static std::span<char> read_target(const StreamReader::ReadOp& op);
  static bool satisfied(StreamReader::ReadOp& op);
  // The connection closed under a waiting read: it sees EOF or the error, not a delivery.
  static void unfill(StreamReader::ReadOp& op);
};

// Resumes the waiting read, if any.
void wake_reader(StreamState* s);

// A server's connection is ready (accepted; for TLS, handshaken): runs its handler as a task
// (server.cpp).
void start_client_handler(StreamState* s);

}  // namespace concur::asyncio::detail
