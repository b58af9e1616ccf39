// Tests of concur/gil.hpp: mutual exclusion, CPython's drop-request protocol and forced switching
// (driven by a ManualGilClock where timing would otherwise decide), the fifo and io_priority
// policies, misuse errors, hooks, stats, the timeline, timed acquire, thread exit and fork.
#include "concur/gil.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using concur::GilEvent;
using concur::GilEventInfo;
using concur::GilGuard;
using concur::GilPolicy;
using concur::GilRelease;
using concur::InterpreterLock;
using concur::ManualGilClock;
using concur::testing::eventually;
using concur::testing::kStressScale;

// A holder that runs "bytecode": checkpoint() in a loop until told to stop.
void run_bytecode(InterpreterLock& gil, const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) gil.checkpoint();
}

TEST(InterpreterLock, ExcludesMutuallyANonAtomicCounterStaysExact) {
  for (GilPolicy policy : {GilPolicy::cpython, GilPolicy::fifo, GilPolicy::io_priority}) {
    InterpreterLock gil({.policy = policy, .switch_interval = 100us});
    long counter = 0;  // deliberately not atomic: the lock is what protects it
    const int per_thread = 20'000 / kStressScale;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        GilGuard hold(gil);
        for (int i = 0; i < per_thread; ++i) {
          ++counter;
          gil.checkpoint();
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(counter, 4L * per_thread);
  }
}

TEST(InterpreterLock, MisuseIsAnErrorThatNamesTheFix) {
  InterpreterLock gil;
  EXPECT_THROW_MSG(gil.release(), concur::RuntimeError, "does not hold the lock");
  gil.acquire();
  EXPECT_TRUE(gil.held_by_current_thread());
  EXPECT_THROW_MSG(gil.acquire(), concur::RuntimeError, "already holds the lock");
  std::thread other([&] {
    EXPECT_FALSE(gil.held_by_current_thread());
    EXPECT_THROW(gil.release(), concur::RuntimeError);
  });
  other.join();
  gil.release();
  EXPECT_FALSE(gil.held_by_current_thread());
  EXPECT_THROW_MSG(InterpreterLock({.switch_interval = 0ns}), std::invalid_argument,
                   "must be positive");
  EXPECT_THROW(gil.set_switch_interval(-1ms), std::invalid_argument);
}

TEST(InterpreterLock, SwitchIntervalIsSettable) {
  InterpreterLock gil;
  EXPECT_EQ(gil.switch_interval(), 5ms);  // CPython's default
  gil.set_switch_interval(1ms);
  EXPECT_EQ(gil.switch_interval(), 1ms);
}

TEST(InterpreterLock, AWaiterAsksForTheLockOnlyAfterAnIntervalThenGetsIt) {
  ManualGilClock clock;
  InterpreterLock gil({.switch_interval = 5ms, .clock = &clock});
  std::atomic<bool> b_has_it{false};
  gil.acquire();
  std::thread b([&] {
    GilGuard hold(gil);
    b_has_it = true;
  });
  ASSERT_TRUE(eventually([&] { return gil.stats().waiters == 1; }));
  // Less than an interval: the waiter must not ask yet; the holder keeps running.
  clock.advance(4ms);
  for (int i = 0; i < 10'000; ++i) gil.checkpoint();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(gil.stats().drop_requests, 0u);
  EXPECT_FALSE(b_has_it.load());
  // A full interval since it started waiting: it asks, and our next checkpoint hands over.
  clock.advance(2ms);
  ASSERT_TRUE(eventually([&] { return gil.stats().drop_requests == 1; }));
  // We still hold it; this checkpoint drops it and (forced switching) returns only after b has
  // had it; b releases at once, so we get it back.
  gil.checkpoint();
  EXPECT_TRUE(b_has_it.load());
  EXPECT_TRUE(gil.held_by_current_thread());
  b.join();
  gil.release();
  const auto s = gil.stats();
  EXPECT_EQ(s.forced_switches, 1u);
  EXPECT_GE(s.switches, 3u);
}

TEST(InterpreterLock, CpythonForcedDropperNeverRetakesBeforeAnotherThreadHadIt) {
  InterpreterLock gil({.policy = GilPolicy::cpython, .switch_interval = 200us});
  std::mutex mu;
  std::vector<GilEventInfo> log;
  gil.add_event_hook([&](const GilEventInfo& e) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(e);
  });
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      GilGuard hold(gil);
      run_bytecode(gil, stop);
    });
  }
  ASSERT_TRUE(eventually([&] { return gil.stats().forced_switches >= 20; }));
  stop = true;
  for (auto& t : threads) t.join();
  std::lock_guard<std::mutex> lock(mu);
  int checked = 0;
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (log[i].event != GilEvent::released || !log[i].forced) continue;
    for (std::size_t j = i + 1; j < log.size(); ++j) {
      if (log[j].event != GilEvent::acquired) continue;
      EXPECT_NE(log[j].thread, log[i].thread) << "a forced dropper re-took the lock first";
      ++checked;
      break;
    }
  }
  EXPECT_GE(checked, 19);
}

TEST(InterpreterLock, FifoServesEveryWaiterWithinTheWaitersAheadOfIt) {
  ManualGilClock clock;
  constexpr std::chrono::microseconds kInterval = 1ms;
  constexpr int kThreads = 4;
  InterpreterLock gil({.policy = GilPolicy::fifo, .switch_interval = kInterval, .clock = &clock});
  // Counted in hand-overs, not in time: the hooks see every event in order (they run under the
  // lock's mutex), so for each wait we count how many other threads got the lock before the
  // waiter did. A clock-time bound would also count the time a starved holder took to reach its
  // next checkpoint, which depends on how busy the machine is.
  std::map<std::uint64_t, int> overtaken_while_waiting;
  int most_overtaken = 0;
  gil.add_event_hook([&](const GilEventInfo& e) {
    if (e.event == GilEvent::wants_lock) {
      overtaken_while_waiting[e.thread] = 0;
    } else if (e.event == GilEvent::acquired) {
      overtaken_while_waiting.erase(e.thread);
      for (auto& [thread, count] : overtaken_while_waiting) {
        most_overtaken = std::max(most_overtaken, ++count);
      }
    }
  });
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      GilGuard hold(gil);
      run_bytecode(gil, stop);
    });
  }
  ASSERT_TRUE(eventually([&] { return gil.stats().waiters == kThreads - 1; }));
  // Drive time in quarter intervals until every thread has had the lock many times.
  ASSERT_TRUE(eventually([&] {
    clock.advance(kInterval / 4);
    std::this_thread::sleep_for(200us);
    const auto s = gil.stats();
    for (const auto& t : s.threads) {
      if (t.acquisitions < 10) return false;
    }
    return true;
  }));
  stop = true;
  // Let the spinning threads finish: each releases at the end of its GilGuard.
  for (int i = 0; i < 1000 && gil.stats().waiters > 0; ++i) {
    clock.advance(kInterval);
    std::this_thread::sleep_for(100us);
  }
  for (auto& t : threads) t.join();
  // In arrival order, a waiter is overtaken at most by the threads already queued ahead of it:
  // kThreads - 2 (everyone but itself and the holder it queued behind).
  EXPECT_LE(most_overtaken, kThreads - 2);
  EXPECT_GT(gil.stats().switches, 30u);
}

TEST(InterpreterLock, IoPriorityEndsTheConvoyEffect) {
  auto io_round_trips = [](GilPolicy policy) {
    InterpreterLock gil({.policy = policy, .switch_interval = 5ms});
    std::atomic<bool> stop{false};
    std::atomic<bool> started{false};
    std::thread cpu([&] {
      GilGuard hold(gil);
      started = true;
      run_bytecode(gil, stop);
    });
    while (!started) std::this_thread::yield();
    long trips = 0;
    {
      GilGuard hold(gil);
      const auto end = std::chrono::steady_clock::now() + 300ms;
      while (std::chrono::steady_clock::now() < end) {
        {
          GilRelease io(gil);  // a short blocking call
          std::this_thread::sleep_for(std::chrono::microseconds(1));
        }
        ++trips;
      }
    }
    stop = true;
    cpu.join();
    return trips;
  };
  // Quiet, the ratio is in the tens; with other programs taking the two CPUs (a build, ctest -j)
  // 6-8x was seen, as the I/O thread then waits for a CPU, not for the lock. 4x still means the
  // convoy is gone: under it the I/O thread gets about one round trip per switch interval. Up to
  // three tries, because a burst of load from tests beside this one (ctest -j4 with the soak test
  // on two cores) once took the I/O thread's CPU for most of a 300 ms window: a lock with the
  // convoy fails every try, a busy machine does not take every window.
  std::string tries;
  bool ended = false;
  for (int attempt = 0; attempt < 3 && !ended; ++attempt) {
    const long cpython = io_round_trips(GilPolicy::cpython);
    const long io_priority = io_round_trips(GilPolicy::io_priority);
    tries += " cpython " + std::to_string(cpython) + ", io_priority " +
             std::to_string(io_priority) + ";";
    ended = io_priority >= 4 * cpython;
  }
  EXPECT_TRUE(ended) << "no try ended the convoy:" << tries;
}

TEST(InterpreterLock, HooksSeeEveryTransitionInOrder) {
  InterpreterLock gil({.switch_interval = 100us});
  std::mutex mu;
  std::vector<GilEventInfo> log;
  const int id = gil.add_event_hook([&](const GilEventInfo& e) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(e);
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200 / kStressScale; ++i) {
        GilGuard hold(gil);
        for (int k = 0; k < 100; ++k) gil.checkpoint();
      }
    });
  }
  for (auto& t : threads) t.join();
  gil.remove_event_hook(id);
  const std::uint64_t acquisitions = gil.stats().acquisitions;
  gil.acquire();  // the removed hook must not see these
  gil.release();
  std::lock_guard<std::mutex> lock(mu);  // (never held while calling into the lock: hooks lock it)
  std::uint64_t holder = 0;
  std::uint64_t acquired = 0;
  for (const GilEventInfo& e : log) {
    if (e.event == GilEvent::acquired) {
      EXPECT_EQ(holder, 0u) << "acquired by " << e.thread << " while " << holder << " held it";
      holder = e.thread;
      ++acquired;
    } else if (e.event == GilEvent::released) {
      EXPECT_EQ(holder, e.thread);
      holder = 0;
    }
  }
  EXPECT_EQ(holder, 0u);
  EXPECT_EQ(acquired, acquisitions) << "a hook missed a transition, or a removed hook still ran";
}

TEST(InterpreterLock, StatsAddUp) {
  InterpreterLock gil({.switch_interval = 100us, .instrument = true});
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      gil.name_current_thread("worker-" + std::to_string(t));
      for (int i = 0; i < 50; ++i) {
        GilGuard hold(gil);
        for (int k = 0; k < 2000; ++k) gil.checkpoint();
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto s = gil.stats();
  std::uint64_t acquisitions = 0;
  std::uint64_t drops = 0;
  std::uint64_t requests = 0;
  for (const auto& t : s.threads) {
    acquisitions += t.acquisitions;
    drops += t.forced_drops + t.voluntary_drops;
    requests += t.drop_requests;
    EXPECT_EQ(t.voluntary_drops, 50u);
    EXPECT_EQ(t.name.rfind("worker-", 0), 0u);
    EXPECT_GT(t.time_held.count(), 0);
  }
  EXPECT_EQ(s.threads.size(), 3u);
  EXPECT_EQ(acquisitions, s.acquisitions);
  EXPECT_EQ(drops, s.acquisitions);
  EXPECT_EQ(requests, s.drop_requests);
  EXPECT_LE(s.wait_p50, s.wait_p99);
  EXPECT_LE(s.wait_p99, s.wait_max);
  EXPECT_EQ(s.waiters, 0u);
}

TEST(InterpreterLock, TimelineHoldsNeverOverlapAndExportAsChromeTrace) {
  InterpreterLock gil({.switch_interval = 200us, .instrument = true});
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      gil.name_current_thread(std::string(1, static_cast<char>('A' + t)));
      GilGuard hold(gil);
      run_bytecode(gil, stop);
    });
  }
  ASSERT_TRUE(eventually([&] { return gil.stats().switches >= 20; }));
  stop = true;
  for (auto& t : threads) t.join();
  const auto spans = gil.timeline();
  std::int64_t last_end = 0;
  int holds = 0;
  for (const auto& span : spans) {
    EXPECT_LE(span.start_ns, span.end_ns);
    if (span.kind != concur::GilSpan::holding) continue;
    EXPECT_GE(span.start_ns, last_end) << "two threads held the lock at once";
    last_end = span.end_ns;
    ++holds;
  }
  EXPECT_GE(holds, 20);
  const auto trace = nlohmann::json::parse(gil.chrome_trace_json());
  int slices = 0;
  int names = 0;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == "X") ++slices;
    if (e.at("ph") == "M" && e.at("name") == "thread_name") ++names;
  }
  EXPECT_EQ(slices, static_cast<int>(spans.size()));
  EXPECT_EQ(names, 4);
}

TEST(InterpreterLock, TimedAcquireGivesUpAndLeavesTheLockUsable) {
  for (GilPolicy policy : {GilPolicy::cpython, GilPolicy::fifo}) {
    InterpreterLock gil({.policy = policy, .switch_interval = 1ms});
    concur::testing::Event release;
    std::thread holder([&] {
      GilGuard hold(gil);  // holds without checkpoints: nobody can make it drop
      release.wait();
    });
    ASSERT_TRUE(eventually([&] { return gil.stats().acquisitions == 1; }));
    EXPECT_FALSE(gil.try_acquire_for(20ms));
    EXPECT_EQ(gil.stats().waiters, 0u);
    release.set();
    holder.join();
    EXPECT_TRUE(gil.try_acquire_for(1s));
    gil.release();
  }
}

TEST(InterpreterLock, AThreadThatExitsHoldingTheLockDoesNotHangTheOthers) {
  concur::testing::CapturedStderr err;
  InterpreterLock gil;
  std::vector<GilEvent> events;
  std::mutex mu;
  gil.add_event_hook([&](const GilEventInfo& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e.event);
  });
  std::thread leaker([&] { gil.acquire(); });
  leaker.join();
  EXPECT_TRUE(gil.try_acquire_for(5s));
  gil.release();
  EXPECT_NE(err.text().find("exited while holding"), std::string::npos);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_NE(std::find(events.begin(), events.end(), GilEvent::exited), events.end());
}

TEST(InterpreterLock, FreeThreadedModeIsANoOp) {
  InterpreterLock gil({.free_threaded = true});
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  std::vector<std::thread> threads;
  concur::testing::Event all_in;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      GilGuard hold(gil);
      const int now = inside.fetch_add(1) + 1;
      int seen = most_inside.load();
      while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
      }
      if (now == 3) all_in.set();
      all_in.wait_for(10s);
      inside.fetch_sub(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(most_inside.load(), 3);
  EXPECT_TRUE(gil.held_by_current_thread());
  EXPECT_EQ(gil.stats().acquisitions, 0u);
}

#if !defined(__SANITIZE_THREAD__)
TEST(InterpreterLock, IsUsableInAChildAfterForkWhileAnotherThreadHeldIt) {
  InterpreterLock gil;
  concur::testing::Event held;
  concur::testing::Event done;
  std::thread holder([&] {
    GilGuard hold(gil);
    held.set();
    done.wait();
  });
  held.wait();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Only this thread exists here; the holder did not survive the fork.
    const bool ok = gil.try_acquire_for(2s) && gil.held_by_current_thread();
    if (ok) gil.release();
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  done.set();
  holder.join();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
#endif

}  // namespace
