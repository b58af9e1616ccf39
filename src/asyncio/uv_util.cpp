// libuv glue shared by streams, datagrams and subprocesses (uv_util.hpp): libuv errors as concur's
// exceptions, socket addresses, and the running loop.
#include "asyncio/uv_util.hpp"

#include <sys/socket.h>

#include <cstring>
#include <string>

#include "concur/asyncio/loop.hpp"

namespace concur::asyncio {

namespace detail {

std::exception_ptr uv_error(int err, const std::string& what) {
  std::string text = what + ": " + uv_strerror(err);
  int e = -err;
  switch (err) {
    case UV_ECONNRESET:
      return std::make_exception_ptr(ConnectionResetError(e, text));
    case UV_ECONNREFUSED:
      return std::make_exception_ptr(ConnectionRefusedError(e, text));
    case UV_EPIPE:
      return std::make_exception_ptr(BrokenPipeError(e, text));
    case UV_ECONNABORTED:
    case UV_ENOTCONN:
    case UV_ETIMEDOUT:
      return std::make_exception_ptr(ConnectionError(e, text));
    default:
      if (err <= UV_EAI_ADDRFAMILY && err >= UV_EAI_SOCKTYPE) {
        return std::make_exception_ptr(OSError(EINVAL, text));  // getaddrinfo's own codes
      }
      return std::make_exception_ptr(OSError(e, text));
  }
}

void throw_uv(int err, const std::string& what) {
  std::rethrow_exception(uv_error(err, what));
}

SocketAddress to_address(const sockaddr* sa) {
  SocketAddress out;
  char name[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    uv_ip4_name(in, name, sizeof name);
    out.port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    uv_ip6_name(in6, name, sizeof name);
    out.port = ntohs(in6->sin6_port);
  }
  out.host = name;
  out.family = sa->sa_family;
  return out;
}

bool parse_numeric(const std::string& host, std::uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(out)) == 0) return true;
  return uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(out)) == 0;
}

LoopCore& current_core(const char* who) {
  return require_core(who);
}

uv_loop_t* current_uv_loop(const char* who) {
  require_core(who);
  return static_cast<uv_loop_t*>(get_running_loop().native_handle());
}

}  // namespace detail

std::string SocketAddress::to_string() const {
  return family == AF_INET6 ? "[" + host + "]:" + std::to_string(port)
                            : host + ":" + std::to_string(port);
}

}  // namespace concur::asyncio
