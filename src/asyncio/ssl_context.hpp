// Internal: what the TLS stream code (tls_stream.cpp) needs of an SSLContext: its OpenSSL context,
// and OpenSSL's error queue turned into concur's exceptions.
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "concur/asyncio/ssl.hpp"

namespace concur::asyncio {

struct SSLContext::Impl {
  SSL_CTX* ctx = nullptr;
  bool server = false;
  bool check_hostname = false;
  VerifyMode verify = VerifyMode::none;
  ~Impl();
};

namespace detail {

struct SSLContextAccess {
  static const std::shared_ptr<SSLContext::Impl>& impl(const SSLContext& c) { return c.impl_; }
};

// OpenSSL's oldest queued error as "reason" (e.g. "tlsv1 alert unknown ca"), emptying the queue;
// `fallback` when the queue is empty.
std::string take_ssl_error(const char* fallback);

}  // namespace detail
}  // namespace concur::asyncio
