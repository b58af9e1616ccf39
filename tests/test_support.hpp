// tests/test_support.hpp: helpers shared by concur's tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

// Expects `statement` to throw `type` whose what() contains `substring`.
#define EXPECT_THROW_MSG(statement, type, substring)                                   \
  do {                                                                                 \
    try {                                                                              \
      statement;                                                                       \
      ADD_FAILURE() << "expected " #type " from: " #statement;                         \
    } catch (const type& caught_) {                                                    \
      EXPECT_NE(std::string(caught_.what()).find(substring), std::string::npos)        \
          << "message was: " << caught_.what();                                        \
    } catch (const std::exception& other_) {                                           \
      ADD_FAILURE() << "expected " #type ", got another exception: " << other_.what(); \
    }                                                                                  \
  } while (false)

namespace concur::testing {

// Sanitizers slow code down 5-20x; stress sizes shrink under them so CI stays within its time.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr int kStressScale = 5;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr int kStressScale = 5;
#else
inline constexpr int kStressScale = 1;
#endif
#else
inline constexpr int kStressScale = 1;
#endif

// ThreadSanitizer runs a thread of its own in each process, which concur's fork guard counts as
// "another thread running" (it refuses StartMethod::fork then): a few fork cases skip under it.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kUnderThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kUnderThreadSanitizer = true;
#else
inline constexpr bool kUnderThreadSanitizer = false;
#endif
#else
inline constexpr bool kUnderThreadSanitizer = false;
#endif

// Polls `predicate` until true or a generous bound passes (never asserted on as a time).
template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds bound = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Captures what is written to stderr (fd 2) while alive.
class CapturedStderr {
 public:
  CapturedStderr() { ::testing::internal::CaptureStderr(); }
  std::string text() {
    if (!done_) {
      text_ = ::testing::internal::GetCapturedStderr();
      done_ = true;
    }
    return text_;
  }
  ~CapturedStderr() { text(); }

 private:
  bool done_ = false;
  std::string text_;
};

}  // namespace concur::testing

namespace concur::testing {

// Python's threading.Event, for tests.
class Event {
 public:
  // Notifies under the lock, so that a waiter that returns (and may destroy the Event) cannot do
  // so before set() has finished touching it.
  void set() {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool is_set() {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return set_; });
  }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

}  // namespace concur::testing
