// tests/unit/asyncio_fan_out_helpers.hpp: the jobs the bounded fan-out tests run
// (gather_limited, task_group_limited): each records when it starts, ends or is cancelled, and
// how many ran at once.
#pragma once

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/asyncio.hpp"

// The tests take these names with `using namespace concur::testing::fan_out;`.
namespace concur::testing::fan_out {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::Task;
using concur::CancelledError;
inline constexpr auto kLong = 10s;  // must be interrupted

struct Tally {
  int running = 0;
  int most = 0;  // the most running at once
  std::vector<int> started;
  std::vector<int> finished;
  std::vector<int> cancelled;
};

// Sleeps `nap`, then returns i * 10 (or throws std::runtime_error if `fail`).
inline Task<int> job(Tally* t, int i, std::chrono::nanoseconds nap, bool fail = false) {
  t->started.push_back(i);
  ++t->running;
  t->most = std::max(t->most, t->running);
  try {
    co_await asyncio::sleep(nap);
  } catch (const CancelledError&) {
    --t->running;
    t->cancelled.push_back(i);
    throw;
  }
  --t->running;
  if (fail) throw std::runtime_error("job " + std::to_string(i) + " failed");
  t->finished.push_back(i);
  co_return i * 10;
}

}  // namespace concur::testing::fan_out
