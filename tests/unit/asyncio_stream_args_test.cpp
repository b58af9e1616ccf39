// Tests of the arguments concur/asyncio/streams.hpp and subprocess.hpp refuse before they open
// anything: a stream limit of 0, which Python's StreamReader refuses with ValueError ("Limit
// cannot be <= 0") and concur with std::invalid_argument naming the fix.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::testing::AsyncioTest;

using StreamArgsTest = AsyncioTest;

TEST_F(StreamArgsTest, OpenConnectionWithAZeroLimitIsInvalidBeforeConnecting) {
  // CPython's test_streams.py (StreamReader(limit=0) -> ValueError), through open_connection.
  // Nothing listens on port 9: the refusal must come before any connection attempt.
  auto main_task = [&]() -> Task<void> {
    EXPECT_THROW_MSG(co_await asyncio::open_connection("127.0.0.1", 9, 0), std::invalid_argument,
                     "asyncio::open_connection(): limit must be > 0");
  };
  run(main_task());
}

TEST_F(StreamArgsTest, StartServerWithAZeroLimitIsInvalidBeforeListening) {
  auto main_task = [&]() -> Task<void> {
    asyncio::ServerOptions options;
    options.limit = 0;
    asyncio::ClientHandler handler = [](asyncio::StreamReader,
                                        asyncio::StreamWriter) -> Task<void> { co_return; };
    std::string error;
    try {
      co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
    } catch (const std::invalid_argument& e) {
      error = e.what();
    }
    EXPECT_TRUE(concur::testing::contains(error, "asyncio::start_server(): limit must be > 0"))
        << error;
    EXPECT_TRUE(concur::testing::contains(error, "leave it out for the default")) << error;
  };
  run(main_task());
}

TEST_F(StreamArgsTest, ASubprocessWithAZeroLimitIsInvalidBeforeSpawning) {
  auto main_task = [&]() -> Task<void> {
    asyncio::SubprocessOptions options;
    options.limit = 0;
    std::vector<std::string> args{"-c", "exit 0"};
    EXPECT_THROW_MSG(co_await asyncio::create_subprocess_exec("/bin/sh", args, options),
                     std::invalid_argument, "limit must be > 0");
  };
  run(main_task());
}

}  // namespace
