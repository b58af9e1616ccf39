// StreamWriter: writes straight to the socket when it takes them, queued otherwise (the queue
// itself is the connection's, stream_state.cpp); drain(), half-close, close and abort.
#include <sys/socket.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "asyncio/stream_state.hpp"
#include "asyncio/tls_stream.hpp"
#include "asyncio/uv_util.hpp"
#include "concur/asyncio/streams.hpp"

namespace concur::asyncio {

using detail::StreamState;

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
}  // namespace

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
}  // namespace detail

void StreamWriter::write(std::string_view data) {
  StreamState* s = state("write");
  if (!detail::writable(s, data.size())) return;
  if (s->tls) {
    detail::tls_write(s, data);
    return;
  }
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
  if (s->tls) {
    detail::tls_write(s, data);
    return;
  }
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
  if (s->write_error) detail::throw_stream_error(s, s->write_error, "asyncio::StreamWriter::drain");
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

bool StreamWriter::can_write_eof() const {
  return !state("can_write_eof")->tls;
}

void StreamWriter::write_eof() {
  StreamState* s = state("write_eof");
  if (s->tls) {
    throw NotImplementedError(
        "asyncio::StreamWriter::write_eof(): TLS has no half-close (Python raises "
        "NotImplementedError too); close() the writer, which sends close_notify");
  }
  if (s->eof_requested || s->closing) return;
  s->eof_requested = true;
  if (!s->write_in_flight && !s->write_error && !s->closed) detail::do_shutdown(s);
}

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

std::optional<TlsInfo> StreamWriter::tls_info() const {
  return detail::tls_info(state("tls_info"));
}

// Not `StartTlsOptions options = {}`: GCC 12 miscompiles that braced default (it holds a
// std::string) when the call is inside a co_await expression, as the README says of braced
// temporaries; made here, outside any coroutine, it is safe.
Task<void> StreamWriter::start_tls(SSLContext context) {
  return start_tls(std::move(context), StartTlsOptions());
}

// Checked at the call, as the other misuses here; the handshake itself is the task's.
Task<void> StreamWriter::start_tls(SSLContext context, StartTlsOptions options) {
  StreamState* s = state("start_tls");
  if (!context) {
    throw std::invalid_argument("asyncio::StreamWriter::start_tls(): the SSLContext is empty");
  }
  if (s->tls)
    throw RuntimeError("asyncio::StreamWriter::start_tls(): the connection is TLS already");
  if (!s->is_tcp) {
    throw RuntimeError(
        "asyncio::StreamWriter::start_tls(): TLS needs a TCP connection, not a pipe");
  }
  if (s->closing || s->closed || s->eof_requested || s->write_error) {
    throw RuntimeError(
        "asyncio::StreamWriter::start_tls(): the connection is closing, half-closed or failed");
  }
  detail::check_handshake_timeout("asyncio::StreamWriter::start_tls",
                                  options.ssl_handshake_timeout);
  return detail::tls_upgrade(*this, s, std::move(context), std::move(options));
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

}  // namespace concur::asyncio
