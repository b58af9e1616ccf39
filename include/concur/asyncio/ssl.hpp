// concur/asyncio/ssl.hpp: TLS settings for asyncio streams, Python's ssl.SSLContext, on OpenSSL.
//
//   asyncio::SSLContext client = asyncio::SSLContext::client();  // verifies, checks the name
//   client.load_verify_locations("ca.pem");                     // besides the system's CAs
//   asyncio::ConnectionOptions options{.ssl = client, .server_hostname = "example.org"};
//   auto [reader, writer] = co_await asyncio::open_connection("example.org", 443, options);
//
//   asyncio::SSLContext server = asyncio::SSLContext::server();
//   server.load_cert_chain("cert.pem", "key.pem");
//   asyncio::ServerOptions so;  so.ssl = server;
//   Server s = co_await asyncio::start_server(handler, "0.0.0.0", 8443, so);
//
// What a context sets, as Python's ssl.create_default_context():
//   client()  Purpose.SERVER_AUTH: the peer's certificate is verified (VerifyMode::required)
//             against the system's CA paths (/etc/ssl/certs) and whatever load_verify_locations()
//             adds, and its name checked against server_hostname (check_hostname()).
//   server()  Purpose.CLIENT_AUTH: no client certificate asked for (VerifyMode::none) unless
//             set_verify() asks; load_cert_chain() gives the server's own.
//   Both: TLS 1.2 at least (TLS 1.3 preferred), OpenSSL's default ciphers, renegotiation refused.
//
// Errors. A file that cannot be loaded: SSLError naming the file and OpenSSL's reason (Python's
// SSLError / FileNotFoundError, both OSErrors). A handshake that fails (errors.hpp):
//   SSLCertVerificationError  the peer's certificate was refused: "certificate verify failed: "
//                             then the failing check, as X509_verify_cert_error_string() names
//                             it ("unable to get local issuer certificate", "certificate has
//                             expired", ...) or "Hostname mismatch, certificate is not valid for
//                             'name'." (Python's words); verify_code() is OpenSSL's X509_V_ERR_*.
//   SSLError                  any other TLS failure, with OpenSSL's reason ("tlsv1 alert unknown
//                             ca", "wrong version number", ...).
// Misuse: set_verify(VerifyMode::none) while check_hostname() is on throws ValueError (Python's
// rule); so does set_check_hostname(true) on a context that does not verify (Python turns
// verification on instead: concur does not change a setting the caller did not name). A method
// of an empty context throws InvalidStateError.
//
// Handles: an SSLContext is a reference-counted handle; copies share one context (so a change is
// seen by every copy), and a connection keeps the context it started with alive. A
// default-constructed SSLContext is empty: the streams options then mean plain TCP.
// Thread safety: configure a context before its first connection; after that it is read only
// and may be used by connections on several loops at once (OpenSSL's SSL_CTX is thread-safe for
// that).
#pragma once

#include <memory>
#include <string>

namespace concur::asyncio {

namespace detail {
struct SSLContextAccess;
}

// Python's ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED: whether the peer's certificate is asked
// for and must verify. On a client, optional behaves as required (as in OpenSSL and Python).
enum class VerifyMode { none, optional, required };

class SSLContext {
 public:
  // Empty: no TLS.
  SSLContext() = default;
  // Python's create_default_context(Purpose.SERVER_AUTH) and (Purpose.CLIENT_AUTH).
  static SSLContext client();
  static SSLContext server();

  // The certificate chain (PEM, leaf first) and its private key (PEM; "" = in certfile) this end
  // presents. SSLError if either cannot be read or the key does not match the certificate.
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = "");
  // Trusts the CA certificates in cafile (PEM), besides what the context trusts already.
  void load_verify_locations(const std::string& cafile);
  void set_verify(VerifyMode mode);
  VerifyMode verify_mode() const;
  // Whether a client checks that the server's certificate names server_hostname (a DNS name, or
  // an IP address against the certificate's IP entries). On by default for client().
  void set_check_hostname(bool on);
  bool check_hostname() const;

  bool valid() const { return impl_ != nullptr; }
  explicit operator bool() const { return valid(); }

  // The OpenSSL side (library-internal: src/asyncio/ssl_context.hpp).
  struct Impl;

 private:
  friend struct detail::SSLContextAccess;
  explicit SSLContext(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  Impl& impl(const char* who) const;
  std::shared_ptr<Impl> impl_;
};

}  // namespace concur::asyncio
