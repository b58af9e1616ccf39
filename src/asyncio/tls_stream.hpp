// Internal: TLS on a stream's connection (open_connection / start_server with an SSLContext),
// OpenSSL driven through a BIO of ours, as uvloop's and CPython's sslproto drive an SSLObject
// through memory BIOs:
//
//   socket --on_read--> tls_received: TlsSession::in -> SSL_do_handshake / SSL_read -> plaintext
//                       to the reader's buffer (bytes_arrived, the plain path's own code)
//   write() ----------> tls_write: SSL_write -> TlsSession::out -> flush_ciphertext -> the plain
//                       send path (uv_try_write, then the connection's queue)
//
// Why not memory BIOs: one zero-fills what it grows by before copying into it
// (BUF_MEM_grow_clean), and what OpenSSL wrote into it must be copied out again; at 100
// connections x 64 KiB that was 8% of the echo server's time (perf). Ours lends OpenSSL the bytes
// libuv just read, in place, and appends the records OpenSSL writes straight to the buffer the
// socket is sent from.
//
// OpenSSL never touches the socket: libuv reads and writes it as for plain TCP, so back-pressure,
// drain() and closing are the plain stream's. A plain connection pays one null test of
// StreamState::tls on each read and write, nothing more.
//
// The handshake. A client (open_connection) sends its hello at once (tls_start) and awaits
// tls_handshake(), as does StreamWriter::start_tls() on either end; a server connection
// (start_server) starts its handler only once the handshake is done (Python's rule: the callback
// gets a handshaken stream) and is closed unseen when it fails. A failure flushes the alert that
// says why, records the exception (TlsSession::error, which every later read and drain() rethrows)
// and closes the connection.
//
// The end. close() sends close_notify after what is queued, then closes the socket, without
// waiting for the peer's (TLS allows it; Python waits up to ssl_shutdown_timeout). A close_notify
// received, or the socket's EOF without one (an abrupt close), is EOF for the reader: reads
// return "" once the buffer is empty, as Python's asyncio (sslproto's eof_received). abort() sends
// nothing. write_eof() is NotImplementedError: TLS has no half-close.
// Thread safety: none; the loop's thread (OpenSSL's error queue is per thread, and is emptied
// after every failure so one connection's error is never read as another's).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "asyncio/ssl_context.hpp"
#include "asyncio/stream_state.hpp"
#include "concur/asyncio/detail/wait.hpp"
#include "concur/asyncio/ssl.hpp"
#include "concur/asyncio/task.hpp"

namespace concur::asyncio::detail {

struct TlsSession;
// The handshake's deadline: a loop timer that knows its session.
struct HandshakeTimer : TimerNode {
  TlsSession* session = nullptr;
};

struct TlsSession {
  std::shared_ptr<SSLContext::Impl> context;  // the SSL_CTX stays alive while the SSL uses it
  SSL* ssl = nullptr;                         // owns the BIO
  BIO* bio = nullptr;                         // OpenSSL's way to `in` and `out`
  // Ciphertext from the socket not yet taken by OpenSSL: the chunk being handled, lent in place,
  // and what a return before OpenSSL took it all left over (copied, served first).
  std::string_view in;
  std::string in_kept;
  std::string out;  // ciphertext OpenSSL wrote, for the socket (flush_ciphertext)
  bool server = false;
  bool run_handler = false;  // an accepted connection: its server's handler starts once done
  bool handshake_done = false;
  bool shutdown_sent = false;
  std::string hostname;        // the name checked, for the mismatch message
  const char* who = "";        // the call that made it ("asyncio::open_connection"), for messages
  std::string peer;            // "host:port", for messages
  std::exception_ptr error;    // why the handshake or a record failed
  WaitList handshake_waiters;  // tls_handshake()
  // Armed from tls_start until the handshake is done or the handle closes (ssl_handshake_timeout).
  HandshakeTimer handshake_timer;
  StreamState* stream = nullptr;
  std::chrono::milliseconds handshake_timeout{0};
  ~TlsSession();
};

// Makes the connection a TLS one (before any byte of it is read), arms the handshake's timeout
// and, for a client, sends its hello. server_hostname: the name sent (SNI, unless an IP address)
// and checked when the context checks names. Throws SSLError (OpenSSL out of memory) or ValueError
// (a name check without a name); the connection is then still plain and the caller closes it.
void tls_start(StreamState* s, const char* who, const SSLContext& context, bool server,
               const std::string& server_hostname, std::string peer,
               std::chrono::milliseconds handshake_timeout);
// A wait for the handshake (open_connection, start_tls): returns once it is done, or throws why
// it failed (SSLCertVerificationError, SSLError, ConnectionResetError...). The caller holds a
// handle.
Task<void> tls_handshake(StreamState* s);
// StreamWriter::start_tls() once its arguments are checked: `keep` holds the connection s.
Task<void> tls_upgrade(StreamWriter keep, StreamState* s, SSLContext context,
                       StartTlsOptions options);
// StreamWriter::tls_info().
std::optional<TlsInfo> tls_info(StreamState* s);

// From the connection's callbacks (stream_state.cpp): ciphertext read; the socket's EOF; the
// handle closed.
void tls_received(StreamState* s, const char* data, std::size_t size);
void tls_eof(StreamState* s);
void tls_closed(StreamState* s);
// StreamWriter::write() of plaintext.
void tls_write(StreamState* s, std::string_view data);
// Queues close_notify behind what is queued (close(), close_clients(), the last handle gone).
void tls_close_notify(StreamState* s);

}  // namespace concur::asyncio::detail
