// concur/futures.hpp: Python's concurrent.futures.Future, wait() and as_completed(), in C++20.
//
// Future<T>: a handle on the result of work that runs elsewhere (a ThreadPoolExecutor task, a
// ProcessPoolExecutor task, a Promise). Copies share one state, as Python's references share one
// Future object; a default-constructed or moved-from handle has no state.
//
// States (Python's, minus CANCELLED_AND_NOTIFIED: waiters hear of a cancel at once):
//
//   | state     | done() | running() | cancel()              | result()                    |
//   |-----------|--------|-----------|-----------------------|-----------------------------|
//   | pending   | false  | false     | true -> cancelled     | blocks                      |
//   | running   | false  | true      | false                 | blocks                      |
//   | finished  | true   | false     | false                 | the value, or rethrows      |
//   | cancelled | true   | false     | true                  | throws concur::CancelledError|
//
// Thread safety: every member of Future may be called from any thread, on any copy.
// Blocking: result(), exception(), wait() and as_completed() block the calling thread. Called on a
// worker of a ThreadPoolExecutor they run other queued tasks of that pool while they wait, so a
// task may wait on tasks it submitted without deadlocking even a one-worker pool. Timeouts are
// std::chrono durations; zero means "do not wait"; without one, the wait is unbounded.
// Callbacks: add_done_callback(fn) runs fn(future) on the thread that completes the future, or at
// once on the calling thread if it is already done, in the order added. A callback that throws is
// reported on stderr ("concur: exception calling callback for ...") and the others still run.
// Lifetime: the state lives as long as any handle, the task that produces it, or a waiter.
// Errors: a task's own exception is rethrown by result() as its own type (std::exception_ptr);
// concur::CancelledError, concur::TimeoutError and concur::InvalidStateError (a handle without a
// state; setting a promise twice) name the call and the fix.
//
// Example:
//   concur::ThreadPoolExecutor pool(4);
//   concur::Future<int> f = pool.submit([](int x) { return x * x; }, 7);
//   f.add_done_callback([](const concur::Future<int>& done) { log(done.result()); });
//   int v = f.result(std::chrono::seconds(1));   // 49, or TimeoutError after a second
//
// Promise<T> is the producer side, for code that completes futures itself (an event loop, a
// process pool's result thread): get_future(), set_result(v), set_exception(e),
// set_running_or_notify_cancel(). A Promise destroyed unfulfilled completes its future with
// concur::BrokenPromise, so no waiter hangs.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <ranges>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "concur/detail/future_state.hpp"
#include "concur/detail/pull_range.hpp"
#include "concur/errors.hpp"

namespace concur {

inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

template <class T>
class Future;
template <class T>
class Promise;

namespace detail {

[[noreturn]] void throw_no_state(const char* call);
[[noreturn]] void throw_cancelled(const char* call);
[[noreturn]] void throw_timeout(const char* call);

template <class T>
struct FutureAccess;

}  // namespace detail

template <class T>
class Future {
  static_assert(!std::is_reference_v<T>,
                "Future<T&> is not supported: return a value or a pointer");

 public:
  using value_type = T;

  Future() noexcept = default;
  Future(const Future& other) noexcept : state_(other.state_) {
    if (state_) state_->add_ref();
  }
  Future(Future&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Future& operator=(Future other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~Future() {
    if (state_) state_->release();
  }

  // True if this handle has a state (it came from submit(), a Promise, or a copy of one).
  bool valid() const noexcept { return state_ != nullptr; }

  // Cancels a pending future: true if it is cancelled now or was before; false once running or
  // finished. Waiters wake and callbacks run on this thread.
  bool cancel() { return state("cancel")->cancel(); }
  bool cancelled() const { return state("cancelled")->status() == detail::StateBase::kCancelled; }
  bool running() const { return state("running")->status() == detail::StateBase::kRunning; }
  bool done() const { return state("done")->done(); }

  // Blocks until done. Returns the value (a reference into the shared state, valid while any
  // handle lives), or rethrows the task's exception, or throws concur::CancelledError.
  decltype(auto) result() const& { return get("result", std::nullopt); }
  template <class Rep, class Period>
  decltype(auto) result(std::chrono::duration<Rep, Period> timeout) const& {
    return get("result", detail::deadline_after(timeout));
  }
  // On an rvalue handle, moves the value out: `T v = pool.submit(f).result();` works for
  // move-only T. Other copies of this future then see a moved-from value.
  T result() && { return take("result", std::nullopt); }
  template <class Rep, class Period>
  T result(std::chrono::duration<Rep, Period> timeout) && {
    return take("result", detail::deadline_after(timeout));
  }

  // Blocks until done; the task's exception, or nullptr if it returned normally. Throws
  // concur::CancelledError if cancelled, concur::TimeoutError on timeout.
  std::exception_ptr exception() const { return get_exception(std::nullopt); }
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    return get_exception(detail::deadline_after(timeout));
  }

  // Blocks until done, without throwing; returns done(). (Not in Python's API, where
  // concurrent.futures.wait([f]) does this.)
  bool wait() const { return state("wait")->wait(std::nullopt); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return state("wait")->wait(detail::deadline_after(timeout));
  }

  // fn may take `const Future<T>&` (as Python's callbacks take the future) or nothing.
  template <class F>
  requires std::invocable < F&, const Future<T>
  & > || std::invocable<F&> void add_done_callback(F&& fn) {
    state("add_done_callback")
        ->add_callback(std::make_unique<Callback<std::decay_t<F>>>(std::forward<F>(fn)));
  }

  // Handles compare equal when they share a state (Python compares Future objects by identity).
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }

 private:
  friend struct detail::FutureAccess<T>;
  friend class Promise<T>;

  explicit Future(detail::State<T>* adopted) noexcept : state_(adopted) {}

  detail::State<T>* state(const char* call) const {
    if (!state_) detail::throw_no_state(call);
    return state_;
  }

  void wait_done(const char* call, const detail::Deadline& deadline) const {
    if (!state(call)->wait(deadline)) detail::throw_timeout(call);
    if (state_->status() == detail::StateBase::kCancelled) detail::throw_cancelled(call);
    if (state_->exception()) std::rethrow_exception(state_->exception());
  }

  decltype(auto) get(const char* call, const detail::Deadline& deadline) const {
    wait_done(call, deadline);
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      return static_cast<const T&>(state_->value());
    }
  }

  T take(const char* call, const detail::Deadline& deadline) {
    wait_done(call, deadline);
    if constexpr (!std::is_void_v<T>) return std::move(state_->value());
  }

  std::exception_ptr get_exception(const detail::Deadline& deadline) const {
    if (!state("exception")->wait(deadline)) detail::throw_timeout("exception");
    if (state_->status() == detail::StateBase::kCancelled) detail::throw_cancelled("exception");
    return state_->exception();
  }

  template <class F>
  class Callback final : public detail::CallbackNode {
   public:
    explicit Callback(F fn) : fn_(std::move(fn)) {}
    void run(detail::StateBase& base) noexcept override {
      try {
        if constexpr (std::invocable<F&, const Future<T>&>) {
          auto* typed = static_cast<detail::State<T>*>(&base);
          typed->add_ref();
          const Future<T> handle(typed);
          fn_(handle);
        } else {
          fn_();
        }
      } catch (...) {
        detail::report_callback_exception(base, std::current_exception());
      }
      delete this;
    }

   private:
    F fn_;
  };

  detail::State<T>* state_ = nullptr;
};

template <class T>
class Promise {
 public:
  Promise() : state_(new detail::State<T>()) {}
  Promise(Promise&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Promise& operator=(Promise&& other) noexcept {
    if (this != &other) {
      abandon();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { abandon(); }

  // A handle on this promise's future; may be called any number of times.
  Future<T> get_future() const {
    check("get_future");
    state_->add_ref();
    return Future<T>(state_);
  }

  // Python's set_running_or_notify_cancel(): false if the future was cancelled (then do not run
  // the work); otherwise marks it running, after which cancel() fails. Throws InvalidStateError
  // if called twice or after a result was set.
  bool set_running_or_notify_cancel();

  // Completes the future. Throws concur::InvalidStateError if it is already done (set before,
  // or cancelled). Not safe to call concurrently on one Promise: a promise has one producer.
  template <class... A>
  requires(std::is_void_v<T> && sizeof...(A) == 0) ||
      std::constructible_from<T, A...> void set_result(A&&... value) {
    check_pending("set_result");
    if constexpr (!std::is_void_v<T>) state_->emplace_value(std::forward<A>(value)...);
    if (!state_->finish()) throw_done("set_result");
  }
  void set_exception(std::exception_ptr error) {
    if (!error) {
      throw InvalidStateError(
          "concur::Promise::set_exception(): the exception_ptr is null; pass "
          "std::current_exception() or std::make_exception_ptr(e)");
    }
    check_pending("set_exception");
    state_->set_exception_ptr(std::move(error));
    if (!state_->finish()) throw_done("set_exception");
  }
  template <class E>
  requires(!std::same_as<std::decay_t<E>, std::exception_ptr>) void set_exception(E&& error) {
    set_exception(std::make_exception_ptr(std::forward<E>(error)));
  }

 private:
  void check(const char* call) const {
    if (!state_) detail::throw_no_state(call);
  }
  void check_pending(const char* call) const {
    check(call);
    if (state_->done()) throw_done(call);
  }
  [[noreturn]] void throw_done(const char* call) const;
  void abandon() noexcept;

  detail::State<T>* state_ = nullptr;
};

namespace detail {

[[noreturn]] void throw_promise_done(const char* call, bool cancelled);
[[noreturn]] void throw_promise_not_pending();
std::exception_ptr broken_promise_error();

template <class T>
struct FutureAccess {
  static StateBase* state(const Future<T>& f) noexcept { return f.state_; }
  static Future<T> adopt(StateBase* s) noexcept { return Future<T>(static_cast<State<T>*>(s)); }
};

template <class R>
concept FutureRange = std::ranges::input_range<R> && requires {
  typename std::ranges::range_value_t<R>::value_type;
} && std::same_as<std::ranges::range_value_t<R>,
                  Future<typename std::ranges::range_value_t<R>::value_type>>;

template <class R>
using FutureValueOf = typename std::ranges::range_value_t<R>::value_type;

// The distinct, valid states of a range of futures, in first-seen order.
template <class T, class R>
std::vector<Future<T>> distinct_futures(R&& futures, const char* call) {
  std::vector<Future<T>> out;
  std::unordered_set<const void*> seen;
  for (const Future<T>& f : futures) {
    StateBase* s = FutureAccess<T>::state(f);
    if (!s) throw_no_state(call);
    if (seen.insert(s).second) out.push_back(f);
  }
  return out;
}

template <class T>
std::vector<StateBase*> states_of(const std::vector<Future<T>>& futures) {
  std::vector<StateBase*> states;
  states.reserve(futures.size());
  for (const Future<T>& f : futures) states.push_back(FutureAccess<T>::state(f));
  return states;
}

}  // namespace detail

template <class T>
bool Promise<T>::set_running_or_notify_cancel() {
  check("set_running_or_notify_cancel");
  const auto status = state_->status();
  if (status == detail::StateBase::kCancelled) return false;
  if (status != detail::StateBase::kPending) detail::throw_promise_not_pending();
  return state_->try_start();
}

template <class T>
void Promise<T>::throw_done(const char* call) const {
  detail::throw_promise_done(call, state_->status() == detail::StateBase::kCancelled);
}

template <class T>
void Promise<T>::abandon() noexcept {
  if (!state_) return;
  if (!state_->done()) {
    state_->set_exception_ptr(detail::broken_promise_error());
    state_->finish();
  }
  state_->release();
  state_ = nullptr;
}

// Python's DoneAndNotDoneFutures, with vectors in input order (duplicates removed) for its sets.
template <class T>
struct DoneAndNotDone {
  std::vector<Future<T>> done;
  std::vector<Future<T>> not_done;
};

// concurrent.futures.wait(fs, timeout, return_when): blocks until the futures satisfy
// `return_when` (default ALL_COMPLETED) or the timeout passes, then splits them into done and not
// done. A timeout is not an error here: the not-done list says what was left. FIRST_EXCEPTION
// returns when any future finishes by raising (a cancel is not an exception), or when all are done.
template <detail::FutureRange R>
DoneAndNotDone<detail::FutureValueOf<R>> wait(R&& futures, ReturnWhen return_when = ALL_COMPLETED) {
  return wait(std::forward<R>(futures), std::chrono::hours::max(), return_when);
}

template <detail::FutureRange R, class Rep, class Period>
DoneAndNotDone<detail::FutureValueOf<R>> wait(R&& futures,
                                              std::chrono::duration<Rep, Period> timeout,
                                              ReturnWhen return_when = ALL_COMPLETED) {
  using T = detail::FutureValueOf<R>;
  auto distinct = detail::distinct_futures<T>(std::forward<R>(futures), "wait");
  const auto states = detail::states_of(distinct);
  detail::wait_for_states(states, return_when, detail::deadline_after(timeout));
  DoneAndNotDone<T> split;
  for (Future<T>& f : distinct) (f.done() ? split.done : split.not_done).push_back(std::move(f));
  return split;
}

// concurrent.futures.as_completed(fs, timeout): an input range that yields each distinct future
// once, those already done first, then the others as they finish. Advancing past the timeout
// (measured from the call) throws concur::TimeoutError("N (of M) futures unfinished").
// Yielded futures are released by the range as it goes (it keeps no reference to them).
template <class T>
class AsCompleted : public detail::PullRange<AsCompleted<T>, Future<T>> {
 public:
  AsCompleted(const std::vector<Future<T>>& futures, detail::Deadline deadline)
      : queue_(std::make_unique<detail::CompletionQueue>(detail::states_of(futures), deadline)) {}

  // How many distinct futures the range yields in all.
  std::size_t size() const noexcept { return queue_->total(); }

 private:
  friend class detail::PullRange<AsCompleted<T>, Future<T>>;
  Future<T> current() const { return current_; }
  bool at_end() const { return !current_.valid(); }
  void advance() {
    current_ = Future<T>();
    if (detail::StateBase* s = queue_->next()) current_ = detail::FutureAccess<T>::adopt(s);
  }

  std::unique_ptr<detail::CompletionQueue> queue_;
  Future<T> current_;
};

template <detail::FutureRange R>
AsCompleted<detail::FutureValueOf<R>> as_completed(R&& futures) {
  using T = detail::FutureValueOf<R>;
  return AsCompleted<T>(detail::distinct_futures<T>(std::forward<R>(futures), "as_completed"),
                        std::nullopt);
}

template <detail::FutureRange R, class Rep, class Period>
AsCompleted<detail::FutureValueOf<R>> as_completed(R&& futures,
                                                   std::chrono::duration<Rep, Period> timeout) {
  using T = detail::FutureValueOf<R>;
  const auto deadline = detail::deadline_after(timeout);
  return AsCompleted<T>(detail::distinct_futures<T>(std::forward<R>(futures), "as_completed"),
                        deadline);
}

}  // namespace concur
