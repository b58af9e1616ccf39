// Internal: what other parts of the library (subprocess pipes) need of a stream's state.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/streams.hpp"

namespace concur::asyncio::detail {

// A new stream over a uv_pipe_t initialised on `loop` (not yet opened or connected), with no
// handle yet: wrap it in a StreamReader or StreamWriter (or both) at once; the pipe closes when
// the last of them goes.
StreamState* new_pipe_stream(LoopCore& core, uv_loop_t* loop, std::size_t limit);
// The libuv handle, e.g. to pass as a uv_stdio_container_t's stream.
uv_stream_t* stream_handle(StreamState* s);
// Starts reading into the reader's buffer (call once the pipe is open).
void begin_reading(StreamState* s);
// Python's StreamReader(limit=0) ValueError, raised before anything is opened: with a zero limit
// every readline() would fail. `who` names the call.
void check_stream_limit(const char* who, std::size_t limit);
// The same for a TLS handshake's timeout (used only with a context): it must be > 0.
void check_handshake_timeout(const char* who, std::chrono::milliseconds timeout);

}  // namespace concur::asyncio::detail
