// gil-io-release: does a thread that waits let the others run?
//
// Claim (in our words): while a thread waits (sleeps, downloads, queries a database) it drops the
// interpreter lock, so another thread takes it at once; ten threads that each wait one second
// finish in about one second.
//
// Workload: kThreads threads that each hold concur's InterpreterLock, then wait `wait`
// (0.2 s; 0.05 s with --quick): first inside GilRelease (Py_BEGIN_ALLOW_THREADS, what CPython's
// time.sleep does), then while still holding the lock (what a C extension that forgets to release
// it does). Each run is timed; the lock's statistics say how often it changed hands.
//
// This is concur's lock, not CPython's: the verdict is marked as concur's model (io-bound-threads
// shows CPython's time.sleep releasing its lock).
//
// Verdict (gil_io_release.hpp): confirmed when the releasing run takes at most kNearOneWait waits
// and the holding run at least kNearAllWaits x kThreads waits: waiting overlaps exactly when the
// lock is released. Partly true when releasing helps but not down to about one wait. Refuted
// otherwise.
#include <fmt/format.h>

#include <chrono>
#include <thread>
#include <vector>

#include <concur/gil.hpp>

#include "gil_io_release.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace gil_io_release {

std::vector<Threshold> thresholds() {
  return {{"near_one_wait", kNearOneWait,
           "\"instantly grabs the Lock\": released, N waits overlap into about one"},
          {"near_all_waits", kNearAllWaits,
           "held, the waits must queue: all N of them (timer rounding allowed)"}};
}

Judgement judge(const Measurements& m) {
  const std::string numbers = fmt::format(
      "With concur's InterpreterLock (not CPython's), {} threads releasing the lock while they "
      "wait {} took {} ({} waits); holding it, {} ({} waits).",
      m.threads, format_seconds(m.wait_s), format_seconds(m.released_s),
      format_ratio(m.released_s / m.wait_s), format_seconds(m.held_s),
      format_ratio(m.held_s / m.wait_s));
  if (m.released_s <= kNearOneWait * m.wait_s && m.held_s >= kNearAllWaits * m.threads * m.wait_s) {
    return {Verdict::kConfirmed,
            numbers +
                " Waiting overlaps exactly when the waiting thread lets go of the lock "
                "(gil-convoy measures how \"instantly\" it comes back)."};
  }
  if (m.released_s < m.held_s / 2) {
    return {Verdict::kPartlyTrue, numbers + " Releasing helps, but not down to one wait."};
  }
  return {Verdict::kRefuted, numbers + " Releasing the lock did not let the waits overlap."};
}

}  // namespace gil_io_release

namespace {

constexpr int kThreads = 10;

using Clock = std::chrono::steady_clock;

struct Run {
  double wall = 0;
  std::vector<svg::Lane> lanes;
  GilStats stats;
};

Run run_threads(std::chrono::duration<double> wait, bool release_while_waiting, int kind) {
  InterpreterLock gil({.instrument = true});
  Run run;
  run.lanes.resize(kThreads);
  const auto t0 = Clock::now();
  auto at = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      GilGuard hold(gil);
      const double start = at();
      if (release_while_waiting) {
        GilRelease io(gil);
        std::this_thread::sleep_for(wait);
      } else {
        std::this_thread::sleep_for(wait);  // waits with the lock held
      }
      run.lanes[static_cast<std::size_t>(k)] = {fmt::format("thread {}", k), {{start, at(), kind}}};
    });
  }
  for (auto& t : threads) t.join();
  run.wall = at();
  run.stats = gil.stats();
  return run;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "A thread that waits (sleep, network, database) drops the interpreter lock, another thread "
      "takes it at once, and so ten waiting threads finish in about one wait rather than ten. "
      "Shown here with concur's InterpreterLock, not CPython's (io-bound-threads runs CPython).",
      "Another Thread instantly grabs the Lock");
  const double wait = options.quick ? 0.05 : 0.2;
  const auto w = std::chrono::duration<double>(wait);
  const Run released = run_threads(w, true, 1);
  const Run held = run_threads(w, false, 0);
  report.check(released.stats.acquisitions >= kThreads && held.stats.acquisitions >= kThreads,
               "every thread took the lock");

  report.table({fmt::format("{} threads that each wait {}", kThreads, format_seconds(wait)),
                {"the waiting thread", "wall time", "in waits", "lock acquisitions"},
                {{"releases the lock (GilRelease)", format_seconds(released.wall),
                  format_ratio(released.wall / wait), std::to_string(released.stats.acquisitions)},
                 {"keeps holding the lock", format_seconds(held.wall),
                  format_ratio(held.wall / wait), std::to_string(held.stats.acquisitions)}}});
  report.measured("released_waits", released.wall / wait, "waits");
  report.measured("held_waits", held.wall / wait, "waits");
  std::vector<svg::Lane> lanes = released.lanes;
  for (auto& lane : lanes) lane.label += " (releases)";
  for (svg::Lane lane : held.lanes) {
    lane.label += " (holds)";
    lanes.push_back(std::move(lane));
  }
  report.figure({"gil-io-release.svg",
                 "Each bar is one thread's wait. Released, the waits overlap; held, they queue.",
                 svg::timeline("Ten waits: releasing the lock vs holding it", lanes,
                               {{1, "waiting, lock released"}, {0, "waiting, lock held"}})});

  for (const Threshold& t : gil_io_release::thresholds()) report.threshold(t);
  report.verdict(gil_io_release::judge({kThreads, wait, released.wall, held.wall}),
                 Source::kConcurModel);
}

const bool registered = register_experiment(
    {"gil-io-release", "10 waiting threads: releasing the lock vs holding it (concur's lock)", run,
     Chapter::kThreadsForIo, 6});

}  // namespace
}  // namespace concur::lab
