// concur/detail/remote_calls.hpp: the caller's side of an executor whose tasks run in other
// processes (ProcessPoolExecutor, MpiPoolExecutor): both encode a call the same way (registry.hpp),
// both get back one encoded result per input, and both complete futures and run map() alike; only
// how the bytes travel differs. Internal to concur.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concur/futures.hpp"
#include "concur/multiprocessing/registry.hpp"

namespace concur::detail::remote {

// Completes a future from the encoded results of its inputs (one for submit, a chunk's for map).
// Runs on the pool's own thread; a result that does not decode fails the future, never the pool.
using Completer = void (*)(StateBase*, const std::vector<std::string_view>& results);

template <class T>
void complete_one(StateBase* base, const std::vector<std::string_view>& results) {
  auto* state = static_cast<State<T>*>(base);
  try {
    if constexpr (std::is_void_v<T>) {
      (void)results;
    } else {
      state->emplace_value(multiprocessing::deserialize<T>(results.at(0)));
    }
  } catch (...) {
    state->set_exception_ptr(std::current_exception());
  }
  state->finish();
}

template <class T>
void complete_chunk(StateBase* base, const std::vector<std::string_view>& results) {
  auto* state = static_cast<State<std::vector<T>>*>(base);
  try {
    std::vector<T> values;
    values.reserve(results.size());
    for (const std::string_view r : results) {
      if constexpr (std::is_same_v<T, std::monostate>) {
        values.emplace_back();
      } else {
        values.push_back(multiprocessing::deserialize<T>(r));
      }
    }
    state->emplace_value(std::move(values));
  } catch (...) {
    state->set_exception_ptr(std::current_exception());
  }
  state->finish();
}

// A future's state with two references: the Future returned to the caller, and the pool's,
// which it drops when it completes the state.
template <class T>
std::pair<State<T>*, Future<T>> new_state() {
  auto* state = new State<T>();
  Future<T> future = FutureAccess<T>::adopt(state);
  state->add_ref();
  return {state, std::move(future)};
}

// What map() yields for fn: its result, std::monostate for a void function.
template <class R>
using map_value_t = std::conditional_t<std::is_void_v<R>, std::monostate, std::remove_cvref_t<R>>;

// Encodes one input as fn's argument tuple (unpacking a tuple input when fn wants that).
template <class R, class... P, class Item>
std::string encode_item(R (*fn)(P...), Item&& item) {
  if constexpr (std::is_invocable_v<R (*)(P...), Item&&>) {
    return multiprocessing::make_call(fn, std::forward<Item>(item)).args;
  } else {
    return std::apply(
        [&](auto&&... a) {
          return multiprocessing::make_call(fn, std::forward<decltype(a)>(a)...).args;
        },
        std::forward<Item>(item));
  }
}

inline void check_chunksize(std::size_t chunksize, const char* pool) {
  if (chunksize == 0) {
    throw std::invalid_argument(std::string("concur::") + pool + "::map(): chunksize must be >= 1");
  }
}

// How many chunks map() submits ahead: the caller's buffersize, else all of a sized range
// (0 = no limit), else four per worker (an unbounded range must not be drained at once).
template <class View>
std::size_t map_window(const std::optional<std::size_t>& buffersize, std::size_t max_workers,
                       const char* pool) {
  if (buffersize) {
    if (*buffersize == 0) {
      throw std::invalid_argument(std::string("concur::") + pool +
                                  "::map(): buffersize must be >= 1");
    }
    return *buffersize;
  }
  return std::ranges::sized_range<View> ? 0 : 4 * max_workers;
}

}  // namespace concur::detail::remote
