// StreamReader: the reads (read, readexactly, readuntil, readline) over a connection's buffer
// (stream_state.hpp), each an awaitable ReadOp that waits for the bytes it needs.
#include <algorithm>
#include <cstring>
#include <span>
#include <string>

#include "asyncio/stream_state.hpp"
#include "asyncio/uv_util.hpp"
#include "concur/asyncio/streams.hpp"

namespace concur::asyncio {

using detail::StreamState;

// ---------------------------------------------------------------------------------------------
// What the connection's callbacks may do to a waiting read

namespace detail {

bool ReadOpAccess::wants_direct_delivery(const StreamReader::ReadOp& op) {
  return op.kind == StreamReader::ReadOp::kRead || op.kind == StreamReader::ReadOp::kInto;
}

std::size_t ReadOpAccess::deliver(StreamReader::ReadOp& op, const char* data, std::size_t size) {
  const std::size_t took = std::min(size, op.n);
  if (op.kind == StreamReader::ReadOp::kInto) {
    if (data != op.into) std::memcpy(op.into, data, took);  // else read in place (on_alloc)
    op.scanned = took;
  } else {
    op.result.assign(data, took);
  }
  op.filled = true;
  return took;
}

std::span<char> ReadOpAccess::read_target(const StreamReader::ReadOp& op) {
  if (op.kind != StreamReader::ReadOp::kInto) return {};
  return {op.into, op.n};
}

bool ReadOpAccess::satisfied(StreamReader::ReadOp& op) {
  return op.satisfied();
}

void ReadOpAccess::unfill(StreamReader::ReadOp& op) {
  op.filled = false;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The read awaitable

StreamReader::ReadOp::ReadOp(StreamState* state, Kind k, std::size_t count, std::string separator,
                             char* into_buffer)
    : s(state), kind(k), n(count), sep(std::move(separator)), into(into_buffer) {}

StreamReader::ReadOp::~ReadOp() {
  if (s && s->reader_op == this) s->reader_op = nullptr;
}

bool StreamReader::ReadOp::satisfied() {
  if (filled || s->eof || s->read_error || s->closed) return true;
  std::size_t have = s->buffered();
  switch (kind) {
    case kRead:
    case kInto:
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
      scanned = have;
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
  what = "StreamReader read";
  object = s;
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
  auto raise_error = [&]() {
    detail::throw_stream_error(s, s->read_error, "asyncio::StreamReader read");
  };
  switch (kind) {
    case kRead:
      if (n == 0) return {};
      if (have > 0) return detail::take(s, std::min(n, have));
      if (s->read_error) raise_error();
      return {};
    case kInto:  // read_into's awaitable resumes through resume_into()
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

std::size_t StreamReader::ReadOp::resume_into() {
  if (s->reader_op == this) s->reader_op = nullptr;
  if (task && task->must_cancel()) {
    if (filled) {
      // The bytes were placed in the caller's buffer for this read; keep them for the next one.
      s->rbuf.insert(s->rpos, into, scanned);
      filled = false;
    }
    task->throw_if_cancel_requested();
  }
  if (filled) return scanned;
  if (n == 0) return 0;
  const std::size_t have = s->buffered();
  if (have > 0) {
    const std::size_t k = std::min(n, have);
    std::memcpy(into, s->rbuf.data() + s->rpos, k);
    detail::discard(s, k);
    return k;
  }
  if (s->read_error)
    detail::throw_stream_error(s, s->read_error, "asyncio::StreamReader read_into");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The handle

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
StreamReader::ReadIntoOp StreamReader::read_into(std::span<char> buffer) {
  return ReadIntoOp(state("read_into"), buffer.data(), buffer.size());
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

}  // namespace concur::asyncio
