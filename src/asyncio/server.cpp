// The server: listening sockets, accepting (and what happens at the descriptor limit), each
// client's handler task, and the Server handle's close / wait / serve_forever.
#include <sys/socket.h>

#include <string>
#include <utility>
#include <vector>

#include "asyncio/stream_state.hpp"
#include "asyncio/tls_stream.hpp"
#include "asyncio/uv_util.hpp"
#include "concur/asyncio/streams.hpp"

namespace concur::asyncio {

using detail::StreamState;

namespace {

void on_listener_closed(uv_handle_t* h) {
  auto* srv = static_cast<detail::ServerState*>(h->data);
  delete reinterpret_cast<uv_tcp_t*>(h);
  --srv->listeners_open;
  detail::check_server_closed(srv);
  detail::maybe_free_server(srv);
}

void close_server(detail::ServerState* srv) {
  if (srv->closing) return;
  srv->closing = true;
  srv->core->detach(srv);
  for (uv_tcp_t* l : srv->listeners)
    uv_close(reinterpret_cast<uv_handle_t*>(l), &on_listener_closed);
  srv->listeners.clear();
  detail::wake_all(srv->serve_waiters);
  detail::check_server_closed(srv);
}

// A failed accept, reported at most once a second (with how many were not), as Python's server
// logs it and pauses: at the descriptor limit every new client fails one.
void report_accept_failure(detail::ServerState* srv, int status) {
  const std::int64_t now = detail::monotonic_ns();
  if (now - srv->last_accept_report_ns < 1'000'000'000) {
    ++srv->unreported_accept_failures;
    return;
  }
  std::string what = "asyncio::Server: accepting a connection failed";
  if (srv->unreported_accept_failures > 0) {
    what += " (and " + std::to_string(srv->unreported_accept_failures) +
            " more in the last second, not reported one by one)";
  }
  if (status == UV_EMFILE || status == UV_ENFILE) {
    what +=
        "; the process is out of file descriptors: the clients beyond the limit are closed at "
        "once; raise the limit (ulimit -n) or serve fewer connections";
  }
  srv->last_accept_report_ns = now;
  srv->unreported_accept_failures = 0;
  srv->core->report(what, detail::uv_error(status, "accept"));
}

void on_connection(uv_stream_t* listener, int status) {
  auto* srv = static_cast<detail::ServerState*>(listener->data);
  if (status < 0) {
    // At the descriptor limit (EMFILE/ENFILE) libuv accepts and closes the waiting clients with
    // a descriptor it keeps in reserve, without calling here, so the loop does not spin on a
    // listener that stays readable; the connections already open go on, and accepting resumes
    // once descriptors are free (tests/integration/asyncio_emfile_test.cpp). What does reach
    // here (the trick failing, other accept errors) is reported.
    report_accept_failure(srv, status);
    return;
  }
  StreamState* s = detail::new_stream(*srv->core, srv->options.limit);
  uv_tcp_init(listener->loop, &s->h.tcp);
  s->h.handle.data = s;
  if (const int rc = uv_accept(listener, s->stream()); rc != 0) {
    s->closing = true;
    detail::close_handle(s);
    // libuv has closed that client's socket; the listener goes on (tests/faults/ checks that the
    // next client is served).
    report_accept_failure(srv, rc);
    return;
  }
  uv_tcp_nodelay(&s->h.tcp, 1);
  s->server = srv;
  s->next_in_server = srv->connections;
  if (srv->connections) srv->connections->prev_in_server = s;
  srv->connections = s;
  ++srv->active;
  if (srv->options.ssl) {
    // The handler starts once the handshake is done (tls_stream.cpp). (No StreamWriter here to
    // ask the peer's address: dropping the last handle would close the connection.)
    sockaddr_storage peer{};
    int len = sizeof peer;
    uv_tcp_getpeername(&s->h.tcp, reinterpret_cast<sockaddr*>(&peer), &len);
    try {
      detail::tls_start(s, "asyncio::Server", srv->options.ssl, true, {},
                        detail::to_address(reinterpret_cast<sockaddr*>(&peer)).to_string(),
                        srv->options.ssl_handshake_timeout);
      s->tls->run_handler = true;
    } catch (...) {
      s->closing = true;
      detail::close_handle(s);
      srv->core->report("asyncio::Server: TLS could not start for a client",
                        std::current_exception());
      return;
    }
  }
  detail::start_reading(s);
  if (!s->tls) detail::start_client_handler(s);
}

}  // namespace

namespace detail {

void start_client_handler(StreamState* s) {
  ServerState* srv = s->server;
  if (!srv) return;  // closed meanwhile
  StreamReader reader(s);
  StreamWriter writer(s);
  try {
    Task<void> task = srv->handler(std::move(reader), std::move(writer));
    task.base().spawn(*srv->core, concur::base::source_location::current());
  } catch (...) {
    srv->core->report("asyncio::Server: the client handler threw before it started",
                      std::current_exception());
  }
}

}  // namespace detail

Task<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options) {
  if (!handler) throw std::invalid_argument("asyncio::start_server(): the handler is empty");
  detail::check_stream_limit("asyncio::start_server", options.limit);
  if (options.ssl) {
    detail::check_handshake_timeout("asyncio::start_server", options.ssl_handshake_timeout);
  }
  detail::LoopCore& core = detail::require_core("asyncio::start_server");
  std::vector<SocketAddress> addresses;
  if (host.empty()) {
    addresses = {SocketAddress{"0.0.0.0", port, AF_INET}, SocketAddress{"::", port, AF_INET6}};
  } else {
    addresses = co_await getaddrinfo(host, port, true);
  }
  uv_loop_t* uv = detail::current_uv_loop("asyncio::start_server");
  auto* srv = new detail::ServerState;
  srv->core = &core;
  srv->close_resource = [](detail::LoopResource* r) {
    close_server(static_cast<detail::ServerState*>(r));
  };
  core.attach(srv);
  srv->handler = std::move(handler);
  srv->options = options;
  srv->refs = 1;
  Server server(srv);  // from here the handle owns it
  for (const SocketAddress& a : addresses) {
    sockaddr_storage sa;
    // With port 0 and several addresses, every listener takes the port the first one got.
    std::uint16_t p = srv->addresses.empty() ? a.port : srv->addresses.front().port;
    detail::parse_numeric(a.host, p, &sa);
    auto* l = new uv_tcp_t;
    if (const int rc = uv_tcp_init_ex(uv, l, a.family); rc < 0) {
      delete l;  // never initialised: nothing for libuv to close (found by tests/faults/)
      server.close();
      detail::throw_uv(rc, "asyncio::start_server(): a socket for " + a.to_string());
    }
    l->data = srv;
    ++srv->listeners_open;
    srv->listeners.push_back(l);
    int on = 1;
    uv_os_fd_t fd;
    if (options.reuse_port && uv_fileno(reinterpret_cast<uv_handle_t*>(l), &fd) == 0) {
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    }
    int rc = uv_tcp_bind(l, reinterpret_cast<sockaddr*>(&sa),
                         a.family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(l), options.backlog, &on_connection);
    if (rc < 0) {
      server.close();
      detail::throw_uv(rc, "asyncio::start_server(): binding " + a.to_string());
    }
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(l, reinterpret_cast<sockaddr*>(&bound), &len);
    srv->addresses.push_back(detail::to_address(reinterpret_cast<sockaddr*>(&bound)));
  }
  co_return server;
}

Server::Server(const Server& other) noexcept : s_(other.s_) {
  if (s_) ++s_->refs;
}
Server::Server(Server&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
Server& Server::operator=(Server other) noexcept {
  std::swap(s_, other.s_);
  return *this;
}
Server::~Server() {
  if (!s_) return;
  if (--s_->refs == 0) {
    close_server(s_);
    detail::maybe_free_server(s_);
  }
}

void Server::close() {
  if (s_) close_server(s_);
}

void Server::close_clients() {
  if (!s_) return;
  for (StreamState* c = s_->connections; c; c = c->next_in_server) detail::close_after_flush(c);
}

void Server::abort_clients() {
  if (!s_) return;
  for (StreamState* c = s_->connections; c; c = c->next_in_server) detail::abort_now(c);
}

bool Server::is_serving() const {
  return s_ && !s_->closing;
}

Task<void> Server::wait_closed() {
  Server keep = *this;
  detail::ServerState* srv = keep.s_;
  if (!srv) co_return;
  while (!(srv->closing && srv->listeners_open == 0 && srv->active == 0)) {
    detail::ListWait w(srv->closed_waiters);
    co_await w;
    if (w.cancel_due()) w.throw_cancel();
  }
}

Task<void> Server::serve_forever() {
  Server keep = *this;
  detail::ServerState* srv = keep.s_;
  if (!srv) throw InvalidStateError("asyncio::Server::serve_forever(): empty server handle");
  if (srv->serving_forever) {
    throw RuntimeError("asyncio::Server::serve_forever(): already being awaited");
  }
  if (srv->closing) {
    throw RuntimeError("asyncio::Server::serve_forever(): the server is closed");
  }
  srv->serving_forever = true;
  struct Reset {
    detail::ServerState* srv;
    ~Reset() { srv->serving_forever = false; }
  } reset{srv};
  while (!srv->closing) {
    detail::ListWait w(srv->serve_waiters);
    co_await w;
    if (w.cancel_due()) {
      close_server(srv);  // as Python: cancelling serve_forever() closes the server
      w.throw_cancel();
    }
  }
}

std::vector<SocketAddress> Server::sockets() const {
  return s_ ? s_->addresses : std::vector<SocketAddress>{};
}
std::uint16_t Server::port() const {
  return s_ && !s_->addresses.empty() ? s_->addresses.front().port : 0;
}
std::size_t Server::active_connections() const {
  return s_ ? s_->active : 0;
}

}  // namespace concur::asyncio
