// TCP streams on libuv: the connection state shared by StreamReader and StreamWriter, the
// server, connecting and name resolution.
#include "concur/asyncio/streams.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "asyncio/stream_internal.hpp"
#include "asyncio/uv_util.hpp"
#include "concur/asyncio/loop.hpp"

namespace concur::asyncio {

// ---------------------------------------------------------------------------------------------
// libuv glue (uv_util.hpp)

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

// ---------------------------------------------------------------------------------------------
// The connection

namespace detail {

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
// One read buffer per thread: libuv hands it to read_cb, which copies the bytes out before
// returning, and a loop runs on one thread, so one buffer serves every connection of the loop.
// Allocated at the thread's first read: a thread_local array would sit in every thread's static
// TLS block, 64 KiB zeroed at the start of each thread of any program that links concur (the
// lab's thread-memory experiment saw it).
char* read_buffer() {
  thread_local std::unique_ptr<char[]> buffer;
  if (!buffer) buffer.reset(new char[kReadChunk]);
  return buffer.get();
}
}  // namespace

struct StreamState : LoopResource {
  union Handle {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t stream;
    uv_handle_t handle;
  } h;
  LoopCore* core = nullptr;
  ServerState* server = nullptr;
  StreamState* next_in_server = nullptr;
  StreamState* prev_in_server = nullptr;

  // Reading.
  std::string rbuf;
  std::size_t rpos = 0;
  std::size_t limit = kDefaultStreamLimit;
  StreamReader::ReadOp* reader_op = nullptr;
  int read_error = 0;
  bool eof = false;
  bool reading = false;

  // Writing.
  struct WriteReq {
    uv_write_t req;
    StreamState* s;
    std::string data;
  };
  std::string pending;  // queued behind the write in flight, sent as one write after it
  bool write_in_flight = false;
  std::size_t high_water = 64 * 1024;
  std::size_t low_water = 16 * 1024;
  int write_error = 0;
  WaitList drainers;
  WaitList closers;

  bool is_tcp = true;
  bool closing = false;  // close() called: flush, then close the handle
  bool closed = false;   // the handle's close callback ran
  bool eof_requested = false;
  bool eof_sent = false;
  std::uint32_t reader_refs = 0;
  std::uint32_t writer_refs = 0;

  std::size_t buffered() const { return rbuf.size() - rpos; }
  std::size_t write_buffered() const { return h.stream.write_queue_size + pending.size(); }
  uv_stream_t* stream() { return &h.stream; }
  uv_handle_t* handle() { return &h.handle; }
};

WaitList& drain_waiters(StreamState* s) noexcept {
  return s->drainers;
}
WaitList& close_waiters(StreamState* s) noexcept {
  return s->closers;
}

struct ServerState : LoopResource {
  LoopCore* core = nullptr;
  ClientHandler handler;
  ServerOptions options;
  std::vector<uv_tcp_t*> listeners;
  std::size_t listeners_open = 0;
  StreamState* connections = nullptr;
  std::size_t active = 0;
  std::uint32_t refs = 0;  // Server handles
  bool closing = false;
  bool serving_forever = false;
  WaitList closed_waiters;  // wait_closed()
  WaitList serve_waiters;   // serve_forever()
  std::vector<SocketAddress> addresses;
  // Failed accepts are reported at most once a second (with how many were not), as Python's
  // server logs and pauses for a second: at the descriptor limit every new client fails one.
  std::int64_t last_accept_report_ns = 0;
  std::uint64_t unreported_accept_failures = 0;
};

namespace {

void maybe_free_server(ServerState* srv) {
  if (srv->refs == 0 && srv->listeners_open == 0 && srv->active == 0) delete srv;
}

void check_server_closed(ServerState* srv) {
  if (srv->closing && srv->listeners_open == 0 && srv->active == 0) wake_all(srv->closed_waiters);
}

void maybe_free(StreamState* s) {
  if (s->closed && s->reader_refs == 0 && s->writer_refs == 0) delete s;
}

void wake_reader(StreamState* s) {
  if (StreamReader::ReadOp* op = std::exchange(s->reader_op, nullptr)) s->core->resume_now(op);
}

void on_closed(uv_handle_t* handle) {
  auto* s = static_cast<StreamState*>(handle->data);
  s->core->detach(s);
  s->closed = true;
  s->reading = false;
  if (!s->read_error) s->eof = true;
  if (ServerState* srv = s->server) {
    (s->prev_in_server ? s->prev_in_server->next_in_server : srv->connections) = s->next_in_server;
    if (s->next_in_server) s->next_in_server->prev_in_server = s->prev_in_server;
    s->server = nullptr;
    --srv->active;
    check_server_closed(srv);
    maybe_free_server(srv);
  }
  wake_all(s->drainers);
  wake_all(s->closers);
  // A read still waiting (the reader was not closed by its owner) sees EOF or the error.
  if (s->reader_op) {
    s->reader_op->filled = false;
    // The read resumes now and may drop the last handles (a handler that returns): hold a
    // reference until it is back, or that would free the state under this function.
    ++s->reader_refs;
    wake_reader(s);
    --s->reader_refs;
  }
  maybe_free(s);
}

void close_handle(StreamState* s) {
  if (uv_is_closing(s->handle())) return;
  if (s->reading) uv_read_stop(s->stream());
  s->reading = false;
  uv_close(s->handle(), &on_closed);
}

void start_write(StreamState* s, std::string data, std::size_t offset = 0);

void do_shutdown(StreamState* s) {
  s->eof_sent = true;
  auto* req = new uv_shutdown_t;
  if (uv_shutdown(req, s->stream(), [](uv_shutdown_t* r, int) { delete r; }) != 0) delete req;
}

// After a write finished or failed: send what queued meanwhile, or finish a close / write_eof.
void after_write(StreamState* s) {
  if (!s->write_error && !s->pending.empty()) {
    std::string next;
    next.swap(s->pending);
    start_write(s, std::move(next));
  } else if (!s->write_in_flight) {
    if (s->closing) {
      close_handle(s);
    } else if (s->eof_requested && !s->eof_sent && !s->write_error) {
      do_shutdown(s);
    }
  }
  if (s->write_error || s->write_buffered() <= s->low_water) wake_all(s->drainers);
}

void fail(StreamState* s, int err) {
  if (!s->write_error) s->write_error = err;
  if (!s->read_error) s->read_error = err;
  s->pending.clear();
  close_handle(s);
}

void on_written(uv_write_t* req, int status) {
  std::unique_ptr<StreamState::WriteReq> w(static_cast<StreamState::WriteReq*>(req->data));
  StreamState* s = w->s;
  s->write_in_flight = false;
  if (status < 0 && status != UV_ECANCELED) {
    fail(s, status);
    wake_all(s->drainers);
    return;
  }
  after_write(s);
}

void start_write(StreamState* s, std::string data, std::size_t offset) {
  auto w = std::make_unique<StreamState::WriteReq>();
  w->s = s;
  w->data = std::move(data);
  w->req.data = w.get();
  uv_buf_t buf =
      uv_buf_init(w->data.data() + offset, static_cast<unsigned>(w->data.size() - offset));
  int rc = uv_write(&w->req, s->stream(), &buf, 1, &on_written);
  if (rc < 0) {
    fail(s, rc);
    return;
  }
  s->write_in_flight = true;
  w.release();
}

void on_alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(read_buffer(), kReadChunk);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<StreamState*>(stream->data);
  if (nread > 0) {
    auto n = static_cast<std::size_t>(nread);
    StreamReader::ReadOp* op = s->reader_op;
    if (op && op->kind == StreamReader::ReadOp::kRead && s->buffered() == 0) {
      // The common case of a waiting read(n): hand the bytes over without buffering them.
      std::size_t take = std::min(n, op->n);
      op->result.assign(buf->base, take);
      op->filled = true;
      if (take < n) s->rbuf.append(buf->base + take, n - take);
      wake_reader(s);
      return;
    }
    if (s->rpos > 0 && s->rpos == s->rbuf.size()) {
      s->rbuf.clear();
      s->rpos = 0;
    }
    s->rbuf.append(buf->base, n);
    bool ready = op && op->satisfied();
    // Back-pressure, resumed when the reader catches up; but not while a read waits that needs
    // more than is buffered (read() to EOF, readexactly(n) beyond 2 x limit): Python's reader
    // resumes reading whenever it waits for data.
    if (s->buffered() > 2 * s->limit && s->reading && (!op || ready)) {
      uv_read_stop(s->stream());
      s->reading = false;
    }
    if (ready) wake_reader(s);
    return;
  }
  if (nread == 0) return;  // EAGAIN
  if (nread == UV_EOF) {
    s->eof = true;
    uv_read_stop(s->stream());
    s->reading = false;
  } else {
    fail(s, static_cast<int>(nread));
  }
  wake_reader(s);
}

void start_reading(StreamState* s) {
  if (s->reading || s->eof || s->closing || s->read_error) return;
  if (uv_read_start(s->stream(), &on_alloc, &on_read) == 0) s->reading = true;
}

// Takes k bytes from the front of the read buffer.
std::string take(StreamState* s, std::size_t k) {
  std::string out(s->rbuf, s->rpos, k);
  s->rpos += k;
  if (s->rpos == s->rbuf.size()) {
    s->rpos = 0;
    if (s->rbuf.capacity() > 4 * kReadChunk) {
      std::string().swap(s->rbuf);  // a burst is over: give its memory back
    } else {
      s->rbuf.clear();
    }
  } else if (s->rpos > kReadChunk && s->rpos * 2 > s->rbuf.size()) {
    s->rbuf.erase(0, s->rpos);
    s->rpos = 0;
  }
  if (!s->reading && s->buffered() <= s->limit) start_reading(s);
  return out;
}

void discard(StreamState* s, std::size_t k) {
  s->rpos += k;
  if (s->rpos == s->rbuf.size()) {
    s->rbuf.clear();
    s->rpos = 0;
  }
  if (!s->reading && s->buffered() <= s->limit) start_reading(s);
}

}  // namespace

// readuntil: no separator in `have` bytes, and it could no longer start within the limit
// (Python's len(buffer) + 1 - len(separator) > limit).
bool sep_overrun(std::size_t have, std::size_t sep_size, std::size_t limit) {
  return have >= sep_size && have + 1 - sep_size > limit;
}

void check_stream_limit(const char* who, std::size_t limit) {
  if (limit == 0) {
    throw std::invalid_argument(std::string(who) +
                                "(): limit must be > 0 (it bounds a line and the buffered bytes); "
                                "leave it out for the default, kDefaultStreamLimit (64 KiB)");
  }
}

namespace {

StreamState* new_stream(LoopCore& core, std::size_t limit) {
  auto* s = new StreamState;
  s->core = &core;
  s->limit = limit;
  s->h.handle.data = s;
  // Closed with the loop if its handles are still held then (see LoopResource).
  s->close_resource = [](LoopResource* r) {
    auto* st = static_cast<StreamState*>(r);
    st->closing = true;
    st->pending.clear();
    close_handle(st);
  };
  core.attach(s);
  return s;
}

}  // namespace

namespace {
void release_side(StreamState* s, std::uint32_t& refs) noexcept {
  --refs;
  if (s->reader_refs == 0 && s->writer_refs == 0) {
    if (!s->closed && !s->closing) {
      s->closing = true;
      if (!s->write_in_flight) close_handle(s);
    }
    maybe_free(s);
  }
}
}  // namespace

void release_reader(StreamState* s) noexcept {
  release_side(s, s->reader_refs);
}

StreamState* new_pipe_stream(LoopCore& core, uv_loop_t* loop, std::size_t limit) {
  StreamState* s = new_stream(core, limit);
  s->is_tcp = false;
  uv_pipe_init(loop, &s->h.pipe, 0);
  s->h.handle.data = s;
  s->reader_refs = 1;
  s->writer_refs = 1;
  return s;
}
uv_stream_t* stream_handle(StreamState* s) {
  return s->stream();
}
void begin_reading(StreamState* s) {
  start_reading(s);
}
void release_writer(StreamState* s) noexcept {
  release_side(s, s->writer_refs);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// StreamReader

using detail::StreamState;

StreamReader::ReadOp::ReadOp(StreamState* state, Kind k, std::size_t count, std::string separator)
    : s(state), kind(k), n(count), sep(std::move(separator)) {}

StreamReader::ReadOp::~ReadOp() {
  if (s && s->reader_op == this) s->reader_op = nullptr;
}

bool StreamReader::ReadOp::satisfied() const {
  if (filled || s->eof || s->read_error || s->closed) return true;
  std::size_t have = s->buffered();
  switch (kind) {
    case kRead:
      return have > 0 || n == 0;
    case kReadAll:
      return false;
    case kExactly:
      return have >= n;
    case kUntil:
    case kLine: {
      if (detail::sep_overrun(have, sep.size(), s->limit)) return true;  // see await_resume
      std::size_t from = scanned > sep.size() ? scanned - sep.size() + 1 : 0;
      std::size_t at = s->rbuf.find(sep, s->rpos + from);
      const_cast<ReadOp*>(this)->scanned = have;
      return at != std::string::npos;
    }
  }
  return false;
}

bool StreamReader::ReadOp::await_ready() {
  if (s->reader_op) {
    throw RuntimeError(
        "asyncio::StreamReader: a read was called while another coroutine is already waiting "
        "for data on this stream; read from one task at a time");
  }
  return satisfied();
}

bool StreamReader::ReadOp::await_suspend(std::coroutine_handle<> h) {
  detail::LoopCore& core = detail::require_core("asyncio::StreamReader read");
  detail::TaskBase* me = core.current_task();
  if (!me) throw RuntimeError("asyncio::StreamReader: reads must be awaited inside a task");
  task = me;
  if (me->must_cancel()) return false;
  handle = h;
  cancel = [](detail::Suspension* su) {
    auto* op = static_cast<ReadOp*>(su);
    if (op->s->reader_op == op) op->s->reader_op = nullptr;
    su->task->set_must_cancel();
    su->task->loop_core()->wake(su);
  };
  s->reader_op = this;
  me->set_waiting(this);
  detail::start_reading(s);
  return true;
}

std::string StreamReader::ReadOp::await_resume() {
  if (s->reader_op == this) s->reader_op = nullptr;
  if (task && task->must_cancel()) {
    if (filled) {
      // The bytes were handed to this read; keep them for the next one.
      s->rbuf.insert(s->rpos, result);
      filled = false;
    }
    task->throw_if_cancel_requested();
  }
  if (filled) return std::move(result);
  std::size_t have = s->buffered();
  auto raise_error = [&]() { detail::throw_uv(s->read_error, "asyncio::StreamReader read"); };
  switch (kind) {
    case kRead:
      if (n == 0) return {};
      if (have > 0) return detail::take(s, std::min(n, have));
      if (s->read_error) raise_error();
      return {};
    case kReadAll:
      if (s->read_error) raise_error();
      return detail::take(s, have);
    case kExactly:
      if (have >= n) return detail::take(s, n);
      if (s->read_error) raise_error();
      {
        std::string partial = detail::take(s, have);
        throw IncompleteReadError(
            partial, n,
            "asyncio::StreamReader::readexactly(): " + std::to_string(partial.size()) +
                " bytes read on a total of " + std::to_string(n) + " expected bytes");
      }
    case kUntil:
    case kLine: {
      std::size_t at = s->rbuf.find(sep, s->rpos);
      if (at != std::string::npos) {
        std::size_t offset = at - s->rpos;
        if (offset > s->limit) {
          if (kind == kLine) {
            detail::discard(s, offset + sep.size());
          }
          throw LimitOverrunError(
              "asyncio::StreamReader: the separator is found, but the chunk is longer than the "
              "limit (" +
                  std::to_string(s->limit) + " bytes); raise the stream's limit",
              offset);
        }
        return detail::take(s, offset + sep.size());
      }
      if (detail::sep_overrun(have, sep.size(), s->limit)) {
        if (kind == kLine) detail::discard(s, have);
        throw LimitOverrunError(
            "asyncio::StreamReader: the separator is not found, and the chunk exceeds the limit (" +
                std::to_string(s->limit) + " bytes); raise the stream's limit",
            have + 1 - sep.size());
      }
      if (s->read_error) raise_error();
      std::string partial = detail::take(s, have);
      if (kind == kLine) return partial;
      throw IncompleteReadError(partial, 0,
                                "asyncio::StreamReader::readuntil(): EOF after " +
                                    std::to_string(partial.size()) +
                                    " bytes, before the separator");
    }
  }
  return {};
}

StreamState* StreamReader::state(const char* who) const {
  if (!s_) {
    throw InvalidStateError(std::string("asyncio::StreamReader::") + who +
                            "(): empty reader (moved from or default-built)");
  }
  return s_;
}

void StreamReader::add() noexcept {
  if (s_) ++s_->reader_refs;
}

StreamReader::ReadOp StreamReader::read(long n) {
  StreamState* s = state("read");
  if (n < 0) return ReadOp(s, ReadOp::kReadAll, 0, {});
  return ReadOp(s, ReadOp::kRead, static_cast<std::size_t>(n), {});
}
StreamReader::ReadOp StreamReader::readexactly(std::size_t n) {
  return ReadOp(state("readexactly"), ReadOp::kExactly, n, {});
}
StreamReader::ReadOp StreamReader::readuntil(std::string separator) {
  if (separator.empty()) {
    throw std::invalid_argument(
        "asyncio::StreamReader::readuntil(): the separator must be at least one byte");
  }
  return ReadOp(state("readuntil"), ReadOp::kUntil, 0, std::move(separator));
}
StreamReader::ReadOp StreamReader::readline() {
  return ReadOp(state("readline"), ReadOp::kLine, 0, "\n");
}
bool StreamReader::at_eof() const {
  StreamState* s = state("at_eof");
  return s->eof && s->buffered() == 0;
}
std::size_t StreamReader::buffered() const {
  return state("buffered")->buffered();
}
std::size_t StreamReader::limit() const {
  return state("limit")->limit;
}

// ---------------------------------------------------------------------------------------------
// StreamWriter

StreamState* StreamWriter::state(const char* who) const {
  if (!s_) {
    throw InvalidStateError(std::string("asyncio::StreamWriter::") + who +
                            "(): empty writer (moved from or default-built)");
  }
  return s_;
}

void StreamWriter::add() noexcept {
  if (s_) ++s_->writer_refs;
}

namespace detail {
namespace {
// write()'s checks; false when the data is to be dropped (the connection failed: drain() says so).
bool writable(StreamState* s, std::size_t size) {
  if (s->eof_requested) {
    throw RuntimeError("asyncio::StreamWriter::write(): cannot write after write_eof()");
  }
  if (s->closing && !s->write_error) {
    throw RuntimeError(
        "asyncio::StreamWriter::write(): the writer is closing; write before close()");
  }
  return !(s->write_error || s->closed || size == 0);
}

// Sends what the socket takes now; returns how many bytes it took, or -1 if the write failed.
long try_send(StreamState* s, std::string_view data) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
  int sent = uv_try_write(s->stream(), &buf, 1);
  if (sent == UV_EAGAIN || sent == UV_ENOSYS) sent = 0;
  if (sent < 0) {
    fail(s, sent);
    return -1;
  }
  return sent;
}
}  // namespace
}  // namespace detail

void StreamWriter::write(std::string_view data) {
  StreamState* s = state("write");
  if (!detail::writable(s, data.size())) return;
  if (s->write_in_flight) {
    s->pending.append(data);
    return;
  }
  long sent = detail::try_send(s, data);
  if (sent < 0 || static_cast<std::size_t>(sent) == data.size()) return;
  detail::start_write(s, std::string(data.substr(static_cast<std::size_t>(sent))));
}

void StreamWriter::write(std::string&& data) {
  StreamState* s = state("write");
  if (!detail::writable(s, data.size())) return;
  if (s->write_in_flight) {
    if (s->pending.empty()) {
      s->pending = std::move(data);
    } else {
      s->pending.append(data);
    }
    return;
  }
  long sent = detail::try_send(s, data);
  if (sent < 0 || static_cast<std::size_t>(sent) == data.size()) return;
  // What the socket did not take is queued without a copy: the string itself is kept.
  detail::start_write(s, std::move(data), static_cast<std::size_t>(sent));
}

bool StreamWriter::DrainOp::await_ready() {
  return s->write_error || s->closed || s->write_buffered() <= s->high_water;
}

void StreamWriter::DrainOp::await_resume() {
  if (cancel_due()) throw_cancel();
  if (s->write_error) detail::throw_uv(s->write_error, "asyncio::StreamWriter::drain");
  if (s->closed) {
    throw ConnectionResetError(ECONNRESET, "asyncio::StreamWriter::drain(): Connection lost");
  }
}

StreamWriter::DrainOp StreamWriter::drain() {
  return DrainOp(state("drain"));
}
std::size_t StreamWriter::write_buffer_size() const {
  return state("write_buffer_size")->write_buffered();
}
void StreamWriter::set_write_buffer_limits(std::size_t high, std::size_t low) {
  if (low > high) {
    throw std::invalid_argument(
        "asyncio::StreamWriter::set_write_buffer_limits(): high must be >= low");
  }
  StreamState* s = state("set_write_buffer_limits");
  s->high_water = high;
  s->low_water = low;
}

void StreamWriter::write_eof() {
  StreamState* s = state("write_eof");
  if (s->eof_requested || s->closing) return;
  s->eof_requested = true;
  if (!s->write_in_flight && !s->write_error && !s->closed) detail::do_shutdown(s);
}

namespace detail {
namespace {

// StreamWriter::close() and Server::close_clients(): flush what is queued, then close.
void close_after_flush(StreamState* s) {
  if (s->closing || s->closed) return;
  s->closing = true;
  if (!s->write_in_flight) close_handle(s);
}

// StreamWriter::abort() and Server::abort_clients(): close now, queued data dropped, a TCP peer
// sees a reset.
void abort_now(StreamState* s) {
  if (s->closed || uv_is_closing(s->handle())) return;
  s->closing = true;
  s->pending.clear();
  if (s->reading) uv_read_stop(s->stream());
  s->reading = false;
  if (s->is_tcp && uv_tcp_close_reset(&s->h.tcp, &on_closed) == 0) return;
  uv_close(s->handle(), &on_closed);
}

}  // namespace
}  // namespace detail

void StreamWriter::abort() {
  detail::abort_now(state("abort"));
}

void StreamWriter::close() {
  detail::close_after_flush(state("close"));
}

bool StreamWriter::is_closing() const {
  StreamState* s = state("is_closing");
  return s->closing || s->closed;
}

bool StreamWriter::ClosedOp::await_ready() {
  return s->closed;
}
void StreamWriter::ClosedOp::await_resume() {
  if (cancel_due()) throw_cancel();
}
StreamWriter::ClosedOp StreamWriter::wait_closed() {
  return ClosedOp(state("wait_closed"));
}

SocketAddress StreamWriter::peername() const {
  StreamState* s = state("peername");
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (!s->is_tcp || s->closed ||
      uv_tcp_getpeername(&s->h.tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return {};
  }
  return detail::to_address(reinterpret_cast<sockaddr*>(&ss));
}

SocketAddress StreamWriter::sockname() const {
  StreamState* s = state("sockname");
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (!s->is_tcp || s->closed ||
      uv_tcp_getsockname(&s->h.tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return {};
  }
  return detail::to_address(reinterpret_cast<sockaddr*>(&ss));
}

// ---------------------------------------------------------------------------------------------
// Name resolution and connecting

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

// Connects a fresh stream to one address; the stream is closed on failure or cancellation.
Task<StreamState*> connect_one(const SocketAddress& address, std::size_t limit) {
  detail::LoopCore& core = detail::require_core("asyncio::open_connection");
  uv_loop_t* uv = detail::current_uv_loop("asyncio::open_connection");
  sockaddr_storage sa;
  detail::parse_numeric(address.host, address.port, &sa);
  StreamState* s = detail::new_stream(core, limit);
  s->reader_refs = 1;  // held by this function until it hands the stream over
  uv_tcp_init(uv, &s->h.tcp);
  s->h.handle.data = s;
  struct Guard {
    StreamState* s;
    ~Guard() {
      if (s) detail::release_reader(s);
    }
  } guard{s};
  auto* block = new ConnectBlock;
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
  guard.s = nullptr;
  co_return s;
}

}  // namespace

Task<StreamPair> open_connection(std::string host, std::uint16_t port, std::size_t limit) {
  detail::check_stream_limit("asyncio::open_connection", limit);
  std::vector<SocketAddress> addresses = co_await getaddrinfo(host, port, false);
  std::exception_ptr last;
  for (const SocketAddress& a : addresses) {
    try {
      StreamState* s = co_await connect_one(a, limit);
      s->writer_refs = 1;
      detail::start_reading(s);
      co_return StreamPair{StreamReader(s), StreamWriter(s)};
    } catch (const CancelledError&) {
      throw;
    } catch (const OSError&) {
      last = std::current_exception();
    }
  }
  if (last) std::rethrow_exception(last);
  throw OSError(EADDRNOTAVAIL, "asyncio::open_connection(" + host + "): no address found");
}

// ---------------------------------------------------------------------------------------------
// Server

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

void on_connection(uv_stream_t* listener, int status) {
  auto* srv = static_cast<detail::ServerState*>(listener->data);
  if (status < 0) {
    // At the descriptor limit (EMFILE/ENFILE) libuv accepts and closes the waiting clients with
    // a descriptor it keeps in reserve, without calling here, so the loop does not spin on a
    // listener that stays readable; the connections already open go on, and accepting resumes
    // once descriptors are free (tests/integration/asyncio_emfile_test.cpp). What does reach
    // here (the trick failing, other accept errors) is reported at most once a second.
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
          "; the process is out of file descriptors: the clients beyond the limit are "
          "closed at once; raise the limit (ulimit -n) or serve fewer connections";
    }
    srv->last_accept_report_ns = now;
    srv->unreported_accept_failures = 0;
    srv->core->report(what, detail::uv_error(status, "accept"));
    return;
  }
  StreamState* s = detail::new_stream(*srv->core, srv->options.limit);
  uv_tcp_init(listener->loop, &s->h.tcp);
  s->h.handle.data = s;
  if (uv_accept(listener, s->stream()) != 0) {
    s->closing = true;
    detail::close_handle(s);
    return;
  }
  uv_tcp_nodelay(&s->h.tcp, 1);
  s->server = srv;
  s->next_in_server = srv->connections;
  if (srv->connections) srv->connections->prev_in_server = s;
  srv->connections = s;
  ++srv->active;
  s->reader_refs = 1;
  s->writer_refs = 1;
  detail::start_reading(s);
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

}  // namespace

Task<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options) {
  if (!handler) throw std::invalid_argument("asyncio::start_server(): the handler is empty");
  detail::check_stream_limit("asyncio::start_server", options.limit);
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
    uv_tcp_init_ex(uv, l, a.family);
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
