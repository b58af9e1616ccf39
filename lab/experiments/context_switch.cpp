// context-switch: is handing the CPU from one coroutine to another cheaper than from one OS
// thread to another?
//
// Claim (in our words): threads pay for every switch, because the operating system must stop one
// thread and put another on the core, and that adds latency; a coroutine that awaits hands
// control back to the event loop, which runs the next coroutine on the same thread at once, with
// no switch of OS thread, so it costs much less.
//
// Workload: two parties pass the turn back and forth, and check after every hand-over that the
// turn really alternated; one switch costs the time divided by the number of hand-overs.
//   - concur coroutines: two tasks on one loop ping-pong through two asyncio::Events (set, wait,
//     clear), the coroutine form of the threads' ping-pong; and two tasks that each
//     co_await sleep(0) in turn (a bare yield to the loop).
//   - C++ threads: two std::threads ping-pong through a mutex and a condition variable, free to
//     run on any core (a wake-up across cores, as the scheduler does it), then both pinned to one
//     CPU (each hand-over is a real switch of that core from one thread to the other).
//   - CPython (lab/python/context_switch.py): the same with asyncio.Event and asyncio.sleep(0) on
//     asyncio's loop and on uvloop's (when importable), and two threading.Threads ping-pong
//     through two Locks, free and pinned.
// Each variant is calibrated to about kSeconds a run (kQuickSeconds with --quick); the variants'
// runs are interleaved, kRepeats rounds, and each variant's figure is its best run. CPython's
// figures differ from one process to the next (its Event hand-over came out near one of two
// values here, steady within a process), so its script runs in kProcesses fresh processes and
// each variant reports the median over processes of its best run.
//
// Verdict (context_switch.hpp), on CPython (the tutorial's subject; concur's figures when CPython
// cannot run): the like-for-like comparison is the Event ping-pong against the cheaper of the two
// thread ping-pongs. Confirmed when the coroutine hand-over is at least kMuchCheaper x cheaper;
// partly true when it is at least kNoticeably x cheaper, or only the bare sleep(0) yield is
// kMuchCheaper x cheaper; refuted otherwise (the hand-over not noticeably cheaper than a thread
// switch, and the yield not much cheaper: the explanation says how much cheaper it was, if at all).
#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <concur/asyncio.hpp>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "context_switch.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace context_switch {

std::vector<Threshold> thresholds() {
  return {{"much_cheaper", kMuchCheaper,
           "\"massive\" vs \"without overhead\": the thread switch costs an order of magnitude "
           "more"},
          {"noticeably", kNoticeably, "below this ratio the two are within run-to-run noise"}};
}

Judgement judge(const Measurements& m) {
  const std::string numbers = fmt::format(
      "In {}, a hand-over between two coroutines through an Event took {} and a bare sleep(0) "
      "yield {}, against {} between two OS threads (the cheaper of the two thread runs): thread "
      "switch / coroutine switch = {} for the Event, {} for the yield.",
      m.from_cpython ? "CPython" : "concur (CPython was not measured)", format_seconds(m.event_s),
      format_seconds(m.sleep0_s), format_seconds(m.threads_s), format_ratio(m.ratio()),
      format_ratio(m.yield_ratio()));
  if (m.ratio() >= kMuchCheaper) return {Verdict::kConfirmed, numbers};
  if (m.ratio() >= kNoticeably) {
    return {Verdict::kPartlyTrue,
            numbers + fmt::format(" The coroutine hand-over is cheaper, but by less than the {} "
                                  "that \"massive\" asks.",
                                  format_ratio(kMuchCheaper))};
  }
  if (m.yield_ratio() >= kMuchCheaper) {
    return {Verdict::kPartlyTrue,
            numbers + fmt::format(" Only the bare yield is {} cheaper; the like-for-like "
                                  "hand-over is within {} of a thread switch.",
                                  format_ratio(kMuchCheaper), format_ratio(kNoticeably))};
  }
  if (m.yield_ratio() >= kNoticeably) {
    // The yield is cheaper, only not by the order of magnitude the claim needs: say so, rather
    // than that no form was cheaper.
    return {Verdict::kRefuted,
            numbers + fmt::format(" The like-for-like hand-over was not even {} cheaper than a "
                                  "thread switch, and the bare yield only {} (\"massive\" needs "
                                  "{}).",
                                  format_ratio(kNoticeably), format_ratio(m.yield_ratio()),
                                  format_ratio(kMuchCheaper))};
  }
  return {Verdict::kRefuted, numbers + fmt::format(" Neither coroutine form was even {} cheaper "
                                                   "than a thread switch.",
                                                   format_ratio(kNoticeably))};
}

}  // namespace context_switch

namespace {

constexpr double kSeconds = 0.15;
constexpr double kQuickSeconds = 0.03;
constexpr int kRepeats = 4;
constexpr int kQuickRepeats = 3;
constexpr int kProcesses = 5;  // CPython processes (its figures differ from one to the next)
constexpr int kQuickProcesses = 3;
using context_switch::kMuchCheaper;
using context_switch::kNoticeably;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One timed run: its time and how many hand-overs it made (0 if the turn did not alternate).
struct Run {
  double seconds = 0;
  long switches = 0;
};

// --- coroutines -------------------------------------------------------------------------------

struct PingPong {
  asyncio::Event to_pong;
  asyncio::Event to_ping;
  long turn = 0;
  bool in_turn = true;
};

asyncio::Task<void> ping(PingPong& p, long rounds) {
  for (long i = 0; i < rounds; ++i) {
    if (p.turn != 2 * i) p.in_turn = false;
    ++p.turn;
    p.to_pong.set();
    co_await p.to_ping.wait();
    p.to_ping.clear();
  }
}

asyncio::Task<void> pong(PingPong& p, long rounds) {
  for (long i = 0; i < rounds; ++i) {
    co_await p.to_pong.wait();
    p.to_pong.clear();
    if (p.turn != 2 * i + 1) p.in_turn = false;
    ++p.turn;
    p.to_ping.set();
  }
}

asyncio::Task<Run> event_ping_pong(long rounds) {
  PingPong p;
  const auto t0 = Clock::now();
  co_await asyncio::gather(ping(p, rounds), pong(p, rounds));
  Run run{seconds_since(t0), 2 * rounds};
  if (!p.in_turn || p.turn != 2 * rounds) run.switches = 0;
  co_return run;
}

struct Yields {
  int last = -1;
  long steps = 0;
  long alternations = 0;
};

asyncio::Task<void> yielder(Yields& y, int who, long rounds) {
  for (long i = 0; i < rounds; ++i) {
    if (y.last >= 0 && y.last != who) ++y.alternations;
    y.last = who;
    ++y.steps;
    co_await asyncio::sleep(std::chrono::nanoseconds(0));
  }
}

asyncio::Task<Run> sleep0_ping_pong(long rounds) {
  Yields y;
  const auto t0 = Clock::now();
  co_await asyncio::gather(yielder(y, 0, rounds), yielder(y, 1, rounds));
  Run run{seconds_since(t0), 2 * rounds};
  if (y.steps != 2 * rounds || y.alternations < 2 * rounds - 2) run.switches = 0;
  co_return run;
}

// --- threads ----------------------------------------------------------------------------------

// The first CPU this process may run on, to pin both threads to.
int first_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return 0;
}

void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

Run thread_ping_pong(long rounds, std::optional<int> pin_cpu) {
  std::mutex mu;
  std::condition_variable cv;
  long turn = 0;
  bool in_turn = true;
  auto party = [&](long parity) {
    if (pin_cpu) pin_this_thread(*pin_cpu);
    for (long i = 0; i < rounds; ++i) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return turn % 2 == parity; });
        if (turn != 2 * i + parity) in_turn = false;
        ++turn;
      }
      cv.notify_one();
    }
  };
  const auto t0 = Clock::now();
  std::thread pong_thread(party, 1);
  std::thread ping_thread(party, 0);
  ping_thread.join();
  pong_thread.join();
  Run run{seconds_since(t0), 2 * rounds};
  if (!in_turn || turn != 2 * rounds) run.switches = 0;
  return run;
}

// --- measuring --------------------------------------------------------------------------------

// A variant's cost of one switch: the figure judged, and the range it came from.
struct Measured {
  double per_switch = 0;  // seconds
  double low = 0;
  double high = 0;
};

// Calibrates each variant to about `seconds` a run, then times `repeats` rounds of runs, one run
// of every variant per round (interleaved, so that they share the machine's moods). Each
// variant's figure is its best run (timeit's rule for a cost that noise can only add to).
std::vector<Measured> measure_all(const std::vector<std::function<Run(long)>>& variants,
                                  const std::vector<std::string>& names, double seconds,
                                  int repeats, Report& report) {
  std::vector<long> rounds;
  for (std::size_t v = 0; v < variants.size(); ++v) {
    const Run calibration = variants[v](1000);
    report.check(calibration.switches == 2000, names[v] + ": the turn alternated");
    rounds.push_back(std::max<long>(
        1000, static_cast<long>(1000 * seconds / std::max(calibration.seconds, 1e-6))));
  }
  std::vector<std::vector<double>> runs(variants.size());
  for (int k = 0; k < repeats; ++k) {
    for (std::size_t v = 0; v < variants.size(); ++v) {
      const Run r = variants[v](rounds[v]);
      report.check(r.switches == 2 * rounds[v], names[v] + ": the turn alternated");
      runs[v].push_back(r.seconds / static_cast<double>(r.switches));
    }
  }
  std::vector<Measured> out;
  for (const std::vector<double>& r : runs) {
    const auto [lo, hi] = std::minmax_element(r.begin(), r.end());
    out.push_back({*lo, *lo, *hi});
  }
  return out;
}

Run on_a_loop(asyncio::Task<Run> task) {
  return asyncio::run(std::move(task), asyncio::RunOptions{.handle_sigint = false});
}

std::string range_of(const Measured& m) {
  return format_seconds(m.low) + " - " + format_seconds(m.high);
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "Switching between OS threads is costly, because the operating system must stop one "
      "thread and put another on the core; a coroutine that awaits hands control to the event "
      "loop, which starts the next one on the same thread at once, so switching between "
      "coroutines costs much less.",
      "creates massive micro-latency");
  const double seconds = options.quick ? kQuickSeconds : kSeconds;
  const int repeats = options.quick ? kQuickRepeats : kRepeats;
  const int processes = options.quick ? kQuickProcesses : kProcesses;
  const int cpu = first_allowed_cpu();
  report.note(load_note());

  const std::vector<std::string> names{"concur Event ping-pong", "concur sleep(0) yields",
                                       "C++ threads ping-pong", "C++ threads ping-pong on one CPU"};
  const std::vector<Measured> cpp =
      measure_all({[](long r) { return on_a_loop(event_ping_pong(r)); },
                   [](long r) { return on_a_loop(sleep0_ping_pong(r)); },
                   [](long r) { return thread_ping_pong(r, std::nullopt); },
                   [cpu](long r) { return thread_ping_pong(r, cpu); }},
                  names, seconds, repeats, report);
  const Measured& co_event = cpp[0];
  const Measured& co_sleep0 = cpp[1];
  const Measured& th_free = cpp[2];
  const Measured& th_pinned = cpp[3];

  Table table{
      fmt::format("One switch between two parties (concur: the best of {} interleaved "
                  "runs of about {} each; CPython: the median over {} processes of each "
                  "one's best run)",
                  repeats, format_seconds(seconds), processes),
      {"who", "how the turn is passed", "one switch", "range (concur: runs; CPython: processes)"},
      {}};
  std::vector<svg::Bar> bars;
  auto add = [&](const std::string& who, const std::string& how, const Measured& m,
                 const std::string& bar, int kind) {
    table.rows.push_back({who, how, format_seconds(m.per_switch), range_of(m)});
    bars.push_back({bar, m.per_switch * 1e6, kind});
  };
  add("concur coroutines", "asyncio::Event ping-pong", co_event, "concur Event", 0);
  add("concur coroutines", "sleep(0) yields", co_sleep0, "concur sleep(0)", 0);
  add("C++ threads", "condition variable, any core", th_free, "C++ threads, any core", 1);
  add("C++ threads", fmt::format("condition variable, both on CPU {}", cpu), th_pinned,
      "C++ threads, one CPU", 1);
  report.measured("concur_event_switch_s", co_event.per_switch, "s");
  report.measured("concur_sleep0_switch_s", co_sleep0.per_switch, "s");
  report.measured("cpp_thread_switch_s", th_free.per_switch, "s");
  report.measured("cpp_thread_switch_one_cpu_s", th_pinned.per_switch, "s");

  const double concur_threads = std::min(th_free.per_switch, th_pinned.per_switch);
  const double concur_ratio = concur_threads / co_event.per_switch;
  double subject_ratio = concur_ratio;
  double subject_co = co_event.per_switch;
  double subject_threads = concur_threads;
  double subject_sleep0 = co_sleep0.per_switch;
  bool from_cpython = false;
  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j = python->run_json(
        "context_switch.py",
        {"--seconds", fmt::format("{}", seconds), "--repeats", std::to_string(repeats), "--cpu",
         std::to_string(cpu), "--processes", std::to_string(processes)},
        std::chrono::seconds(600));
    const auto& v = j.at("variants");
    auto get = [&](const std::string& key) {
      Measured m;
      m.per_switch = v.at(key).at("per_switch_s").get<double>();
      m.low = v.at(key).at("low_s").get<double>();
      m.high = v.at(key).at("high_s").get<double>();
      report.check(m.low > 0 && m.low <= m.per_switch && m.per_switch <= m.high,
                   "CPython's " + key + " timings are positive and consistent");
      return m;
    };
    const std::string py = "CPython " + j.at("version").get<std::string>();
    const Measured py_event = get("asyncio-event");
    const Measured py_sleep0 = get("asyncio-sleep0");
    add(py + " asyncio", "asyncio.Event ping-pong", py_event, "CPython asyncio Event", 2);
    add(py + " asyncio", "asyncio.sleep(0) yields", py_sleep0, "CPython asyncio sleep(0)", 2);
    if (v.contains("uvloop-event")) {
      add(py + " uvloop", "asyncio.Event ping-pong", get("uvloop-event"), "uvloop Event", 3);
      add(py + " uvloop", "asyncio.sleep(0) yields", get("uvloop-sleep0"), "uvloop sleep(0)", 3);
      report.measured("uvloop_event_switch_s",
                      v.at("uvloop-event").at("per_switch_s").get<double>(), "s");
    } else {
      const std::string why = j.at("uvloop_skipped").get<std::string>();
      table.rows.push_back({py + " uvloop", "skipped", "-", why});
      report.note("uvloop skipped: " + why);
    }
    const Measured py_free = get("threads");
    const Measured py_pinned = get("threads-1cpu");
    add(py + " threads", "two Locks, any core", py_free, "CPython threads, any core", 4);
    add(py + " threads", fmt::format("two Locks, both on CPU {}", cpu), py_pinned,
        "CPython threads, one CPU", 4);
    report.measured("cpython_event_switch_s", py_event.per_switch, "s");
    report.measured("cpython_sleep0_switch_s", py_sleep0.per_switch, "s");
    report.measured("cpython_thread_switch_s", py_free.per_switch, "s");
    report.measured("cpython_thread_switch_one_cpu_s", py_pinned.per_switch, "s");
    from_cpython = true;
    subject_co = py_event.per_switch;
    subject_sleep0 = py_sleep0.per_switch;
    subject_threads = std::min(py_free.per_switch, py_pinned.per_switch);
    subject_ratio = subject_threads / subject_co;
  }
  report.measured("concur_thread_over_coroutine", concur_ratio, "x");
  report.measured("subject_thread_over_coroutine", subject_ratio, "x");
  report.table(std::move(table));
  report.figure({"context-switch.svg",
                 "The cost of one hand-over between two parties: shorter is cheaper. Coroutines "
                 "stay on one thread; threads need the kernel to wake the other one.",
                 svg::bars("One switch: coroutines vs OS threads", "us", bars)});

  const context_switch::Measurements m{from_cpython, subject_co, subject_sleep0, subject_threads};
  report.measured("subject_thread_over_yield", m.yield_ratio(), "x");
  for (const Threshold& t : context_switch::thresholds()) report.threshold(t);
  Judgement j = context_switch::judge(m);
  j.because +=
      fmt::format(" In concur (C++) the Event hand-over took {} against {} for threads ({}).",
                  format_seconds(co_event.per_switch), format_seconds(concur_threads),
                  format_ratio(concur_ratio));
  report.verdict(j, from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"context-switch", "one switch: two coroutines (Event, sleep(0)) vs two OS threads", run,
     Chapter::kCoroutines, 30});

}  // namespace
}  // namespace concur::lab
