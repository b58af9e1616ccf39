// TLS streams (concur/asyncio/ssl.hpp) over loopback, against concur itself and against
// independent peers: `openssl s_server` / `s_client` and CPython's ssl module through asyncio,
// both directions. The CA and certificates (valid, expired, for a client) are made at run time
// with OpenSSL's C API into a temporary directory removed at the end. Each failure is checked
// for the exception Python raises and the words that name the failing check.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "asyncio_streams_support.hpp"
#include "concur/asyncio/ssl.hpp"
#include "concur/asyncio/subprocess.hpp"

namespace concur::testing::streams {
namespace {

using asyncio::ConnectionOptions;
using asyncio::SSLContext;
using asyncio::StartTlsOptions;
using asyncio::Stdio;
using asyncio::SubprocessOptions;
using asyncio::VerifyMode;
using concur::NotImplementedError;
using concur::SSLCertVerificationError;
using concur::SSLError;

// ---------------------------------------------------------------------------------------------
// A CA and its certificates, made once for the suite

struct Pki {
  std::filesystem::path dir;
  std::string ca;           // the CA's certificate
  std::string server_cert;  // CN and SAN localhost, SAN IP 127.0.0.1; signed by the CA
  std::string server_key;
  std::string expired_cert;  // the same names, valid from two days ago to yesterday
  std::string client_cert;   // a client certificate signed by the CA
  std::string client_key;
};

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

KeyPtr new_key() {
  // EVP_EC_gen() without its C-style cast.
  return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", const_cast<char*>("P-256")),
                &EVP_PKEY_free);
}

void add_ext(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  ASSERT_NE(e, nullptr) << "extension " << value;
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

// A certificate for `key` named cn, valid from now + not_before to now + not_after (seconds),
// signed by issuer (itself when null): a CA, or a leaf with the given subjectAltName.
CertPtr make_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                  const char* san, long not_before, long not_after) {
  static long serial = 1;
  CertPtr x(X509_new(), &X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), not_before);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), not_after);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
  add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (ca) {
    add_ext(x.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x.get(), &ctx, NID_key_usage, "critical,digitalSignature");
    add_ext(x.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
    add_ext(x.get(), &ctx, NID_subject_alt_name, san);
  }
  X509_sign(x.get(), issuer_key, EVP_sha256());
  return x;
}

void write_cert(const std::string& path, X509* x) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  PEM_write_X509(f, x);
  std::fclose(f);
}

void write_key(const std::string& path, EVP_PKEY* key) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

constexpr long kDay = 24 * 3600;

void make_pki(Pki& p) {
  char dir[] = "/tmp/concur-tls-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  p.dir = dir;
  auto file = [&](const char* name) { return (p.dir / name).string(); };
  KeyPtr ca_key = new_key();
  CertPtr ca = make_cert("concur test CA", ca_key.get(), nullptr, ca_key.get(), true, nullptr,
                         -kDay, 30 * kDay);
  KeyPtr server_key = new_key();
  const char* san = "DNS:localhost,IP:127.0.0.1";
  CertPtr server =
      make_cert("localhost", server_key.get(), ca.get(), ca_key.get(), false, san, -kDay, kDay);
  CertPtr expired = make_cert("localhost", server_key.get(), ca.get(), ca_key.get(), false, san,
                              -2 * kDay, -kDay);
  KeyPtr client_key = new_key();
  CertPtr client = make_cert("concur test client", client_key.get(), ca.get(), ca_key.get(), false,
                             "DNS:client.test", -kDay, kDay);
  p.ca = file("ca.pem");
  p.server_cert = file("server.pem");
  p.server_key = file("server-key.pem");
  p.expired_cert = file("expired.pem");
  p.client_cert = file("client.pem");
  p.client_key = file("client-key.pem");
  write_cert(p.ca, ca.get());
  write_cert(p.server_cert, server.get());
  write_key(p.server_key, server_key.get());
  write_cert(p.expired_cert, expired.get());
  write_cert(p.client_cert, client.get());
  write_key(p.client_key, client_key.get());
}

class TlsTest : public StreamsTest {
 protected:
  static void SetUpTestSuite() {
    pki_ = new Pki;
    make_pki(*pki_);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    std::filesystem::remove_all(pki_->dir, ec);
    delete pki_;
    pki_ = nullptr;
  }
  static Pki* pki_;
};
Pki* TlsTest::pki_ = nullptr;

SSLContext server_context(const Pki& p, const std::string& cert) {
  SSLContext c = SSLContext::server();
  c.load_cert_chain(cert, p.server_key);
  return c;
}

SSLContext trusting_client(const Pki& p) {
  SSLContext c = SSLContext::client();
  c.load_verify_locations(p.ca);
  return c;
}

ConnectionOptions tls_to(SSLContext ctx, std::string name = "localhost") {
  ConnectionOptions o;
  o.ssl = std::move(ctx);
  o.server_hostname = std::move(name);
  return o;
}

// A server whose handler counts the clients it saw and echoes (echo_handler).
struct CountingServer {
  Server server;
  std::shared_ptr<int> handled = std::make_shared<int>(0);
};

Task<CountingServer> counting_server(SSLContext ctx) {
  CountingServer out;
  std::shared_ptr<int> handled = out.handled;
  asyncio::ClientHandler handler = [handled](StreamReader r, StreamWriter w) {
    ++*handled;
    return echo_handler(std::move(r), std::move(w));
  };
  ServerOptions so;
  so.ssl = std::move(ctx);
  out.server = co_await asyncio::start_server(handler, "127.0.0.1", 0, so);
  co_return out;
}

Task<void> shut(Server& server) {
  server.close();
  co_await server.wait_closed();
}

Task<void> expect_no_fd_leak(std::size_t fds_before) {
  EXPECT_TRUE(co_await until([&] { return count_fds() == fds_before; }))
      << "file descriptors leaked: " << count_fds() << " vs " << fds_before;
}

// ---------------------------------------------------------------------------------------------
// concur <-> concur

Task<void> write_pattern(StreamWriter w, std::size_t chunks) {
  for (std::size_t i = 0; i < chunks; ++i) {
    w.write(pattern(i * kChunk, kChunk));
    co_await w.drain();
  }
}

Task<void> echo_both_verify_body(const Pki& p, std::size_t fds_before) {
  // The server asks for a client certificate and verifies it; the client verifies the server's.
  SSLContext sctx = server_context(p, p.server_cert);
  sctx.load_verify_locations(p.ca);
  sctx.set_verify(VerifyMode::required);
  CountingServer srv = co_await counting_server(sctx);
  SSLContext cctx = trusting_client(p);
  cctx.load_cert_chain(p.client_cert, p.client_key);
  ConnectionOptions options = tls_to(cctx);
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", srv.server.port(), options);
  c.writer.write(kData);
  co_await c.writer.drain();
  EXPECT_EQ(co_await c.reader.readline(), "line1\n");
  EXPECT_EQ(co_await c.reader.readexactly(kData.size() - 6), "line2\nline3\n");
  // 4 MiB each way through back-pressure: many records, none lost or reordered.
  constexpr std::size_t kChunks = 64;
  Task<void> writing = asyncio::create_task(write_pattern(c.writer, kChunks));
  bool intact = false;
  co_await drain_reader(c.reader, 0, kChunks * kChunk, &intact);
  EXPECT_TRUE(intact);
  co_await writing;
  EXPECT_EQ(*srv.handled, 1);
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await shut(srv.server);
  co_await expect_no_fd_leak(fds_before);
}

TEST_F(TlsTest, ConcurClientAndServerEchoBothVerifying) {
  run(echo_both_verify_body(*pki_, fd_baseline()));
}

Task<void> no_half_close_body(const Pki& p) {
  CountingServer srv = co_await counting_server(server_context(p, p.server_cert));
  ConnectionOptions options = tls_to(trusting_client(p));
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", srv.server.port(), options);
  EXPECT_FALSE(c.writer.can_write_eof());
  EXPECT_THROW(c.writer.write_eof(), NotImplementedError);
  // The connection goes on; read_into decrypts into the caller's buffer.
  c.writer.write("still here\n");
  EXPECT_EQ(co_await c.reader.readline(), "still here\n");
  c.writer.write("into\n");
  char buf[16];
  const std::size_t got = co_await c.reader.read_into(buf);
  EXPECT_EQ(std::string(buf, got), "into\n");
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await shut(srv.server);
}

TEST_F(TlsTest, WriteEofIsNotImplemented) {
  run(no_half_close_body(*pki_));
}

// The peer's close_notify is EOF: the server's handler closes after its reply.
Task<void> reply_and_close(StreamReader r, StreamWriter w) {
  std::string line = co_await r.readline();
  w.write("bye " + line);
  w.close();
  co_await w.wait_closed();
}

Task<void> close_notify_body(const Pki& p) {
  ServerOptions so;
  so.ssl = server_context(p, p.server_cert);
  Server server = co_await asyncio::start_server(&reply_and_close, "127.0.0.1", 0, so);
  ConnectionOptions options = tls_to(trusting_client(p));
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", server.port(), options);
  c.writer.write("now\n");
  EXPECT_EQ(co_await c.reader.readline(), "bye now\n");
  EXPECT_EQ(co_await c.reader.read(), "");
  EXPECT_TRUE(c.reader.at_eof());
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await shut(server);
}

TEST_F(TlsTest, CloseNotifyFromThePeerIsEof) {
  run(close_notify_body(*pki_));
}

// ---------------------------------------------------------------------------------------------
// Handshake failures: the client's exception names the check; the server's handler never runs

Task<void> refused_body(const Pki& p, std::string cert, SSLContext client, std::string name,
                        std::string expected, std::size_t fds_before) {
  CountingServer srv = co_await counting_server(server_context(p, cert));
  ConnectionOptions options = tls_to(std::move(client), std::move(name));
  const std::uint16_t port = srv.server.port();
  std::optional<SSLCertVerificationError> e = co_await catch_as<SSLCertVerificationError>(
      [&] { return asyncio::open_connection("127.0.0.1", port, options); });
  EXPECT_TRUE(e.has_value()) << "the handshake should have failed with " << expected;
  if (e) {
    EXPECT_TRUE(contains(e->what(), "certificate verify failed: " + expected)) << e->what();
    EXPECT_EQ(e->verify_message(), expected);
    EXPECT_NE(e->verify_code(), 0);
    EXPECT_EQ(e->code().value(), EPROTO);
  }
  // The server saw the alert and closed the connection; the handler never ran.
  EXPECT_TRUE(co_await until([&] { return srv.server.active_connections() == 0; }));
  EXPECT_EQ(*srv.handled, 0);
  co_await shut(srv.server);
  co_await expect_no_fd_leak(fds_before);
}

TEST_F(TlsTest, UntrustedCaIsRefused) {
  // The system's CAs only: the test CA is unknown.
  run(refused_body(*pki_, pki_->server_cert, SSLContext::client(), "localhost",
                   "unable to get local issuer certificate", fd_baseline()));
}

TEST_F(TlsTest, WrongHostIsRefused) {
  run(refused_body(*pki_, pki_->server_cert, trusting_client(*pki_), "wrong.example",
                   "Hostname mismatch, certificate is not valid for 'wrong.example'.",
                   fd_baseline()));
}

TEST_F(TlsTest, ExpiredCertificateIsRefused) {
  run(refused_body(*pki_, pki_->expired_cert, trusting_client(*pki_), "localhost",
                   "certificate has expired", fd_baseline()));
}

Task<void> ip_name_body(const Pki& p) {
  CountingServer srv = co_await counting_server(server_context(p, p.server_cert));
  // "" means the host itself: 127.0.0.1, checked against the certificate's IP entry.
  ConnectionOptions options = tls_to(trusting_client(p), "");
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", srv.server.port(), options);
  c.writer.write("ip\n");
  EXPECT_EQ(co_await c.reader.readline(), "ip\n");
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await shut(srv.server);
}

TEST_F(TlsTest, IpAddressIsCheckedAgainstTheCertificate) {
  run(ip_name_body(*pki_));
}

Task<void> plain_client_body(const Pki& p) {
  // A client that does not speak TLS: the server closes it, the handler never runs.
  CountingServer srv = co_await counting_server(server_context(p, p.server_cert));
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", srv.server.port());
  c.writer.write("GET / HTTP/1.0\r\n\r\n");
  std::string answer;
  try {
    answer = co_await c.reader.read();  // the alert's bytes, then EOF (or a reset)
  } catch (const ConnectionError&) {
  }
  EXPECT_TRUE(co_await until([&] { return srv.server.active_connections() == 0; }));
  EXPECT_EQ(*srv.handled, 0);
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await shut(srv.server);
}

TEST_F(TlsTest, PlainClientIsClosedUnseen) {
  run(plain_client_body(*pki_));
}

// A peer that never answers: reads until EOF, says nothing.
Task<void> silent_handler(StreamReader r, StreamWriter w) {
  // (Not `while (!(co_await r.read()).empty())`: GCC 12 compiles a co_await in a loop's condition
  // into a trap.)
  for (;;) {
    std::string data = co_await r.read(static_cast<long>(kChunk));
    if (data.empty()) break;
  }
  w.close();
  co_await w.wait_closed();
}

Task<void> client_handshake_timeout_body(const Pki& p, std::size_t fds_before) {
  Server silent = co_await asyncio::start_server(&silent_handler, "127.0.0.1", 0);
  ConnectionOptions options = tls_to(trusting_client(p));
  options.ssl_handshake_timeout = 100ms;
  const std::uint16_t port = silent.port();
  std::optional<concur::ConnectionAbortedError> e =
      co_await catch_as<concur::ConnectionAbortedError>(
          [&] { return asyncio::open_connection("127.0.0.1", port, options); });
  EXPECT_TRUE(e.has_value());
  if (e) {
    EXPECT_TRUE(contains(e->what(), "is taking longer than 100 ms")) << e->what();
  }
  options.ssl_handshake_timeout = 0ms;
  EXPECT_THROW(co_await asyncio::open_connection("127.0.0.1", port, options),
               std::invalid_argument);
  co_await shut(silent);
  co_await expect_no_fd_leak(fds_before);
}

TEST_F(TlsTest, ClientHandshakeTimeout) {
  run(client_handshake_timeout_body(*pki_, fd_baseline()));
}

Task<void> server_handshake_timeout_body(const Pki& p, std::size_t fds_before) {
  std::shared_ptr<int> handled = std::make_shared<int>(0);
  asyncio::ClientHandler handler = [handled](StreamReader r, StreamWriter w) {
    ++*handled;
    return echo_handler(std::move(r), std::move(w));
  };
  ServerOptions so;
  so.ssl = server_context(p, p.server_cert);
  so.ssl_handshake_timeout = 100ms;
  Server server = co_await asyncio::start_server(handler, "127.0.0.1", 0, so);
  // A client that connects and says nothing: the server closes it once the time is up.
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", server.port());
  try {
    EXPECT_EQ(co_await c.reader.read(), "");
  } catch (const ConnectionError&) {
    // a reset is as good an end
  }
  EXPECT_TRUE(co_await until([&] { return server.active_connections() == 0; }));
  EXPECT_EQ(*handled, 0);
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await shut(server);
  so.ssl_handshake_timeout = 0ms;
  EXPECT_THROW(co_await asyncio::start_server(handler, "127.0.0.1", 0, so), std::invalid_argument);
  co_await expect_no_fd_leak(fds_before);
}

TEST_F(TlsTest, ServerHandshakeTimeout) {
  run(server_handshake_timeout_body(*pki_, fd_baseline()));
}

Task<void> no_client_cert_body(const Pki& p, std::size_t fds_before) {
  SSLContext sctx = server_context(p, p.server_cert);
  sctx.load_verify_locations(p.ca);
  sctx.set_verify(VerifyMode::required);
  CountingServer srv = co_await counting_server(sctx);
  ConnectionOptions options = tls_to(trusting_client(p));  // no certificate of its own
  const std::uint16_t port = srv.server.port();
  // TLS 1.3: the client's handshake is done before the server has checked its certificate, so
  // the refusal (the server's alert) reaches the client's first read, as with Python.
  std::optional<SSLError> e = co_await catch_as<SSLError>([&]() -> Task<void> {
    StreamPair c = co_await asyncio::open_connection("127.0.0.1", port, options);
    std::string data = co_await c.reader.read();
    ADD_FAILURE() << "read " << data.size() << " bytes from a server that refused the client";
  });
  EXPECT_TRUE(e.has_value());
  if (e) {
    EXPECT_TRUE(contains(e->what(), "certificate required")) << e->what();
  }
  EXPECT_TRUE(co_await until([&] { return srv.server.active_connections() == 0; }));
  EXPECT_EQ(*srv.handled, 0);
  co_await shut(srv.server);
  co_await expect_no_fd_leak(fds_before);
}

TEST_F(TlsTest, ClientWithoutCertificateIsRefusedByAVerifyingServer) {
  run(no_client_cert_body(*pki_, fd_baseline()));
}

// s_client offering TLS 1.1 only (at the security level that still allows it on its side).
Task<int> s_client_tls11(const Pki& p, std::uint16_t port) {
  std::vector<std::string> args{"s_client",
                                "-connect",
                                "127.0.0.1:" + std::to_string(port),
                                "-CAfile",
                                p.ca,
                                "-tls1_1",
                                "-cipher",
                                "DEFAULT@SECLEVEL=0"};
  SubprocessOptions po;
  po.stdin_mode = Stdio::DEVNULL;
  po.stdout_mode = Stdio::DEVNULL;
  po.stderr_mode = Stdio::DEVNULL;
  asyncio::Process client = co_await asyncio::create_subprocess_exec("openssl", args, po);
  co_return co_await client.wait();
}

Task<void> old_tls_body(const Pki& p) {
  CountingServer srv = co_await counting_server(server_context(p, p.server_cert));
  EXPECT_NE(co_await s_client_tls11(p, srv.server.port()), 0);
  EXPECT_TRUE(co_await until([&] { return srv.server.active_connections() == 0; }));
  EXPECT_EQ(*srv.handled, 0);
  co_await shut(srv.server);
}

TEST_F(TlsTest, Tls11ClientIsRefused) {
  run(old_tls_body(*pki_));
}

TEST_F(TlsTest, ContextMisuse) {
  SSLContext c = SSLContext::client();
  EXPECT_TRUE(c.check_hostname());
  EXPECT_EQ(c.verify_mode(), VerifyMode::required);
  EXPECT_THROW(c.set_verify(VerifyMode::none), concur::ValueError);
  c.set_check_hostname(false);
  c.set_verify(VerifyMode::none);
  EXPECT_THROW(c.set_check_hostname(true), concur::ValueError);
  try {
    c.load_verify_locations((pki_->dir / "missing.pem").string());
    ADD_FAILURE() << "a missing CA file was accepted";
  } catch (const SSLError& e) {
    EXPECT_TRUE(contains(e.what(), "missing.pem")) << e.what();
  }
  SSLContext s = SSLContext::server();
  EXPECT_EQ(s.verify_mode(), VerifyMode::none);
  EXPECT_FALSE(s.check_hostname());
  // The expired certificate's key is the server's: a key of another certificate is refused.
  EXPECT_THROW(s.load_cert_chain(pki_->client_cert, pki_->server_key), SSLError);
  EXPECT_THROW(SSLContext().load_verify_locations(pki_->ca), InvalidStateError);
}

// ---------------------------------------------------------------------------------------------
// Independent peers: openssl s_server / s_client

// Reads lines from r until one holding `word`; false at EOF.
Task<bool> wait_for_line(StreamReader r, std::string word) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) co_return false;
    if (contains(line, word)) co_return true;
  }
}

Task<void> openssl_server_body(const Pki& p) {
  const std::uint16_t port = co_await closed_port();
  std::vector<std::string> args{"s_server",   "-accept",     "127.0.0.1:" + std::to_string(port),
                                "-cert",      p.server_cert, "-key",
                                p.server_key, "-naccept",    "1",
                                "-rev"};
  SubprocessOptions po;
  po.stdout_mode = Stdio::PIPE;
  po.stderr_mode = Stdio::STDOUT;
  asyncio::Process server = co_await asyncio::create_subprocess_exec("openssl", args, po);
  EXPECT_TRUE(co_await wait_for_line(server.stdout_pipe(), "ACCEPT"));
  ConnectionOptions options = tls_to(trusting_client(p));
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", port, options);
  c.writer.write("hello\n");
  EXPECT_EQ(co_await c.reader.readline(), "olleh\n");  // -rev: each line reversed
  // An abrupt close: the process dies, its kernel closes the socket without close_notify. As
  // Python's asyncio: EOF, no error.
  server.kill();
  co_await server.wait();
  EXPECT_EQ(co_await c.reader.read(), "");
  c.writer.close();
  co_await c.writer.wait_closed();
}

TEST_F(TlsTest, ConcurClientWithOpensslServerAndAbruptClose) {
  run(openssl_server_body(*pki_));
}

// Runs s_client against 127.0.0.1:port: one line through the echo, then stdin's end makes it
// send close_notify and exit. Its exit code (the process and its pipes are gone on return).
Task<int> s_client_echo(const Pki& p, std::uint16_t port) {
  std::vector<std::string> args{
      "s_client",         "-connect",  "127.0.0.1:" + std::to_string(port),
      "-CAfile",          p.ca,        "-verify_return_error",
      "-verify_hostname", "localhost", "-servername",
      "localhost",        "-quiet",    "-no_ign_eof"};
  SubprocessOptions po;
  po.stdin_mode = Stdio::PIPE;
  po.stdout_mode = Stdio::PIPE;
  po.stderr_mode = Stdio::DEVNULL;
  asyncio::Process client = co_await asyncio::create_subprocess_exec("openssl", args, po);
  StreamWriter in = client.stdin_pipe();
  in.write("ping from s_client\n");
  EXPECT_EQ(co_await client.stdout_pipe().readline(), "ping from s_client\n");
  in.close();
  co_return co_await client.wait();
}

Task<void> openssl_client_body(const Pki& p, std::size_t fds_before) {
  CountingServer srv = co_await counting_server(server_context(p, p.server_cert));
  EXPECT_EQ(co_await s_client_echo(p, srv.server.port()), 0);
  EXPECT_EQ(*srv.handled, 1);
  // The handler saw s_client's close_notify as EOF and closed.
  EXPECT_TRUE(co_await until([&] { return srv.server.active_connections() == 0; }));
  co_await shut(srv.server);
  co_await expect_no_fd_leak(fds_before);
}

TEST_F(TlsTest, OpensslClientWithConcurServer) {
  run(openssl_client_body(*pki_, fd_baseline()));
}

// ---------------------------------------------------------------------------------------------
// Independent peers: CPython's ssl module through asyncio

// A CPython script (`python3 -c script args...`) run to its end: what it printed, its status.
Task<asyncio::CommunicateResult> run_python(const char* script, std::vector<std::string> args) {
  args.insert(args.begin(), {"-c", script});
  SubprocessOptions po;
  po.stdout_mode = Stdio::PIPE;
  po.stderr_mode = Stdio::PIPE;
  asyncio::Process client = co_await asyncio::create_subprocess_exec("/usr/bin/python3", args, po);
  co_return co_await client.communicate();
}

// A CPython server script started with the server's certificate and key: the port it printed
// first, or 0 (a test failure) when it printed none.
Task<std::uint16_t> start_python_server(asyncio::Process& server, const char* script,
                                        const Pki& p) {
  std::vector<std::string> args{"-c", script, p.server_cert, p.server_key};
  SubprocessOptions po;
  po.stdout_mode = Stdio::PIPE;
  server = co_await asyncio::create_subprocess_exec("/usr/bin/python3", args, po);
  const std::string port_line = co_await server.stdout_pipe().readline();
  EXPECT_FALSE(port_line.empty());
  co_return port_line.empty() ? 0 : static_cast<std::uint16_t>(std::stoi(port_line));
}

constexpr const char* kPythonClient = R"(
import asyncio, ssl, sys
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    r, w = await asyncio.open_connection('127.0.0.1', int(sys.argv[1]), ssl=ctx,
                                         server_hostname='localhost')
    w.write(b'hello from python\n')
    await w.drain()
    sys.stdout.write((await r.readline()).decode())
    w.close()
    await w.wait_closed()
asyncio.run(main())
)";

Task<void> python_client_body(const Pki& p) {
  CountingServer srv = co_await counting_server(server_context(p, p.server_cert));
  std::vector<std::string> args{std::to_string(srv.server.port()), p.ca};
  asyncio::CommunicateResult r = co_await run_python(kPythonClient, args);
  EXPECT_EQ(r.returncode, 0) << r.err;
  EXPECT_EQ(r.out, "hello from python\n") << r.err;
  EXPECT_EQ(*srv.handled, 1);
  co_await shut(srv.server);
}

TEST_F(TlsTest, PythonClientWithConcurServer) {
  run(python_client_body(*pki_));
}

// Serves one client: its line upper-cased, then close (close_notify) and exit.
constexpr const char* kPythonServer = R"(
import asyncio, ssl, sys
async def main():
    done = asyncio.Event()
    async def handle(r, w):
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()
        await w.wait_closed()
        done.set()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = await asyncio.start_server(handle, '127.0.0.1', 0, ssl=ctx)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await done.wait()
    srv.close()
    await srv.wait_closed()
asyncio.run(main())
)";

Task<void> python_server_body(const Pki& p) {
  asyncio::Process server;
  const std::uint16_t port = co_await start_python_server(server, kPythonServer, p);
  if (port == 0) co_return;
  ConnectionOptions options = tls_to(trusting_client(p));
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", port, options);
  c.writer.write("shout\n");
  EXPECT_EQ(co_await c.reader.readline(), "SHOUT\n");
  // Python's close() sent close_notify: EOF here, and Python waits for ours.
  EXPECT_EQ(co_await c.reader.read(), "");
  c.writer.close();
  co_await c.writer.wait_closed();
  EXPECT_EQ(co_await server.wait(), 0);
}

TEST_F(TlsTest, ConcurClientWithPythonServer) {
  run(python_server_body(*pki_));
}

// ---------------------------------------------------------------------------------------------
// start_tls(): a plain connection upgraded in place (a STARTTLS exchange)

// The server's side: "STARTTLS\n" answered "OK\n" in plain, then TLS, then an echo.
Task<void> starttls_handler(StreamReader r, StreamWriter w, SSLContext ctx) {
  if (co_await r.readline() != "STARTTLS\n") co_return;
  w.write("OK\n");
  try {
    co_await w.start_tls(ctx);
  } catch (const SSLError&) {
    co_return;  // the client refused the certificate (StartTlsRefusesAnExpiredCertificate)
  }
  EXPECT_TRUE(w.tls_info().has_value());
  co_await echo_handler(std::move(r), std::move(w));
}

Task<Server> starttls_server(SSLContext ctx) {
  asyncio::ClientHandler handler = [ctx](StreamReader r, StreamWriter w) {
    return starttls_handler(std::move(r), std::move(w), ctx);
  };
  co_return co_await asyncio::start_server(handler, "127.0.0.1", 0);
}

Task<void> start_tls_body(const Pki& p, std::size_t fds_before) {
  Server server = co_await starttls_server(server_context(p, p.server_cert));
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_FALSE(c.writer.tls_info().has_value());
  c.writer.write("STARTTLS\n");
  EXPECT_EQ(co_await c.reader.readline(), "OK\n");
  StartTlsOptions o;
  o.server_hostname = "localhost";
  co_await c.writer.start_tls(trusting_client(p), o);
  std::optional<asyncio::TlsInfo> info = c.writer.tls_info();
  EXPECT_TRUE(info.has_value());
  if (info) {
    EXPECT_EQ(info->version, "TLSv1.3");
    EXPECT_FALSE(info->cipher.empty());
    EXPECT_EQ(info->peer_subject, "CN=localhost");
  }
  EXPECT_FALSE(c.writer.can_write_eof());
  EXPECT_THROW((void)c.writer.start_tls(trusting_client(p), o), RuntimeError);
  c.writer.write("secret\n");
  EXPECT_EQ(co_await c.reader.readline(), "secret\n");
  c.writer.close();
  co_await c.writer.wait_closed();
  co_await shut(server);
  co_await expect_no_fd_leak(fds_before);
}

TEST_F(TlsTest, StartTlsBetweenConcurEnds) {
  run(start_tls_body(*pki_, fd_baseline()));
}

Task<void> start_tls_refused_body(const Pki& p) {
  Server server = co_await starttls_server(server_context(p, p.expired_cert));
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", server.port());
  c.writer.write("STARTTLS\n");
  EXPECT_EQ(co_await c.reader.readline(), "OK\n");
  StartTlsOptions o;
  o.server_hostname = "localhost";
  SSLContext ctx = trusting_client(p);
  std::optional<SSLCertVerificationError> e =
      co_await catch_as<SSLCertVerificationError>([&] { return c.writer.start_tls(ctx, o); });
  EXPECT_TRUE(e.has_value());
  if (e) {
    EXPECT_EQ(e->verify_message(), "certificate has expired");
  }
  co_await c.writer.wait_closed();  // a failed handshake closes the connection
  EXPECT_TRUE(c.writer.is_closing());
  co_await shut(server);
}

TEST_F(TlsTest, StartTlsRefusesAnExpiredCertificate) {
  run(start_tls_refused_body(*pki_));
}

constexpr const char* kPythonStartTlsClient = R"(
import asyncio, ssl, sys
async def main():
    r, w = await asyncio.open_connection('127.0.0.1', int(sys.argv[1]))
    w.write(b'STARTTLS\n')
    await w.drain()
    assert await r.readline() == b'OK\n'
    await w.start_tls(ssl.create_default_context(cafile=sys.argv[2]), server_hostname='localhost')
    w.write(b'secret from python\n')
    await w.drain()
    sys.stdout.write((await r.readline()).decode())
    w.close()
    await w.wait_closed()
asyncio.run(main())
)";

Task<void> python_start_tls_client_body(const Pki& p) {
  Server server = co_await starttls_server(server_context(p, p.server_cert));
  std::vector<std::string> args{std::to_string(server.port()), p.ca};
  asyncio::CommunicateResult r = co_await run_python(kPythonStartTlsClient, args);
  EXPECT_EQ(r.returncode, 0) << r.err;
  EXPECT_EQ(r.out, "secret from python\n") << r.err;
  co_await shut(server);
}

TEST_F(TlsTest, StartTlsWithPythonClient) {
  run(python_start_tls_client_body(*pki_));
}

constexpr const char* kPythonStartTlsServer = R"(
import asyncio, ssl, sys
async def main():
    done = asyncio.Event()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    async def handle(r, w):
        assert await r.readline() == b'STARTTLS\n'
        w.write(b'OK\n')
        await w.drain()
        await w.start_tls(ctx)
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()
        await w.wait_closed()
        done.set()
    srv = await asyncio.start_server(handle, '127.0.0.1', 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await done.wait()
    srv.close()
    await srv.wait_closed()
asyncio.run(main())
)";

Task<void> python_start_tls_server_body(const Pki& p) {
  asyncio::Process server;
  const std::uint16_t port = co_await start_python_server(server, kPythonStartTlsServer, p);
  if (port == 0) co_return;
  StreamPair c = co_await asyncio::open_connection("127.0.0.1", port);
  c.writer.write("STARTTLS\n");
  EXPECT_EQ(co_await c.reader.readline(), "OK\n");
  StartTlsOptions o;
  o.server_hostname = "localhost";
  co_await c.writer.start_tls(trusting_client(p), o);
  c.writer.write("quiet\n");
  EXPECT_EQ(co_await c.reader.readline(), "QUIET\n");
  EXPECT_EQ(co_await c.reader.read(), "");  // Python's close_notify
  c.writer.close();
  co_await c.writer.wait_closed();
  EXPECT_EQ(co_await server.wait(), 0);
}

TEST_F(TlsTest, StartTlsWithPythonServer) {
  run(python_start_tls_server_body(*pki_));
}

}  // namespace
}  // namespace concur::testing::streams
