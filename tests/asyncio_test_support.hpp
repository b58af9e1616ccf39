// tests/asyncio_test_support.hpp: the fixture the asyncio unit and integration tests share. Each
// test runs on its own EventLoop; at the end the loop is closed, every coroutine frame made during
// the test must be gone, and nothing may have reached the loop's exception handler unless the test
// consumed it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <concur/asyncio.hpp>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace concur::testing {

// "message | what()" of what the exception handler was told.
inline std::string describe(const asyncio::ExceptionContext& context) {
  std::string text = context.message;
  if (context.exception) {
    try {
      std::rethrow_exception(context.exception);
    } catch (const std::exception& e) {
      text += std::string(" | ") + e.what();
    } catch (...) {
      text += " | (unknown exception)";
    }
  }
  return text;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class AsyncioTest : public ::testing::Test {
 protected:
  AsyncioTest() { record_reports(); }
  void TearDown() override {
    loop.close();
    EXPECT_EQ(asyncio::detail::live_frames(), frames_before_) << "coroutine frames leaked";
    for (const std::string& r : reports) ADD_FAILURE() << "unexpected report: " << r;
  }
  // Runs `task` to its end. With a guard set (the integration tests, over real sockets and
  // processes, set one), a run still going after it has hung: it is cancelled and fails with
  // TimeoutError instead of hanging until CTest's timeout.
  template <class T>
  T run(asyncio::Task<T> task) {
    if (run_guard) return loop.run_until_complete(asyncio::wait_for(std::move(task), *run_guard));
    return loop.run_until_complete(std::move(task));
  }
  // (Re)installs the handler that records reports, for a test that installed its own.
  void record_reports() {
    loop.set_exception_handler(
        [this](const asyncio::ExceptionContext& context) { reports.push_back(describe(context)); });
  }
  // Returns (and forgets) what was reported, for a test that provoked a report.
  std::vector<std::string> take_reports() { return std::exchange(reports, {}); }

  std::optional<std::chrono::nanoseconds> run_guard;
  std::int64_t frames_before_ = asyncio::detail::live_frames();
  std::vector<std::string> reports;
  asyncio::EventLoop loop;
};

// Lets the other ready tasks run `n` times.
inline asyncio::Task<void> turns(int n) {
  for (int i = 0; i < n; ++i) co_await asyncio::sleep(std::chrono::nanoseconds(0));
}

// Rethrows `e` and tells whether it is an E (false for no exception).
template <class E>
bool is_a(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

// How many of a group's exceptions are an E.
template <class E>
int count_in(const concur::ExceptionGroup& group) {
  int n = 0;
  for (const std::exception_ptr& e : group.exceptions()) n += is_a<E>(e) ? 1 : 0;
  return n;
}

}  // namespace concur::testing
