// fork-with-lock: does fork() copy a process safely when it has threads?
//
// Claim (in our words): on Linux, processes start with fork(), which copies the parent's memory
// safely.
//
// Workload: a lock (std::mutex) and a buffer of data in this process.
//   - control: fork() with the lock free; the child sums the buffer, takes the lock, and reports;
//   - held: another thread holds the lock at the moment of fork(); the child (a copy with only
//     the forking thread) takes the lock; bounded by kStuckAfterS, then killed with SIGKILL;
//   - concur: a multiprocessing::Process started the default way (get_start_method()) while the
//     lock is held, its target taking the same (global) lock; and StartMethod::fork asked for
//     while a thread runs, which concur refuses (src/multiprocessing/launcher.cpp): its message.
//   - CPython (lab/python/fork_with_lock.py): the same with os.fork and a threading.Lock, and a
//     multiprocessing.Process started by CPython's default method taking the same lock.
//
// Verdict (fork_with_lock.hpp): on CPython's figures, else concur's (and the verdict says so).
#include "fork_with_lock.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <concur/errors.hpp>
#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/registry.hpp>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "lab.hpp"
#include "procfs.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace {

// The lock the children take: a global, so that a child started from a fresh program image
// (forkserver, spawn) has its own, free copy, and a forked one inherits its state.
std::mutex shared_lock;

void take_shared_lock() {
  std::lock_guard hold(shared_lock);
}
CONCUR_REGISTER(take_shared_lock);

}  // namespace

namespace concur::lab {
namespace fork_with_lock {

std::vector<Threshold> thresholds() {
  return {{"stuck_after_s", kStuckAfterS,
           "a child that needs microseconds and has not finished after this is stuck (1000x its "
           "work on a loaded machine)"}};
}

Judgement judge(const Measurements& m) {
  if (!m.control_finished) {
    return {Verdict::kInconclusive,
            fmt::format("In {}, even the child forked with the lock free did not finish within "
                        "{:.0f} s, so a hang proves nothing here",
                        m.who, kStuckAfterS)};
  }
  if (!m.copy_intact) {
    return {Verdict::kRefuted,
            fmt::format("In {}, the forked child did not see its parent's data: the copy itself "
                        "was wrong",
                        m.who)};
  }
  std::string text = fmt::format(
      "In {}, a forked child saw its parent's data intact and, with the lock free, finished; "
      "forked while another thread held the lock, it {}.",
      m.who,
      m.held_lock_stuck
          ? fmt::format("hung on that lock (killed after {:.0f} s): the copy includes the lock's "
                        "held state, but not the thread that would release it",
                        kStuckAfterS)
          : "took it and finished");
  if (!m.held_lock_stuck) return {Verdict::kConfirmed, text};
  if (m.default_stuck.has_value() && !*m.default_stuck) {
    return {Verdict::kPartlyTrue,
            text + fmt::format(" A process started the default way ({}) did not hang: it does "
                               "not inherit the parent's locks.",
                               m.default_method)};
  }
  const std::string defaults =
      m.default_stuck.has_value()
          ? fmt::format(" A process started the default way ({}) hung the same way.",
                        m.default_method)
          : "";
  return {Verdict::kRefuted, text + defaults + " fork() copies memory, but not safely."};
}

}  // namespace fork_with_lock

namespace {

using fork_with_lock::kStuckAfterS;

// Holds `shared_lock` on its own thread from construction to destruction.
class LockHolder {
 public:
  LockHolder() {
    thread_ = std::thread([this] {
      std::unique_lock mine(shared_lock);
      std::unique_lock l(mutex_);
      held_ = true;
      cv_.notify_all();
      cv_.wait(l, [this] { return release_; });
    });
    std::unique_lock l(mutex_);
    cv_.wait(l, [this] { return held_; });
  }
  ~LockHolder() {
    {
      std::lock_guard l(mutex_);
      release_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool held_ = false;
  bool release_ = false;
  std::thread thread_;
};

struct ForkTrial {
  bool finished = false;
  bool copy_intact = false;
  double seconds = 0;
};

ForkTrial fork_and_take(const std::vector<long>& data, long expected) {
  const auto r = procfs::run_in_child(
      [&] {
        const long sum = std::accumulate(data.begin(), data.end(), 0L);
        take_shared_lock();
        return std::to_string(sum);
      },
      std::chrono::milliseconds(static_cast<long>(kStuckAfterS * 1000)));
  ForkTrial t;
  t.finished = r.output.has_value();
  t.copy_intact = t.finished && *r.output == std::to_string(expected);
  t.seconds = r.seconds;
  return t;
}

std::string describe(const ForkTrial& t) {
  if (t.finished) return fmt::format("finished in {}", format_seconds(t.seconds));
  return fmt::format("stuck: killed after {}", format_seconds(t.seconds));
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim("On Linux, processes start with fork(), which copies the parent's memory safely.",
               "fork() which safely copies memory");
  for (const Threshold& t : fork_with_lock::thresholds()) report.threshold(t);
  std::vector<long> data(1 << 16);
  std::iota(data.begin(), data.end(), 1L);
  const long expected = std::accumulate(data.begin(), data.end(), 0L);

  Table table{
      "A child takes a lock after its parent started it; another thread of the parent "
      "holds that lock or not",
      {"who", "how the child started", "lock at the start", "child"},
      {}};
  // The chart: how long each child took to finish, or ran until it was killed as stuck.
  std::vector<svg::Bar> bars;
  auto bar = [&bars](std::string label, double seconds, bool finished) {
    bars.push_back(
        {std::move(label) + (finished ? "" : " (stuck, killed)"), seconds, finished ? 0 : 1});
  };
  fork_with_lock::Measurements concur_m;
  concur_m.who = "concur (C++)";
  const ForkTrial control = fork_and_take(data, expected);
  table.rows.push_back({"C++", "fork()", "free", describe(control)});
  bar("C++ fork(), lock free", control.seconds, control.finished);
  ForkTrial held;
  {
    LockHolder holder;
    held = fork_and_take(data, expected);
  }
  table.rows.push_back({"C++", "fork()", "held by another thread", describe(held)});
  bar("C++ fork(), lock held", held.seconds, held.finished);
  concur_m.control_finished = control.finished;
  concur_m.copy_intact = control.copy_intact;
  concur_m.held_lock_stuck = !held.finished;

  // concur's default start method, while the lock is held.
  const auto method = multiprocessing::get_start_method();
  concur_m.default_method = std::string("concur's ") + multiprocessing::to_string(method);
  {
    LockHolder holder;
    multiprocessing::Process p(take_shared_lock);
    const auto t0 = std::chrono::steady_clock::now();
    p.start();
    // The first start of a forkserver execs it: allow for that on top of the child's own time.
    const bool joined = p.join(std::chrono::duration<double>(kStuckAfterS + 10));
    if (!joined) {
      p.kill();
      p.join();
    }
    concur_m.default_stuck = !joined || p.exitcode() != 0;
    bar("concur Process, lock held",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
        !*concur_m.default_stuck);
    table.rows.push_back(
        {"concur", fmt::format("Process, default ({})", multiprocessing::to_string(method)),
         "held by another thread",
         joined ? fmt::format("exit code {} in {}", p.exitcode().value_or(-1),
                              format_seconds(std::chrono::duration<double>(
                                                 std::chrono::steady_clock::now() - t0)
                                                 .count()))
                : "stuck: killed"});
  }
  {
    LockHolder holder;
    std::string refusal = "started (not refused)";
    try {
      multiprocessing::Process p({.start_method = multiprocessing::StartMethod::fork},
                                 take_shared_lock);
      p.start();
      if (!p.join(std::chrono::duration<double>(kStuckAfterS))) {
        p.kill();
        p.join();
        refusal = "started, and stuck: killed";
      }
    } catch (const std::exception& e) {
      refusal = std::string("refused: ") + e.what();
    }
    table.rows.push_back(
        {"concur", "Process, StartMethod::fork", "held by another thread", refusal});
  }

  fork_with_lock::Measurements m = concur_m;
  Source source = Source::kConcurModel;
  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j =
        python->run_json("fork_with_lock.py", {"--stuck-after", fmt::format("{}", kStuckAfterS)},
                         std::chrono::seconds(120));
    const std::string who = "CPython " + j.at("version").get<std::string>();
    m.who = who;
    m.control_finished = j.at("control").at("finished").get<bool>();
    m.copy_intact = j.at("control").at("copy_intact").get<bool>();
    m.held_lock_stuck = !j.at("held").at("finished").get<bool>();
    m.default_method = "CPython's multiprocessing " + j.at("default_method").get<std::string>();
    m.default_stuck = !j.at("default").at("finished").get<bool>();
    source = Source::kCPython;
    auto row = [&](const std::string& how, const std::string& lock, const nlohmann::json& t) {
      const std::string short_how = how.rfind("os.fork", 0) == 0 ? "os.fork()" : "Process";
      bar("CPython " + short_how + ", lock " + (lock == "free" ? "free" : "held"),
          t.at("seconds").get<double>(), t.at("finished").get<bool>());
      table.rows.push_back(
          {who, how, lock,
           t.at("finished").get<bool>()
               ? fmt::format("finished in {}", format_seconds(t.at("seconds").get<double>()))
               : fmt::format("stuck: killed after {}",
                             format_seconds(t.at("seconds").get<double>()))});
    };
    row("os.fork()", "free", j.at("control"));
    row("os.fork()", "held by another thread", j.at("held"));
    row("multiprocessing.Process, default (" + j.at("default_method").get<std::string>() + ")",
        "held by another thread", j.at("default"));
  }
  report.table(std::move(table));
  report.figure({"fork-with-lock.svg",
                 "How long each child took to take the lock and finish; a stuck child is killed "
                 "at the dashed line.",
                 svg::bars("A child that takes a lock, started while another thread holds it", "s",
                           bars, kStuckAfterS, "killed as stuck")});
  report.measured("held_lock_child_stuck", m.held_lock_stuck ? 1 : 0, "");
  report.note(fmt::format(
      "concur starts processes with {} unless told otherwise: a forkserver is a single-threaded "
      "copy of the program started before any lock is taken, so its children inherit no lock "
      "another thread holds; StartMethod::fork is refused while threads run unless "
      "allow_fork_with_threads is set.",
      multiprocessing::to_string(method)));
  report.verdict(fork_with_lock::judge(m), source);
}

const bool registered = register_experiment(
    {"fork-with-lock", "fork() while another thread holds a lock: the child hangs on it", run,
     Chapter::kMainGuard, 15});

}  // namespace
}  // namespace concur::lab
