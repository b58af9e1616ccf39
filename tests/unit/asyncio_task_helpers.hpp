// Coroutines, types and names shared by the asyncio task tests (asyncio_task_test.cpp,
// asyncio_gather_test.cpp, asyncio_wait_as_completed_test.cpp, asyncio_shield_test.cpp,
// asyncio_timeout_test.cpp, asyncio_wait_for_test.cpp, asyncio_taskgroup_basic_test.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace concur::testing::task_helpers {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::CancelledError;
using concur::ExceptionGroup;
using concur::InvalidStateError;
using concur::ReturnWhen;
using concur::RuntimeError;
using concur::TimeoutError;
using Clock = std::chrono::steady_clock;
using concur::testing::AsyncioTest;
using concur::testing::contains;
using concur::testing::count_in;
using concur::testing::is_a;
using concur::testing::turns;

// Long enough that a test that waits for it to pass has failed; the tests only ever wait for it
// to be interrupted, and check that it was with a generous ratio.
inline constexpr auto kLong = 10s;

struct MyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct OtherError : std::logic_error {
  using std::logic_error::logic_error;
};

// ---------------------------------------------------------------------------------------------
// Coroutines the tests run. Plain functions (not lambdas), so that their frames own copies of
// their arguments.

inline Task<int> value_after(std::chrono::nanoseconds delay, int value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

inline Task<int> fail_after(std::chrono::nanoseconds delay, std::string what) {
  co_await asyncio::sleep(delay);
  throw MyError(what);
}

// Sleeps; counts in *cancels a CancelledError that interrupts it (and re-throws it).
inline Task<void> sleeper(std::chrono::nanoseconds delay, int* cancels) {
  try {
    co_await asyncio::sleep(delay);
  } catch (const CancelledError&) {
    ++*cancels;
    throw;
  }
}

// Catches its cancellation and returns `value` instead.
inline Task<int> swallow_cancel(std::chrono::nanoseconds delay, int value, int* cancels) {
  try {
    co_await asyncio::sleep(delay);
  } catch (const CancelledError&) {
    ++*cancels;
  }
  co_return value;
}

// Returns `value` once `release` is set (the tests choose the order of completion with these,
// not with timers, so that a loaded machine cannot reorder them).
inline Task<int> value_when(asyncio::Event* release, int value) {
  co_await release->wait();
  co_return value;
}

// Sets the events one by one, letting the loop run a few turns after each.
inline Task<void> release_in_order(std::vector<asyncio::Event*> events) {
  for (asyncio::Event* e : events) {
    co_await asyncio::sleep(0ns);
    co_await asyncio::sleep(0ns);
    e->set();
  }
}

template <class T>
inline Task<T> await_task(Task<T> task) {
  co_return co_await task;
}

inline Task<void> nap(std::chrono::nanoseconds delay) {
  co_await asyncio::sleep(delay);
}

inline Task<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

template <class T, class... Ts>
std::vector<Task<T>> vec(Task<T> first, Ts... rest) {
  std::vector<Task<T>> out;
  out.push_back(std::move(first));
  (out.push_back(std::move(rest)), ...);
  return out;
}

}  // namespace concur::testing::task_helpers
