// UDP sockets on libuv: the socket state shared by DatagramSocket handles, its bounded receive
// queue, the waiting recv_from() calls, sending, and create_datagram_endpoint.
#include "concur/asyncio/datagram.hpp"

#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <coroutine>
#include <deque>
#include <exception>
#include <memory>
#include <stdexcept>
#include <vector>

#include "asyncio/uv_util.hpp"
#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/detail/wait.hpp"

namespace concur::asyncio {

namespace detail {

namespace {

// Every UDP payload over IPv4 fits (65,507 bytes at most). One buffer per thread: libuv hands it
// to the receive callback, which copies the datagram out before returning.
constexpr std::size_t kDatagramBuffer = 64 * 1024;
// Allocated at the thread's first receive, not as a thread_local array (which every thread of
// every program linking concur would carry, zeroed, in its static TLS).
char* datagram_buffer() {
  thread_local std::unique_ptr<char[]> buffer;
  if (!buffer) buffer.reset(new char[kDatagramBuffer]);
  return buffer.get();
}

// A received datagram, or an error that came in its place (error < 0, a libuv code).
struct Entry {
  Datagram datagram;
  int error = 0;
};

}  // namespace

struct DatagramState : LoopResource {
  uv_udp_t udp{};
  LoopCore* core = nullptr;
  std::deque<Entry> queue;
  std::size_t max_queued = 1024;
  std::uint64_t dropped = 0;
  WaitList receivers{"DatagramSocket.recv_from"};  // RecvWait nodes, FIFO
  std::uint32_t refs = 1;
  bool connected = false;
  bool close_requested = false;  // uv_close called by us
  bool closed = false;           // our close callback ran

  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&udp); }
  // Closed by close() or by the loop (EventLoop::close() closes the handles left open).
  bool is_closed() { return close_requested || uv_is_closing(handle()) != 0; }
};

namespace {

// A recv_from() waiting: a node of the socket's receivers, inside the coroutine's frame.
struct RecvWait : WaitNode {
  DatagramState* s;
  Entry entry;
  bool filled = false;  // a datagram (or error) was handed to it

  explicit RecvWait(DatagramState* state) : s(state) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    TaskBase* me = s->core->current_task();
    if (!me) {
      throw RuntimeError(
          "asyncio::DatagramSocket::recv_from(): must be awaited inside a task (a coroutine run by "
          "the loop)");
    }
    suspension.task = me;
    if (me->must_cancel()) return false;
    suspension.handle = h;
    suspension.cancel = &on_cancel;
    s->receivers.push_back(this);
    me->set_waiting(&suspension);
    return true;
  }
  void await_resume() const noexcept {}

  static void on_cancel(Suspension* su) {
    auto* n =
        reinterpret_cast<WaitNode*>(reinterpret_cast<char*>(su) - offsetof(WaitNode, suspension));
    if (n->linked()) n->list()->remove(n);
    su->task->set_must_cancel();
    su->task->loop_core()->wake(su);
  }
};

[[noreturn]] void throw_closed(const char* who) {
  throw OSError(EBADF, std::string("asyncio::DatagramSocket::") + who +
                           "(): the socket is closed; create a new one with "
                           "asyncio::create_datagram_endpoint()");
}

// Hands a datagram (or error) to the first waiting recv_from(), or queues it, dropping the oldest
// queued one when the queue is full.
void deliver(DatagramState* s, Entry e) {
  if (WaitNode* n = s->receivers.head) {
    s->receivers.remove(n);
    auto* w = static_cast<RecvWait*>(n);
    w->entry = std::move(e);
    w->filled = true;
    n->mark_woken();
    s->core->wake(&n->suspension);
    return;
  }
  if (s->max_queued == 0) {
    ++s->dropped;
    return;
  }
  while (s->queue.size() >= s->max_queued) {
    s->queue.pop_front();
    ++s->dropped;
  }
  s->queue.push_back(std::move(e));
}

void wake_receivers(DatagramState* s) {
  while (WaitNode* n = s->receivers.head) {
    s->receivers.remove(n);
    n->mark_woken();
    s->core->wake(&n->suspension);
  }
}

void on_alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(datagram_buffer(), kDatagramBuffer);
}

void on_recv(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned) {
  auto* s = static_cast<DatagramState*>(h->data);
  if (nread == 0 && addr == nullptr) return;  // nothing more to read now
  if (s->close_requested) return;
  Entry e;
  if (nread < 0) {
    e.error = static_cast<int>(nread);
  } else {
    e.datagram.data.assign(buf->base, static_cast<std::size_t>(nread));
    e.datagram.from = to_address(addr);
  }
  deliver(s, std::move(e));
}

void on_closed(uv_handle_t* h) {
  auto* s = static_cast<DatagramState*>(h->data);
  s->closed = true;
  if (s->refs == 0) delete s;
}

void begin_close(DatagramState* s) {
  if (s->is_closed()) return;
  s->core->detach(s);
  s->close_requested = true;
  uv_udp_recv_stop(&s->udp);
  uv_close(s->handle(), &on_closed);
  s->queue.clear();
  wake_receivers(s);  // each throws OSError EBADF
}

struct SendReq {
  uv_udp_send_t req;
  DatagramState* s;
  std::string data;
};

void on_sent(uv_udp_send_t* req, int status) {
  std::unique_ptr<SendReq> r(static_cast<SendReq*>(req->data));
  // The socket outlives its requests: closing it cancels them (UV_ECANCELED) before its close
  // callback runs.
  if (status < 0 && status != UV_ECANCELED && !r->s->is_closed()) deliver(r->s, Entry{{}, status});
}

void send_datagram(DatagramState* s, std::string_view data, const sockaddr* to, const char* who) {
  if (s->is_closed()) throw_closed(who);
  const std::string what = std::string("asyncio::DatagramSocket::") + who + "()";
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
  int rc = uv_udp_try_send(&s->udp, &buf, 1, to);
  if (rc >= 0) return;
  if (rc != UV_EAGAIN && rc != UV_ENOSYS) throw_uv(rc, what);
  // The kernel's buffer is full, or datagrams already wait: queue a copy behind them.
  auto r = std::make_unique<SendReq>();
  r->s = s;
  r->data.assign(data);
  r->req.data = r.get();
  uv_buf_t copy = uv_buf_init(r->data.data(), static_cast<unsigned>(r->data.size()));
  rc = uv_udp_send(&r->req, &s->udp, &copy, 1, to, &on_sent);
  if (rc < 0) throw_uv(rc, what);
  r.release();
}

}  // namespace

void add_ref(DatagramState* s) noexcept {
  ++s->refs;
}

void release(DatagramState* s) noexcept {
  if (--s->refs != 0) return;
  if (s->closed) {
    delete s;
  } else if (s->close_requested) {
    // on_closed frees it
  } else if (uv_is_closing(s->handle())) {
    delete s;  // EventLoop::close() closed the handle; libuv is done with it
  } else {
    begin_close(s);
  }
}

}  // namespace detail

using detail::DatagramState;

DatagramState* DatagramSocket::require(const char* who) const {
  if (!s_) {
    throw InvalidStateError(std::string("asyncio::DatagramSocket::") + who +
                            "(): empty handle (moved from or default-built)");
  }
  return s_;
}

void DatagramSocket::send_to(std::string_view data, const SocketAddress& to) {
  DatagramState* s = require("send_to");
  sockaddr_storage sa;
  if (!detail::parse_numeric(to.host, to.port, &sa)) {
    throw std::invalid_argument("asyncio::DatagramSocket::send_to(): '" + to.host +
                                "' is not a numeric address; resolve it first with "
                                "asyncio::getaddrinfo()");
  }
  detail::send_datagram(s, data, reinterpret_cast<const sockaddr*>(&sa), "send_to");
}

void DatagramSocket::send(std::string_view data) {
  detail::send_datagram(require("send"), data, nullptr, "send");
}

namespace {

Task<Datagram> receive(DatagramSocket keep) {
  DatagramState* s = keep.state();
  detail::LoopCore& core = detail::require_core("asyncio::DatagramSocket::recv_from");
  if (s->is_closed()) detail::throw_closed("recv_from");
  if (&core != s->core) {
    throw RuntimeError(
        "asyncio::DatagramSocket::recv_from(): the socket belongs to another event loop; use it "
        "from the loop that created it");
  }
  detail::Entry e;
  if (!s->queue.empty()) {
    e = std::move(s->queue.front());
    s->queue.pop_front();
  } else {
    detail::RecvWait w(s);
    co_await w;
    if (w.suspension.task->must_cancel()) {
      if (w.filled) s->queue.push_front(std::move(w.entry));  // not lost: the next call gets it
      w.suspension.task->throw_if_cancel_requested();
    }
    if (!w.filled) detail::throw_closed("recv_from");
    e = std::move(w.entry);
  }
  if (e.error < 0) detail::throw_uv(e.error, "asyncio::DatagramSocket::recv_from()");
  co_return std::move(e.datagram);
}

}  // namespace

Task<Datagram> DatagramSocket::recv_from() const {
  require("recv_from");
  return receive(*this);  // the task holds its own reference
}

SocketAddress DatagramSocket::sockname() const {
  DatagramState* s = require("sockname");
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (s->is_closed() || uv_udp_getsockname(&s->udp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return {};
  }
  return detail::to_address(reinterpret_cast<sockaddr*>(&ss));
}

std::optional<SocketAddress> DatagramSocket::peername() const {
  DatagramState* s = require("peername");
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (!s->connected || s->is_closed() ||
      uv_udp_getpeername(&s->udp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return std::nullopt;
  }
  return detail::to_address(reinterpret_cast<sockaddr*>(&ss));
}

void DatagramSocket::close() {
  if (s_) detail::begin_close(s_);
}

bool DatagramSocket::is_closing() const {
  return require("is_closing")->is_closed();
}
std::size_t DatagramSocket::queued() const {
  return require("queued")->queue.size();
}
std::uint64_t DatagramSocket::dropped() const {
  return require("dropped")->dropped;
}
std::size_t DatagramSocket::send_queue_size() const {
  DatagramState* s = require("send_queue_size");
  return s->is_closed() ? 0 : uv_udp_get_send_queue_size(&s->udp);
}

namespace {

// Opens one socket: bound to `local`, connected to `remote` if given, receiving.
DatagramSocket open_socket(detail::LoopCore& core, const SocketAddress& local,
                           const SocketAddress* remote, const DatagramOptions& options) {
  uv_loop_t* uv = detail::current_uv_loop("asyncio::create_datagram_endpoint");
  const std::string where = "asyncio::create_datagram_endpoint(" + local.to_string() + ")";
  auto* s = new DatagramState;
  s->core = &core;
  // Closed with the loop if its handles are still held then (see LoopResource).
  s->close_resource = [](detail::LoopResource* r) {
    detail::begin_close(static_cast<detail::DatagramState*>(r));
  };
  core.attach(s);
  s->max_queued = options.max_queued;
  int rc = uv_udp_init_ex(uv, &s->udp, static_cast<unsigned>(local.family));
  if (rc < 0) {
    delete s;
    detail::throw_uv(rc, where);
  }
  s->udp.data = s;
  // An open socket does not keep EventLoop::close() waiting (it closes it instead).
  uv_unref(s->handle());
  DatagramSocket socket(s);  // from here the handle owns it: a failure closes it
  if (options.reuse_port) {
    uv_os_fd_t fd;
    int on = 1;
    if (uv_fileno(s->handle(), &fd) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
      throw OSError(errno, where + ": setsockopt(SO_REUSEPORT)");
    }
  }
  sockaddr_storage sa;
  detail::parse_numeric(local.host, local.port, &sa);
  rc = uv_udp_bind(&s->udp, reinterpret_cast<const sockaddr*>(&sa), 0);
  if (rc < 0) detail::throw_uv(rc, where + ": bind");
  if (options.allow_broadcast) {
    rc = uv_udp_set_broadcast(&s->udp, 1);
    if (rc < 0) detail::throw_uv(rc, where + ": SO_BROADCAST");
  }
  if (remote) {
    sockaddr_storage ra;
    detail::parse_numeric(remote->host, remote->port, &ra);
    rc = uv_udp_connect(&s->udp, reinterpret_cast<const sockaddr*>(&ra));
    if (rc < 0) detail::throw_uv(rc, where + ": connect to " + remote->to_string());
    s->connected = true;
  }
  rc = uv_udp_recv_start(&s->udp, &detail::on_alloc, &detail::on_recv);
  if (rc < 0) detail::throw_uv(rc, where + ": receive");
  return socket;
}

}  // namespace

Task<DatagramSocket> create_datagram_endpoint(std::string local_host, std::uint16_t local_port,
                                              std::string remote_host, std::uint16_t remote_port,
                                              DatagramOptions options) {
  detail::LoopCore& core = detail::require_core("asyncio::create_datagram_endpoint");
  const bool connect = !remote_host.empty();
  std::vector<SocketAddress> remotes;
  if (connect) {
    remotes = co_await getaddrinfo(remote_host, remote_port);
    if (remotes.empty()) {
      throw OSError(EADDRNOTAVAIL, "asyncio::create_datagram_endpoint(): no address found for '" +
                                       remote_host + "'");
    }
  }
  std::vector<SocketAddress> locals;
  if (local_host.empty()) {
    // The wildcard of each family the remote host has (IPv4's when there is no remote).
    bool v4 = !connect, v6 = false;
    for (const SocketAddress& r : remotes) (r.family == AF_INET6 ? v6 : v4) = true;
    if (v4) locals.push_back(SocketAddress{"0.0.0.0", local_port, AF_INET});
    if (v6) locals.push_back(SocketAddress{"::", local_port, AF_INET6});
  } else {
    locals = co_await getaddrinfo(local_host, local_port, true);
  }
  std::exception_ptr last;
  for (const SocketAddress& l : locals) {
    if (!connect) {
      try {
        co_return open_socket(core, l, nullptr, options);
      } catch (const OSError&) {
        last = std::current_exception();
      }
      continue;
    }
    for (const SocketAddress& r : remotes) {
      if (r.family != l.family) continue;
      try {
        co_return open_socket(core, l, &r, options);
      } catch (const OSError&) {
        last = std::current_exception();
      }
    }
  }
  if (last) std::rethrow_exception(last);
  throw OSError(EADDRNOTAVAIL, "asyncio::create_datagram_endpoint(): no local address of '" +
                                   local_host + "' has the family of '" + remote_host + "'");
}

}  // namespace concur::asyncio
