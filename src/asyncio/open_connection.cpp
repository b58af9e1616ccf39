// open_connection(): name resolution through libuv's getaddrinfo, then each address tried in
// turn until one connects.
#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <vector>

#include "asyncio/stream_state.hpp"
#include "asyncio/tls_stream.hpp"
#include "asyncio/uv_util.hpp"
#include "concur/asyncio/streams.hpp"

namespace concur::asyncio {

using detail::StreamState;

// ---------------------------------------------------------------------------------------------
// Name resolution

namespace {

struct AddrInfoBlock : detail::RequestWait {
  uv_getaddrinfo_t req;
  addrinfo* result = nullptr;
};

}  // namespace

Task<std::vector<SocketAddress>> getaddrinfo(std::string host, std::uint16_t port, bool passive) {
  std::vector<SocketAddress> out;
  sockaddr_storage numeric;
  if (!host.empty() && detail::parse_numeric(host, port, &numeric)) {
    out.push_back(detail::to_address(reinterpret_cast<sockaddr*>(&numeric)));
    co_return out;
  }
  uv_loop_t* uv = detail::current_uv_loop("asyncio::getaddrinfo");
  auto* block = new AddrInfoBlock;
  block->what = "getaddrinfo";
  block->free_block = [](detail::RequestWait* w) {
    auto* b = static_cast<AddrInfoBlock*>(w);
    if (b->result) uv_freeaddrinfo(b->result);
    delete b;
  };
  block->on_detach = [](detail::RequestWait* w) {
    uv_cancel(reinterpret_cast<uv_req_t*>(&static_cast<AddrInfoBlock*>(w)->req));
  };
  detail::RequestOwner owner(block);
  block->req.data = block;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(
      uv, &block->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        auto* b = static_cast<AddrInfoBlock*>(req->data);
        b->result = res;
        b->complete(status);
      },
      host.empty() ? nullptr : host.c_str(), service.c_str(), &hints);
  if (rc < 0) detail::throw_uv(rc, "asyncio::getaddrinfo(" + host + ")");
  co_await detail::AwaitRequest{block};
  if (block->status < 0) detail::throw_uv(block->status, "asyncio::getaddrinfo(" + host + ")");
  for (addrinfo* ai = block->result; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    SocketAddress a = detail::to_address(ai->ai_addr);
    bool seen = std::any_of(out.begin(), out.end(), [&](const SocketAddress& b) {
      return b.host == a.host && b.port == a.port;
    });
    if (!seen) out.push_back(a);
  }
  co_return out;
}

namespace {

struct ConnectBlock : detail::RequestWait {
  uv_connect_t req;
  StreamState* stream = nullptr;
};

// Connects a fresh stream to one address (and, with a TLS context, shakes hands). Its two handles
// are made first: on failure or cancellation their release closes the stream, on success they
// are what the caller gets.
Task<StreamPair> connect_one(const SocketAddress& address, const ConnectionOptions& options,
                             const std::string& server_hostname) {
  const std::size_t limit = options.limit;
  detail::LoopCore& core = detail::require_core("asyncio::open_connection");
  uv_loop_t* uv = detail::current_uv_loop("asyncio::open_connection");
  sockaddr_storage sa;
  detail::parse_numeric(address.host, address.port, &sa);
  StreamState* s = detail::new_stream(core, limit);
  uv_tcp_init(uv, &s->h.tcp);
  s->h.handle.data = s;
  StreamPair pair{StreamReader(s), StreamWriter(s)};
  auto* block = new ConnectBlock;
  block->what = "connect";
  block->stream = s;
  block->free_block = [](detail::RequestWait* w) { delete static_cast<ConnectBlock*>(w); };
  // Cancelled: closing the handle makes libuv finish the connect with UV_ECANCELED.
  block->on_detach = [](detail::RequestWait*) {};
  detail::RequestOwner owner(block);
  block->req.data = block;
  int rc = uv_tcp_connect(&block->req, &s->h.tcp, reinterpret_cast<const sockaddr*>(&sa),
                          [](uv_connect_t* req, int status) {
                            static_cast<ConnectBlock*>(req->data)->complete(status);
                          });
  if (rc < 0) detail::throw_uv(rc, "asyncio::open_connection(" + address.to_string() + ")");
  co_await detail::AwaitRequest{block};
  if (block->status < 0) {
    detail::throw_uv(block->status, "asyncio::open_connection(" + address.to_string() + ")");
  }
  uv_tcp_nodelay(&s->h.tcp, 1);
  if (options.ssl) {
    detail::tls_start(s, "asyncio::open_connection", options.ssl, false, server_hostname,
                      address.to_string(), options.ssl_handshake_timeout);
  }
  detail::start_reading(s);
  if (options.ssl) co_await detail::tls_handshake(s);
  co_return pair;
}

}  // namespace

// Not a coroutine itself: the task is the options overload's, its arguments held in its frame.
Task<StreamPair> open_connection(std::string host, std::uint16_t port, std::size_t limit) {
  ConnectionOptions options;
  options.limit = limit;
  return open_connection(std::move(host), port, std::move(options));
}

Task<StreamPair> open_connection(std::string host, std::uint16_t port, ConnectionOptions options) {
  detail::check_stream_limit("asyncio::open_connection", options.limit);
  if (options.ssl) {
    detail::check_handshake_timeout("asyncio::open_connection", options.ssl_handshake_timeout);
  }
  const std::string server_hostname =
      options.server_hostname.empty() ? host : options.server_hostname;
  std::vector<SocketAddress> addresses = co_await getaddrinfo(host, port, false);
  std::exception_ptr last;
  for (const SocketAddress& a : addresses) {
    try {
      co_return co_await connect_one(a, options, server_hostname);
    } catch (const CancelledError&) {
      throw;
    } catch (const SSLError&) {
      throw;  // the server answered: another of its addresses would answer the same
    } catch (const OSError&) {
      last = std::current_exception();
    }
  }
  if (last) std::rethrow_exception(last);
  throw OSError(EADDRNOTAVAIL, "asyncio::open_connection(" + host + "): no address found");
}

}  // namespace concur::asyncio
