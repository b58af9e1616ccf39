// TLS on a stream's connection: the handshake, records in and out through memory BIOs, and the
// end (see tls_stream.hpp).
#include "asyncio/tls_stream.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "asyncio/uv_util.hpp"
#include "concur/errors.hpp"

namespace concur::asyncio::detail {

TlsSession::~TlsSession() {
  SSL_free(ssl);
}

void TlsDeleter::operator()(TlsSession* t) const noexcept {
  delete t;
}

namespace {

bool is_ip_address(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// The BIO between OpenSSL and the session (see tls_stream.hpp): reads take from `in_kept`, then
// from `in`; writes append to `out`. It never blocks: with nothing to read it asks OpenSSL to
// retry (SSL_ERROR_WANT_READ), as an empty memory BIO does.
int bio_read(BIO* b, char* buf, int len) {
  auto* t = static_cast<TlsSession*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  const auto want = static_cast<std::size_t>(std::max(len, 0));
  if (!t->in_kept.empty()) {
    const std::size_t n = std::min(want, t->in_kept.size());
    std::memcpy(buf, t->in_kept.data(), n);
    t->in_kept.erase(0, n);
    return static_cast<int>(n);
  }
  if (t->in.empty()) {
    BIO_set_retry_read(b);
    return -1;
  }
  const std::size_t n = std::min(want, t->in.size());
  std::memcpy(buf, t->in.data(), n);
  t->in.remove_prefix(n);
  return static_cast<int>(n);
}

int bio_write(BIO* b, const char* buf, int len) {
  auto* t = static_cast<TlsSession*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  t->out.append(buf, static_cast<std::size_t>(std::max(len, 0)));
  return len;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  const auto* t = static_cast<const TlsSession*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // everything written is in `out` already
    case BIO_CTRL_PENDING:
      return static_cast<long>(t->in_kept.size() + t->in.size());
    default:
      return 0;  // not supported, as a memory BIO answers what it does not know
  }
}

BIO_METHOD* session_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "concur TLS session");
    if (m != nullptr) {
      BIO_meth_set_read(m, bio_read);
      BIO_meth_set_write(m, bio_write);
      BIO_meth_set_ctrl(m, bio_ctrl);
    }
    return m;
  }();
  return method;
}

// Sends what OpenSSL wrote through the plain stream's send path: at once what the socket takes,
// the rest queued (behind the write in flight, if any). `out` keeps its capacity for the next
// flight unless it is handed over whole.
void flush_ciphertext(StreamState* s) {
  TlsSession& t = *s->tls;
  if (t.out.empty()) return;
  if (s->write_error || uv_is_closing(s->handle())) {
    t.out.clear();  // nobody will send it
    return;
  }
  if (s->write_in_flight) {
    if (s->pending.empty()) {
      s->pending.swap(t.out);
    } else {
      s->pending.append(t.out);
    }
    t.out.clear();
    return;
  }
  const long sent = try_send(s, t.out);
  if (sent < 0 || static_cast<std::size_t>(sent) == t.out.size()) {
    t.out.clear();
    return;
  }
  std::string rest;
  rest.swap(t.out);
  start_write(s, std::move(rest), static_cast<std::size_t>(sent));
}

// The handshake's failure as the exception Python raises: SSLCertVerificationError naming the
// check that refused the peer's certificate, else SSLError with OpenSSL's reason.
std::exception_ptr handshake_error(TlsSession& t) {
  const std::string what = std::string(t.who) + ": TLS handshake with " + t.peer + " failed: ";
  const long verify = SSL_get_verify_result(t.ssl);
  if (verify != X509_V_OK) {
    ERR_clear_error();
    std::string check;
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH) {
      check = "Hostname mismatch, certificate is not valid for '" + t.hostname + "'.";
    } else if (verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      check = "IP address mismatch, certificate is not valid for '" + t.hostname + "'.";
    } else {
      check = X509_verify_cert_error_string(verify);
    }
    return std::make_exception_ptr(
        SSLCertVerificationError(verify, check, what + "certificate verify failed: " + check));
  }
  return std::make_exception_ptr(SSLError(what + take_ssl_error("the peer broke the protocol")));
}

// Records the failure, wakes a client waiting for its handshake and closes the connection after
// the alert that tells the peer why (already queued by flush_ciphertext).
void tls_failed(StreamState* s, std::exception_ptr error) {
  TlsSession& t = *s->tls;
  s->core->disarm(&t.handshake_timer);
  if (!t.error) t.error = std::move(error);
  if (!s->read_error) s->read_error = UV_EPROTO;
  if (!s->write_error) s->write_error = UV_EPROTO;
  wake_all(t.handshake_waiters);
  close_after_flush(s);
  wake_reader(s);
  wake_all(s->drainers);
}

// Runs the handshake on what has arrived. True once it is done (the handler of a server
// connection is then started); false while it waits for the peer, or after it failed.
bool advance_handshake(StreamState* s) {
  TlsSession& t = *s->tls;
  const int rc = SSL_do_handshake(t.ssl);
  flush_ciphertext(s);  // the next flight, or the alert saying why it failed
  if (rc == 1) {
    t.handshake_done = true;
    s->core->disarm(&t.handshake_timer);
    if (t.run_handler) start_client_handler(s);
    wake_all(t.handshake_waiters);
    return true;
  }
  if (SSL_get_error(t.ssl, rc) == SSL_ERROR_WANT_READ) return false;
  tls_failed(s, handshake_error(t));
  return false;
}

// Plaintext from SSL_read on its way to the reader: not read_buffer(), which holds the ciphertext
// OpenSSL reads from (lent in place through `in`). One record's worth (SSL3_RT_MAX_PLAIN_LENGTH:
// SSL_read returns one record at a time). Per thread, as read_buffer(), allocated at first use.
constexpr std::size_t kPlainChunk = 16 * 1024;
char* plaintext_buffer() {
  thread_local std::unique_ptr<char[]> buffer;
  if (!buffer) buffer.reset(new char[kPlainChunk]);
  return buffer.get();
}

// Decrypts every whole record that has arrived into the reader's buffer (through the per-thread
// plaintext buffer; the ciphertext is the session's `in`), as plain bytes arrive.
void read_plaintext(StreamState* s) {
  TlsSession& t = *s->tls;
  char* buf = plaintext_buffer();
  for (;;) {
    const int k = SSL_read(t.ssl, buf, static_cast<int>(kPlainChunk));
    if (k > 0) {
      // May resume the reader, which may write or close: go on only while the socket is open.
      bytes_arrived(s, buf, static_cast<std::size_t>(k));
      if (uv_is_closing(s->handle())) return;
      continue;
    }
    const int err = SSL_get_error(t.ssl, k);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      // close_notify: EOF for the reader, as the socket's own EOF.
      ERR_clear_error();
      s->eof = true;
      if (s->reading) uv_read_stop(s->stream());
      s->reading = false;
      wake_reader(s);
      return;
    }
    tls_failed(s, std::make_exception_ptr(
                      SSLError("asyncio::StreamReader: a TLS record from " + t.peer +
                               " refused: " + take_ssl_error("the peer broke the protocol"))));
    return;
  }
  flush_ciphertext(s);  // what reading made OpenSSL answer (a key update, a ticket's ack)
}

void on_handshake_timeout(TimerNode* n) {
  TlsSession* t = static_cast<HandshakeTimer*>(n)->session;
  // Python's words (sslproto's _check_handshake_timeout).
  tls_failed(t->stream, std::make_exception_ptr(ConnectionAbortedError(
                            ECONNABORTED, std::string(t->who) + ": SSL handshake with " + t->peer +
                                              " is taking longer than " +
                                              std::to_string(t->handshake_timeout.count()) +
                                              " ms: aborting the connection")));
}

}  // namespace

void tls_start(StreamState* s, const char* who, const SSLContext& context, bool server,
               const std::string& server_hostname, std::string peer,
               std::chrono::milliseconds handshake_timeout) {
  const std::shared_ptr<SSLContext::Impl>& impl = SSLContextAccess::impl(context);
  auto t = std::make_unique<TlsSession>();
  t->context = impl;
  t->server = server;
  t->who = who;
  t->peer = std::move(peer);
  t->hostname = server_hostname;
  if (!server && impl->check_hostname && server_hostname.empty()) {
    throw ValueError(std::string(who) + "(): check_hostname requires server_hostname");
  }
  t->ssl = SSL_new(impl->ctx);
  BIO_METHOD* method = session_bio_method();
  t->bio = method != nullptr ? BIO_new(method) : nullptr;
  if (!t->ssl || !t->bio) {
    BIO_free(t->bio);
    throw SSLError(std::string(who) +
                   "(): a TLS session cannot be made: " + take_ssl_error("out of memory"));
  }
  BIO_set_data(t->bio, t.get());
  BIO_set_init(t->bio, 1);
  SSL_set_bio(t->ssl, t->bio, t->bio);  // one BIO both ways: the SSL takes its one reference
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    const bool ip = is_ip_address(server_hostname);
    // SNI carries names only (RFC 6066). SSL_set_tlsext_host_name, without the macro's C cast.
    if (!server_hostname.empty() && !ip) {
      SSL_ctrl(t->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(server_hostname.c_str()));
    }
    if (impl->check_hostname) {
      X509_VERIFY_PARAM* param = SSL_get0_param(t->ssl);
      // Python's flags: "*.example.org" matches, "f*.example.org" does not.
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_hostname.c_str())
                        : X509_VERIFY_PARAM_set1_host(param, server_hostname.c_str(), 0);
      if (ok != 1) {
        throw SSLError(std::string(who) + "(): cannot check the name '" + server_hostname +
                       "': " + take_ssl_error("invalid name"));
      }
    }
  }
  t->stream = s;
  t->handshake_timeout = handshake_timeout;
  t->handshake_timer.fire = &on_handshake_timeout;
  t->handshake_timer.session = t.get();
  s->core->arm(&t->handshake_timer,
               monotonic_ns() + std::chrono::nanoseconds(handshake_timeout).count());
  s->tls.reset(t.release());
  if (!server) advance_handshake(s);  // the client's hello
}

Task<void> tls_handshake(StreamState* s) {
  TlsSession& t = *s->tls;
  while (!t.handshake_done && !t.error && !s->closed && !s->read_error && !s->eof) {
    ListWait w(t.handshake_waiters);
    co_await w;
    if (w.cancel_due()) w.throw_cancel();
  }
  if (t.error) std::rethrow_exception(t.error);
  if (s->read_error) throw_uv(s->read_error, std::string(t.who) + ": TLS handshake with " + t.peer);
  if (!t.handshake_done) {
    throw ConnectionResetError(ECONNRESET, std::string(t.who) + ": TLS handshake with " + t.peer +
                                               ": the connection closed during it");
  }
}

Task<void> tls_upgrade(StreamWriter keep, StreamState* s, SSLContext context,
                       StartTlsOptions options) {
  const bool server = SSLContextAccess::impl(context)->server;
  tls_start(s, "asyncio::StreamWriter::start_tls", context, server, options.server_hostname,
            keep.peername().to_string(), options.ssl_handshake_timeout);
  // The handshake needs the peer's bytes even while the reader holds more than its limit.
  start_reading(s);
  co_await tls_handshake(s);
}

std::optional<TlsInfo> tls_info(StreamState* s) {
  if (!s->tls || !s->tls->handshake_done) return std::nullopt;
  SSL* ssl = s->tls->ssl;
  TlsInfo info;
  info.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) info.cipher = SSL_CIPHER_get_name(c);
  if (X509* peer = SSL_get0_peer_certificate(ssl)) {
    BIO* out = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(out, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char* text = nullptr;
    const long n = BIO_get_mem_data(out, &text);
    info.peer_subject.assign(text, static_cast<std::size_t>(n));
    BIO_free(out);
  }
  return info;
}

void tls_received(StreamState* s, const char* data, std::size_t size) {
  TlsSession& t = *s->tls;
  t.in = std::string_view(data, size);  // lent: `data` is libuv's read buffer, reused after this
  if ((t.handshake_done || advance_handshake(s)) && !uv_is_closing(s->handle())) {
    read_plaintext(s);
  }
  // OpenSSL takes all it is given unless the connection is closing; keep what it left, if any.
  if (!t.in.empty() && !uv_is_closing(s->handle())) t.in_kept.append(t.in);
  t.in = {};
}

void tls_eof(StreamState* s) {
  TlsSession& t = *s->tls;
  if (t.handshake_done) return;  // an abrupt close: EOF, as Python's asyncio (tls_stream.hpp)
  // Python's sslproto: EOF during the handshake is ConnectionResetError.
  tls_failed(s, std::make_exception_ptr(ConnectionResetError(
                    ECONNRESET, std::string(t.who) + ": " + t.peer +
                                    " closed the connection during the TLS handshake")));
}

void tls_closed(StreamState* s) {
  s->core->disarm(&s->tls->handshake_timer);
  wake_all(s->tls->handshake_waiters);
}

void tls_write(StreamState* s, std::string_view data) {
  TlsSession& t = *s->tls;
  if (!t.handshake_done) {
    // SSL_write would drive the handshake itself and fail for want of the peer's answer.
    throw RuntimeError(
        "asyncio::StreamWriter::write(): the TLS handshake of start_tls() is not done; await "
        "start_tls() before writing");
  }
  while (!data.empty()) {
    // The memory BIO never fills, so SSL_write takes each piece whole (renegotiation, which
    // could make it wait for a read, is refused by the context).
    const int k = SSL_write(t.ssl, data.data(),
                            static_cast<int>(std::min<std::size_t>(data.size(), INT_MAX / 2)));
    if (k <= 0) {
      tls_failed(
          s, std::make_exception_ptr(SSLError("asyncio::StreamWriter::write(): TLS to " + t.peer +
                                              ": " + take_ssl_error("the session is closed"))));
      return;
    }
    data.remove_prefix(static_cast<std::size_t>(k));
  }
  flush_ciphertext(s);
}

void throw_stream_error(StreamState* s, int err, const std::string& what) {
  if (s->tls && s->tls->error) std::rethrow_exception(s->tls->error);
  throw_uv(err, what);
}

void tls_close_notify(StreamState* s) {
  TlsSession& t = *s->tls;
  if (!t.handshake_done || t.shutdown_sent || s->write_error || s->closed ||
      uv_is_closing(s->handle())) {
    return;
  }
  t.shutdown_sent = true;
  SSL_shutdown(t.ssl);  // 0: sent, the peer's not yet seen; we do not wait for it
  ERR_clear_error();
  flush_ciphertext(s);
}

}  // namespace concur::asyncio::detail
