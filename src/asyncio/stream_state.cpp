// One connection's state and the libuv callbacks that move its bytes (see stream_state.hpp): how
// it is made and freed, how bytes arrive, how queued writes go out, and how it closes.
#include "asyncio/stream_state.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <utility>

#include "asyncio/tls_stream.hpp"

namespace concur::asyncio::detail {

// ---------------------------------------------------------------------------------------------
// Made and freed

namespace {

void release_side(StreamState* s, std::uint32_t& refs) noexcept {
  --refs;
  if (s->reader_refs == 0 && s->writer_refs == 0) {
    if (!s->closed && !s->closing) {
      if (s->tls) tls_close_notify(s);
      s->closing = true;
      if (!s->write_in_flight) close_handle(s);
    }
    maybe_free(s);
  }
}

}  // namespace

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

StreamState* new_pipe_stream(LoopCore& core, uv_loop_t* loop, std::size_t limit) {
  StreamState* s = new_stream(core, limit);
  s->is_tcp = false;
  uv_pipe_init(loop, &s->h.pipe, 0);
  s->h.handle.data = s;
  return s;
}

void maybe_free(StreamState* s) {
  if (s->closed && s->reader_refs == 0 && s->writer_refs == 0) delete s;
}

void maybe_free_server(ServerState* srv) {
  if (srv->refs == 0 && srv->listeners_open == 0 && srv->active == 0) delete srv;
}

void check_server_closed(ServerState* srv) {
  if (srv->closing && srv->listeners_open == 0 && srv->active == 0) wake_all(srv->closed_waiters);
}

// The handles' side of the count (streams.hpp): the only place it goes down.
void release_reader(StreamState* s) noexcept {
  release_side(s, s->reader_refs);
}
void release_writer(StreamState* s) noexcept {
  release_side(s, s->writer_refs);
}

uv_stream_t* stream_handle(StreamState* s) {
  return s->stream();
}

WaitList& drain_waiters(StreamState* s) noexcept {
  return s->drainers;
}
WaitList& close_waiters(StreamState* s) noexcept {
  return s->closers;
}

void check_stream_limit(const char* who, std::size_t limit) {
  if (limit == 0) {
    throw std::invalid_argument(std::string(who) +
                                "(): limit must be > 0 (it bounds a line and the buffered bytes); "
                                "leave it out for the default, kDefaultStreamLimit (64 KiB)");
  }
}

void check_handshake_timeout(const char* who, std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) {
    throw std::invalid_argument(std::string(who) +
                                "(): ssl_handshake_timeout must be > 0; leave it out for the "
                                "default, 60 s");
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes arriving

// One read buffer per thread: libuv hands it to read_cb, which copies the bytes out before
// returning, and a loop runs on one thread, so one buffer serves every connection of the loop
// (a TLS connection's OpenSSL reads its ciphertext from it in place, and decrypts into a buffer of
// its own: tls_stream.cpp). Allocated at
// the thread's first read: a thread_local array would sit in every thread's static TLS block, 64
// KiB zeroed at the start of each thread of any program that links concur (the lab's
// thread-memory experiment saw it).
char* read_buffer() {
  thread_local std::unique_ptr<char[]> buffer;
  if (!buffer) buffer.reset(new char[kReadChunk]);
  return buffer.get();
}

namespace {

void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  // A read_into waiting with nothing buffered: the kernel copies straight into the caller's
  // buffer (on_read then finds the bytes in place). libuv calls on_read right after, on this
  // thread, so the read is still the one waiting then.
  // Not for TLS: what the socket gives is ciphertext.
  const auto* s = static_cast<const StreamState*>(handle->data);
  if (const StreamReader::ReadOp* op = s->reader_op; op && s->buffered() == 0 && !s->tls) {
    if (const std::span<char> target = ReadOpAccess::read_target(*op); !target.empty()) {
      *buf = uv_buf_init(target.data(), static_cast<unsigned>(std::min<std::size_t>(
                                            target.size(), std::numeric_limits<unsigned>::max())));
      return;
    }
  }
  *buf = uv_buf_init(read_buffer(), kReadChunk);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<StreamState*>(stream->data);
  if (nread > 0) {
    if (s->tls) {
      tls_received(s, buf->base, static_cast<std::size_t>(nread));
    } else {
      bytes_arrived(s, buf->base, static_cast<std::size_t>(nread));
    }
    return;
  }
  if (nread == 0) return;  // EAGAIN
  if (nread == UV_EOF) {
    s->eof = true;
    uv_read_stop(s->stream());
    s->reading = false;
    if (s->tls) tls_eof(s);
  } else {
    fail(s, static_cast<int>(nread));
  }
  wake_reader(s);
}

}  // namespace

void bytes_arrived(StreamState* s, const char* data, std::size_t n) {
  StreamReader::ReadOp* op = s->reader_op;
  if (op && s->buffered() == 0 && ReadOpAccess::wants_direct_delivery(*op)) {
    // The common case of a waiting read(n): hand the bytes over without buffering them.
    const std::size_t took = ReadOpAccess::deliver(*op, data, n);
    if (took < n) s->rbuf.append(data + took, n - took);
    wake_reader(s);
    return;
  }
  if (s->rpos > 0 && s->rpos == s->rbuf.size()) {
    s->rbuf.clear();
    s->rpos = 0;
  }
  s->rbuf.append(data, n);
  bool ready = op && ReadOpAccess::satisfied(*op);
  // Back-pressure, resumed when the reader catches up; but not while a read waits that needs
  // more than is buffered (read() to EOF, readexactly(n) beyond 2 x limit): Python's reader
  // resumes reading whenever it waits for data.
  if (s->buffered() > 2 * s->limit && s->reading && (!op || ready)) {
    uv_read_stop(s->stream());
    s->reading = false;
  }
  if (ready) wake_reader(s);
}

void start_reading(StreamState* s) {
  if (s->reading || s->eof || s->closing || s->read_error) return;
  const int rc = uv_read_start(s->stream(), &on_alloc, &on_read);
  if (rc == 0) {
    s->reading = true;
  } else {
    // A read waiting for bytes that will never come would wait for ever: the connection fails
    // with the error instead, which every read and drain() then reports (found by tests/faults/).
    fail(s, rc);
  }
}

void begin_reading(StreamState* s) {
  start_reading(s);
}

void wake_reader(StreamState* s) {
  if (StreamReader::ReadOp* op = std::exchange(s->reader_op, nullptr)) s->core->resume_now(op);
}

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

bool sep_overrun(std::size_t have, std::size_t sep_size, std::size_t limit) {
  return have >= sep_size && have + 1 - sep_size > limit;
}

// ---------------------------------------------------------------------------------------------
// Bytes leaving

namespace {

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

}  // namespace

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

void do_shutdown(StreamState* s) {
  s->eof_sent = true;
  auto* req = new uv_shutdown_t;
  if (const int rc = uv_shutdown(req, s->stream(), [](uv_shutdown_t* r, int) { delete r; });
      rc != 0) {
    delete req;
    // The peer would never see the end of the stream and could wait for it for ever: fail the
    // connection instead, so both ends learn (found by tests/faults/).
    fail(s, rc);
  }
}

void fail(StreamState* s, int err) {
  if (!s->write_error) s->write_error = err;
  if (!s->read_error) s->read_error = err;
  s->pending.clear();
  close_handle(s);
}

// ---------------------------------------------------------------------------------------------
// Closing

void close_handle(StreamState* s) {
  if (uv_is_closing(s->handle())) return;
  if (s->reading) uv_read_stop(s->stream());
  s->reading = false;
  uv_close(s->handle(), &on_closed);
}

void close_after_flush(StreamState* s) {
  if (s->closing || s->closed) return;
  if (s->tls) tls_close_notify(s);
  s->closing = true;
  if (!s->write_in_flight) close_handle(s);
}

void abort_now(StreamState* s) {
  if (s->closed || uv_is_closing(s->handle())) return;
  s->closing = true;
  s->pending.clear();
  if (s->reading) uv_read_stop(s->stream());
  s->reading = false;
  if (s->is_tcp && uv_tcp_close_reset(&s->h.tcp, &on_closed) == 0) return;
  uv_close(s->handle(), &on_closed);
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
  if (s->tls) tls_closed(s);
  if (s->reader_op) {
    // A read still waiting (the reader was not closed by its owner) sees EOF or the error. It
    // resumes now and may drop the last handles (a handler that returns), so a handle held here
    // keeps the state alive until it is back; dropping that handle frees it if it was the last.
    ReadOpAccess::unfill(*s->reader_op);
    StreamReader hold(s);
    wake_reader(s);
    return;
  }
  maybe_free(s);
}

}  // namespace concur::asyncio::detail
