// SSLContext: Python's ssl.SSLContext over an OpenSSL SSL_CTX (concur/asyncio/ssl.hpp).
#include "asyncio/ssl_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "concur/errors.hpp"

namespace concur::asyncio {

SSLContext::Impl::~Impl() {
  SSL_CTX_free(ctx);
}

namespace detail {

std::string take_ssl_error(const char* fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "OpenSSL error " + std::to_string(e);
}

}  // namespace detail

namespace {

int verify_flags(VerifyMode mode, bool server) {
  switch (mode) {
    case VerifyMode::none:
      return SSL_VERIFY_NONE;
    case VerifyMode::optional:
      // On a client, OpenSSL always fails a handshake whose certificate does not verify.
      return SSL_VERIFY_PEER;
    case VerifyMode::required:
      return server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER;
  }
  return SSL_VERIFY_NONE;
}

std::shared_ptr<SSLContext::Impl> make(bool server) {
  auto impl = std::make_shared<SSLContext::Impl>();
  impl->server = server;
  impl->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!impl->ctx) {
    throw SSLError("asyncio::SSLContext: SSL_CTX_new failed: " +
                   detail::take_ssl_error("out of memory"));
  }
  SSL_CTX_set_min_proto_version(impl->ctx, TLS1_2_VERSION);
  // Renegotiation would let the peer make a write wait for a read (SSL_write's WANT_READ), which
  // a write that never waits (streams.hpp) cannot honour; Python refuses it as well.
  SSL_CTX_set_options(impl->ctx, SSL_OP_NO_RENEGOTIATION);
  if (!server) {
    impl->verify = VerifyMode::required;
    impl->check_hostname = true;
    SSL_CTX_set_verify(impl->ctx, verify_flags(impl->verify, false), nullptr);
    if (SSL_CTX_set_default_verify_paths(impl->ctx) != 1) {
      throw SSLError("asyncio::SSLContext::client(): the system's CA paths cannot be loaded: " +
                     detail::take_ssl_error("unknown reason"));
    }
  }
  return impl;
}

}  // namespace

SSLContext SSLContext::client() {
  return SSLContext(make(false));
}

SSLContext SSLContext::server() {
  return SSLContext(make(true));
}

SSLContext::Impl& SSLContext::impl(const char* who) const {
  if (!impl_) {
    throw InvalidStateError(std::string("asyncio::SSLContext::") + who +
                            "(): empty context; make one with SSLContext::client() or server()");
  }
  return *impl_;
}

void SSLContext::load_cert_chain(const std::string& certfile, const std::string& keyfile) {
  Impl& c = impl("load_cert_chain");
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  if (SSL_CTX_use_certificate_chain_file(c.ctx, certfile.c_str()) != 1) {
    throw SSLError("asyncio::SSLContext::load_cert_chain(): cannot load the certificate chain " +
                   certfile + ": " + detail::take_ssl_error("unknown reason"));
  }
  if (SSL_CTX_use_PrivateKey_file(c.ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw SSLError("asyncio::SSLContext::load_cert_chain(): cannot load the private key " + key +
                   ": " + detail::take_ssl_error("unknown reason"));
  }
  if (SSL_CTX_check_private_key(c.ctx) != 1) {
    throw SSLError("asyncio::SSLContext::load_cert_chain(): the private key " + key +
                   " does not match the certificate " + certfile + ": " +
                   detail::take_ssl_error("key values mismatch"));
  }
}

void SSLContext::load_verify_locations(const std::string& cafile) {
  Impl& c = impl("load_verify_locations");
  if (SSL_CTX_load_verify_locations(c.ctx, cafile.c_str(), nullptr) != 1) {
    throw SSLError("asyncio::SSLContext::load_verify_locations(): cannot load " + cafile + ": " +
                   detail::take_ssl_error("unknown reason"));
  }
}

void SSLContext::set_verify(VerifyMode mode) {
  Impl& c = impl("set_verify");
  if (mode == VerifyMode::none && c.check_hostname) {
    throw ValueError(
        "asyncio::SSLContext::set_verify(): cannot set VerifyMode::none while check_hostname is "
        "on; call set_check_hostname(false) first");
  }
  c.verify = mode;
  SSL_CTX_set_verify(c.ctx, verify_flags(mode, c.server), nullptr);
}

VerifyMode SSLContext::verify_mode() const {
  return impl("verify_mode").verify;
}

void SSLContext::set_check_hostname(bool on) {
  Impl& c = impl("set_check_hostname");
  if (on && c.verify == VerifyMode::none) {
    // Python turns verification on instead; refusing says so rather than changing a setting the
    // caller did not name.
    throw ValueError(
        "asyncio::SSLContext::set_check_hostname(): a name check needs verification; call "
        "set_verify(VerifyMode::required) first");
  }
  c.check_hostname = on;
}

bool SSLContext::check_hostname() const {
  return impl("check_hostname").check_hostname;
}

}  // namespace concur::asyncio
