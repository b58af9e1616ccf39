// Internal to concur: the lazy, ordered result range that Executor::map() returns.
// Users read the contract at ThreadPoolExecutor::map() in concur/thread_pool.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "concur/detail/pull_range.hpp"
#include "concur/futures.hpp"

namespace concur {

// Options of Executor::map().
struct MapOptions {
  // Measured from the call to map(); reaching an item after it throws concur::TimeoutError.
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;
  // How many inputs are submitted ahead of the one being read (Python 3.14's buffersize).
  // Unset: all of a sized range at once (Python's default), 4 x max_workers for an unsized one
  // (which may be endless).
  std::optional<std::size_t> buffersize = std::nullopt;
};

namespace detail {

// Calls fn(x), or std::apply(fn, x) when x is a tuple that fn takes unpacked (Python's
// map(fn, xs, ys) is map(fn, zip(xs, ys)) here).
template <class F, class X>
decltype(auto) call_with(F& fn, X&& x) {
  if constexpr (std::is_invocable_v<F&, X&&>) {
    return std::invoke(fn, std::forward<X>(x));
  } else {
    return std::apply(fn, std::forward<X>(x));
  }
}

template <class F, class X>
using call_result_t =
    std::remove_cvref_t<decltype(call_with(std::declval<F&>(), std::declval<X>()))>;

// R: the task result type. View: the input view. SubmitOne: (input element) -> Future<R>.
template <class R, class View, class SubmitOne>
class MapResult : public PullRange<MapResult<R, View, SubmitOne>,
                                   std::conditional_t<std::is_void_v<R>, std::monostate, R>&> {
 public:
  using value_type = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

  MapResult(View view, SubmitOne submit_one, Deadline deadline, std::size_t window)
      : view_(std::move(view)),
        submit_one_(std::move(submit_one)),
        deadline_(deadline),
        window_(window),
        next_input_(std::ranges::begin(view_)) {
    // Submitted now, not on first iteration, as Python's map does: the work starts even if the
    // results are never read.
    fill(window_ == 0 ? static_cast<std::size_t>(-1) : window_);
  }

  MapResult(const MapResult&) = delete;
  MapResult& operator=(const MapResult&) = delete;

  // As Python's generator: once reading has begun, leaving early cancels what has not started.
  ~MapResult() {
    if (this->started()) cancel_pending();
  }

 private:
  friend class PullRange<MapResult, value_type&>;
  value_type& current() { return *current_; }
  bool at_end() const { return !current_.has_value(); }

  void fill(std::size_t up_to) {
    while (!inputs_done_ && pending_.size() < up_to) {
      if (next_input_ == std::ranges::end(view_)) {
        inputs_done_ = true;
        break;
      }
      pending_.push_back(submit_one_(*next_input_));
      ++next_input_;
    }
  }

  void advance() {
    current_.reset();
    if (pending_.empty()) return;
    try {
      // Keep the window full while we wait on its oldest item.
      if (window_ != 0) fill(window_ + 1);
      Future<R> front = std::move(pending_.front());
      pending_.pop_front();
      try {
        if constexpr (std::is_void_v<R>) {
          take(std::move(front));
          current_.emplace();
        } else {
          current_.emplace(take(std::move(front)));
        }
      } catch (...) {
        front.cancel();  // a timed-out item is cancelled, as Python 3.13+ does
        throw;
      }
    } catch (...) {
      cancel_pending();
      throw;
    }
  }

  R take(Future<R>&& front) {
    if (deadline_) {
      return std::move(front).result(std::max(*deadline_ - Clock::now(), Clock::duration::zero()));
    }
    return std::move(front).result();
  }

  void cancel_pending() noexcept {
    for (Future<R>& f : pending_) f.cancel();
    pending_.clear();
    inputs_done_ = true;
  }

  View view_;
  SubmitOne submit_one_;
  Deadline deadline_;
  std::size_t window_;  // 0: everything was submitted at construction
  std::ranges::iterator_t<View> next_input_;
  std::deque<Future<R>> pending_;
  std::optional<value_type> current_;
  bool inputs_done_ = false;
};

// Makes the MapResult for executor.map(fn, inputs, options); `submit(fn, x)` submits one call.
template <class Submit, class F, class Range>
auto make_map_result(Submit submit, F&& fn, Range&& inputs, const MapOptions& options,
                     std::size_t default_window) {
  using View = std::views::all_t<Range>;
  using Element = std::ranges::range_reference_t<View>;
  using Fn = std::decay_t<F>;
  using R = call_result_t<Fn, Element>;

  std::size_t window = 0;
  if (options.buffersize) {
    if (*options.buffersize == 0) {
      throw std::invalid_argument("concur::Executor::map(): buffersize must be at least 1");
    }
    window = *options.buffersize;
  } else if constexpr (!std::ranges::sized_range<View>) {
    window = default_window;
  }
  const Deadline deadline =
      options.timeout ? deadline_after(*options.timeout) : Deadline(std::nullopt);

  // A small, trivially copyable callable (a function pointer, a lambda capturing little) is
  // copied into every task; anything else is shared, so a heavy closure is not copied per item.
  if constexpr (std::is_trivially_copyable_v<Fn> && sizeof(Fn) <= 64) {
    auto submit_one = [submit, fn = Fn(std::forward<F>(fn))](auto&& x) {
      return submit([fn](auto&& item) mutable -> R { return call_with(fn, std::move(item)); },
                    std::remove_cvref_t<decltype(x)>(std::forward<decltype(x)>(x)));
    };
    return MapResult<R, View, decltype(submit_one)>(std::views::all(std::forward<Range>(inputs)),
                                                    std::move(submit_one), deadline, window);
  } else {
    auto shared = std::make_shared<Fn>(std::forward<F>(fn));
    auto submit_one = [submit, shared](auto&& x) {
      return submit([shared](auto&& item) -> R { return call_with(*shared, std::move(item)); },
                    std::remove_cvref_t<decltype(x)>(std::forward<decltype(x)>(x)));
    };
    return MapResult<R, View, decltype(submit_one)>(std::views::all(std::forward<Range>(inputs)),
                                                    std::move(submit_one), deadline, window);
  }
}

}  // namespace detail
}  // namespace concur
