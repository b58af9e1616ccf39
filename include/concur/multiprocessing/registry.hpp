// concur/multiprocessing/registry.hpp: the functions another process may be asked to run.
//
// A task crosses a process boundary as the registered name of a function plus its encoded
// arguments. A process runs only functions registered in it (which, in a child started from the
// same program, are the parent's), so nothing it receives can make it run other code: a Python
// pickle can (its __reduce__ names any callable), a concur message cannot.
//
// Register at namespace scope, in any .cpp file of the program:
//   int square(int x) { return x * x; }
//   CONCUR_REGISTER(square);
// Then pass the function itself: `pool.submit(square, 7)`, `Process(square, 7)`.
// Arguments are converted to the function's parameter types (decayed) and encoded with cereal
// (concur/multiprocessing/serialization.hpp); results come back the same way.
//
// Errors: submitting a function that is not registered throws std::invalid_argument naming the
// fix; registering two different functions under one name aborts at start-up with a message.
// A call whose name is unknown in the receiving process, or whose signature differs (two builds
// of a program), fails with concur::RemoteError rather than running anything.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "concur/multiprocessing/byte_buffer.hpp"
#include "concur/multiprocessing/serialization.hpp"

namespace concur::multiprocessing {

// What is sent to run fn(args...) elsewhere.
struct Call {
  std::string function;
  std::string signature;
  std::string args;  // the encoded argument tuple

  template <class Archive>
  void serialize(Archive& archive) {
    archive(function, signature, args);
  }
};

namespace detail {

template <class F>
struct FunctionTraits;
template <class R, class... A>
struct FunctionTraits<R (*)(A...)> {
  using Result = R;
  using Args = std::tuple<std::decay_t<A>...>;
};
template <class R, class... A>
struct FunctionTraits<R (*)(A...) noexcept> : FunctionTraits<R (*)(A...)> {};

// Decodes the arguments from `encoded_args`, runs the function, encodes its result (None for
// void). A task's own exception propagates to the caller of the invoker. `owner`, if given, is the
// buffer that holds the encoded arguments: it is released once they are decoded, so a big argument
// is not held twice while the function runs. (The arguments may also lie in memory the caller does
// not own, a shared-memory ring: then there is no owner.)
using Invoker = std::string (*)(std::string_view encoded_args, std::string* owner);

template <auto F>
std::string invoke(std::string_view encoded_args, std::string* owner) {
  using Traits = FunctionTraits<decltype(F)>;
  auto args = deserialize<typename Traits::Args>(encoded_args);
  if (owner) std::string().swap(*owner);
  // The function runs with no out-of-band outbox or inbox current (byte_buffer.hpp): only the
  // transport's own decoding and encoding around it use them.
  if constexpr (std::is_void_v<typename Traits::Result>) {
    {
      const OutOfBandPause pause;
      std::apply(F, std::move(args));
    }
    return multiprocessing::serialize(None{});
  } else {
    auto&& result = [&]() -> decltype(auto) {
      const OutOfBandPause pause;
      return std::apply(F, std::move(args));
    }();
    return multiprocessing::serialize(result);
  }
}

struct Registration {
  std::string name;
  std::string signature;
  Invoker invoke = nullptr;
};

bool add_registration(std::uintptr_t key, std::string_view name, std::string signature,
                      Invoker invoke);
const Registration* find_registration(std::uintptr_t key);
const Registration* find_registration(std::string_view name);

// An argument as the parameter type P: itself if it is a P, else converted (a temporary that
// lives until the end of the full expression that encodes it).
template <class P, class A>
decltype(auto) as_param(A&& a) {
  if constexpr (std::is_same_v<std::decay_t<A>, P>) {
    return static_cast<const P&>(a);
  } else {
    return P(std::forward<A>(a));
  }
}

template <class F>
std::uintptr_t key_of(F fn) {
  return reinterpret_cast<std::uintptr_t>(fn);
}

}  // namespace detail

template <auto F>
bool register_function(std::string_view name) {
  static_assert(
      std::is_pointer_v<decltype(F)> && std::is_function_v<std::remove_pointer_t<decltype(F)>>,
      "CONCUR_REGISTER takes a function (not a lambda or a member function)");
  return detail::add_registration(detail::key_of(F), name, detail::type_name(typeid(decltype(F))),
                                  &detail::invoke<F>);
}

// Is fn registered in this program?
template <class R, class... A>
bool is_registered(R (*fn)(A...)) {
  return detail::find_registration(detail::key_of(fn)) != nullptr;
}

// The Call for fn(args...). Throws std::invalid_argument if fn is not registered.
template <class R, class... P, class... A>
Call make_call(R (*fn)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "wrong number of arguments for the function");
  const detail::Registration* reg = detail::find_registration(detail::key_of(fn));
  if (!reg) {
    throw std::invalid_argument(
        "concur::multiprocessing: this function is not registered, so no other process may run "
        "it; add CONCUR_REGISTER(function_name); at namespace scope in the file that defines it");
  }
  // Encoded as the parameters' types: an argument of another type is converted first, one of
  // the same type is encoded where it is (so move-only arguments need not be copied).
  return Call{reg->name, reg->signature,
              multiprocessing::serialize(std::tuple<const std::decay_t<P>&...>(
                  detail::as_param<std::decay_t<P>>(std::forward<A>(args))...))};
}

// The Call for fn with no arguments encoded yet (its name and signature), or throws as make_call.
template <class R, class... P>
Call make_call_without_args(R (*fn)(P...)) {
  const detail::Registration* reg = detail::find_registration(detail::key_of(fn));
  if (!reg) {
    throw std::invalid_argument(
        "concur::multiprocessing: this function is not registered, so no other process may run "
        "it; add CONCUR_REGISTER(function_name); at namespace scope in the file that defines it");
  }
  return Call{reg->name, reg->signature, {}};
}

// The result type of a call of fn, as it comes back from another process.
template <class F>
using remote_result_t = typename detail::FunctionTraits<std::decay_t<F>>::Result;

}  // namespace concur::multiprocessing

#define CONCUR_REGISTER_CAT_INNER_(a, b) a##b
#define CONCUR_REGISTER_CAT_(a, b) CONCUR_REGISTER_CAT_INNER_(a, b)
// Registers a function (by the name as written) so that other processes may run it.
#define CONCUR_REGISTER(fn)                                                                  \
  [[maybe_unused]] static const bool CONCUR_REGISTER_CAT_(concur_registered_, __COUNTER__) = \
      ::concur::multiprocessing::register_function<&fn>(#fn)
