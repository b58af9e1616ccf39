// Internal: libuv glue shared by streams, datagrams and subprocesses: errors as concur's
// exceptions, socket addresses, and the wait for one libuv request.
#pragma once

#include <uv.h>

#include <coroutine>
#include <string>

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/streams.hpp"
#include "concur/asyncio/task.hpp"
#include "concur/errors.hpp"

namespace concur::asyncio::detail {

// Throws the concur exception for a libuv error code (negative errno): ConnectionResetError for
// UV_ECONNRESET, ConnectionRefusedError, BrokenPipeError, ConnectionError for the other
// connection failures, OSError otherwise. `what` names the call.
[[noreturn]] void throw_uv(int err, const std::string& what);
std::exception_ptr uv_error(int err, const std::string& what);

SocketAddress to_address(const sockaddr* sa);
// Parses a numeric address; false if `host` is not one.
bool parse_numeric(const std::string& host, std::uint16_t port, sockaddr_storage* out);

LoopCore& current_core(const char* who);

// Sets SIGPIPE to SIG_IGN if it still has the default action, as Python does at startup, so that
// writing to a peer or child that left throws BrokenPipeError instead of killing the program.
// Every EventLoop does this when it is made; a handler the program installed is left alone.
void ignore_default_sigpipe();
uv_loop_t* current_uv_loop(const char* who);

// The wait of a task for one libuv request that completes through a callback. The request and
// this record live in one heap block. The coroutine owns the block (through RequestOwner) unless
// it is cancelled while the request is still pending: then it detaches, asks libuv to cancel the
// request (on_detach: uv_cancel, uv_close...), and the callback frees the block. So a callback
// never touches a dead frame and nothing leaks either way.
struct RequestWait : Suspension {
  int status = 0;
  bool finished = false;
  bool detached = false;
  bool cancel_woken = false;
  void (*on_detach)(RequestWait*) = nullptr;
  void (*free_block)(RequestWait*) = nullptr;

  // From the libuv callback, with the request's status.
  void complete(int st) {
    status = st;
    finished = true;
    if (detached) {
      free_block(this);
      return;
    }
    if (task && !cancel_woken) task->loop_core()->resume_now(this);
  }
};

struct RequestOwner {
  RequestWait* w;
  explicit RequestOwner(RequestWait* wait) : w(wait) {}
  RequestOwner(const RequestOwner&) = delete;
  RequestOwner& operator=(const RequestOwner&) = delete;
  ~RequestOwner() {
    if (w && !w->detached) w->free_block(w);
  }
};

// co_await AwaitRequest{w}: returns once the request finished; CancelledError if the task is
// cancelled first (the request is then detached, see RequestWait).
struct AwaitRequest {
  RequestWait* w;
  bool await_ready() const noexcept { return w->finished; }
  bool await_suspend(std::coroutine_handle<> h) {
    LoopCore& core = current_core("asyncio");
    TaskBase* me = core.current_task();
    if (!me) throw RuntimeError("asyncio: network calls must be awaited inside a task");
    w->task = me;
    if (me->must_cancel()) return false;
    w->handle = h;
    w->cancel = &on_cancel;
    me->set_waiting(w);
    return true;
  }
  void await_resume() {
    if (!w->task || !w->task->must_cancel()) return;
    if (!w->finished) {
      w->detached = true;
      if (w->on_detach) w->on_detach(w);
    }
    w->task->throw_if_cancel_requested();
  }
  static void on_cancel(Suspension* s) {
    static_cast<RequestWait*>(s)->cancel_woken = true;
    s->task->set_must_cancel();
    s->task->loop_core()->wake(s);
  }
};

}  // namespace concur::asyncio::detail
