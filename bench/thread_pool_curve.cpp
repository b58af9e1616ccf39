// bench/thread_pool_curve: how the thread pool's costs grow with the load (issue 22) — the
// throughput and the memory of N tiny tasks queued at once, for N from 10^3 to 10^7, on
// concur::ThreadPoolExecutor beside oneTBB. Every pool has 2 worker threads.
//
// One point is (N, S submitters, peer): S threads (1, 2 or 4) each submit N/S tasks that return
// an int, then each awaits its own share. Per point:
//
//   tasks/s      N / (the first submit -> every task done and awaited), from ungated runs: the
//                workers run tasks while the submitters are still submitting, as in real use.
//                Below 3*10^5 tasks a run is repeated (300 bursts at 10^3, 30 at 10^4, 3 at
//                10^5) and the sample is their median, so a short burst is not one clock tick.
//   bytes/task   the growth of the process's resident set (VmRSS, /proc/self/statm) while all N
//                tasks are pending, divided by N. Both workers are first held on a gate (a task
//                each that blocks on a latch), so nothing submitted can run; the baseline is read
//                after malloc_trim(0) just before the first submit, the second reading once every
//                submitter has returned from its last submit; then the gate opens.
//   submit/s     (JSON and table) N / (first submit -> last submit returned) in that gated run:
//                the submitters' own cost with no worker competing for the queue or the cores.
//
// Why two runs, not one: a gated run's clock would hold the gate's wait and the RSS reading, and
// it takes away what the throughput should include, the contention between submitters and
// workers on the queue and the 2 cores. The gated run comes first, so the ungated runs find a
// warm heap (freed task memory is reused, as in a long-running program); their minor page faults
// per task are in the JSON.
//
// Every sample runs in a fresh child process (this program, re-executed with a hidden option):
// an allocator keeps freed memory (glibc's arenas, oneTBB's per-thread object pools and
// tbbmalloc's caches), so in one long process a later run would find the memory of an earlier
// one and show no growth. A child also keeps a load that does not fit from taking the sweep
// down with it. The caller's own storage for the N results (concur: a Future, 8 B; std::future,
// 16 B; task_group: an int in a vector) is allocated and written before the baseline: bytes/task
// is what the pool and the task's shared state add. At 10^3 tasks the growth is a few dozen
// 4 KiB pages, so that column is coarse there.
//
// Peers (2 workers each; oneTBB is capped at 3 threads as in thread_pool_bench):
//   concur           ThreadPoolExecutor(2); submit() from each submitter, result() of each future
//   tbb_task_group   oneTBB task_group, one per submitter, each submitter in an arena of 2 worker
//                    slots plus one reserved for each submitter; task_group::wait(). The
//                    reference of the ratio columns. Its submitters run tasks inside wait() (the
//                    other peers' submitters only block), and it makes no futures.
//   tbb_future       oneTBB task_arena(2) + std::packaged_task / std::future per task, as
//                    thread_pool_bench's tbb_arena_future; submitters stay outside the arena.
//                    In the table and the JSON only, and only up to --future-max-tasks (10^6 by
//                    default): at 10^7 one of its samples takes ~35 s here (4.3 GB to fault in,
//                    ~0.6M tasks/s), which alone would take the default sweep past 8 minutes.
//
// Repetitions are interleaved: for each N, each repetition runs every (S, peer) once, the peers'
// order rotated from one repetition and submitter count to the next. The figures are medians.
// Before each N, a peer whose estimated need (its bytes/task at the previous N, or 1 KiB, plus
// the result storage, times 1.5) exceeds 80% of MemAvailable is skipped at that N, with a note.
//
// Usage: thread_pool_curve [--repetitions 3] [--min-tasks 1000] [--max-tasks 10000000]
//                          [--future-max-tasks 1000000] [--chart-dir DIR] [--json FILE]
//   The loads are the powers of ten from --min-tasks to --max-tasks. The default sweep takes
//   about 3 minutes on 2 cores, most of it at 10^7 (~6 s a sample there).
//   --chart-dir writes thread-pool-throughput.svg and thread-pool-memory-per-task.svg there:
//   concur and oneTBB task_group, a series per submitter count.
//   --json writes every sample and the medians.
#include <fmt/format.h>
#include <malloc.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <concur/thread_pool.hpp>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/chart.hpp"
#include "common/format.hpp"
#include "machine.hpp"
#include "stats.hpp"
#include "subprocess.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using concur::support::median_of;

constexpr int kWorkers = 2;
constexpr int kSubmitterCounts[] = {1, 2, 4};
// Each sample's ungated runs add up to at least this many tasks (see the header).
constexpr double kTasksPerSample = 3e5;

struct PeerInfo {
  const char* name;
  const char* label;    // in the charts' legends (short: the legend is ~23 characters wide)
  double result_bytes;  // the caller's storage per task, outside bytes/task
  bool charted;
};
constexpr PeerInfo kPeers[] = {
    {"concur", "concur", sizeof(concur::Future<int>), true},
    {"tbb_task_group", "oneTBB", sizeof(int), true},
    {"tbb_future", "oneTBB+future", sizeof(std::future<int>), false},
};
constexpr const char* kFuturePeer = "tbb_future";
constexpr const char* kReference = "tbb_task_group";

// ---------------------------------------------------------------------------------------------
// The child: one sample of one point.

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Holds every worker of a pool inside a task until released.
struct Gate {
  std::atomic<int> held{0};
  std::latch open{1};

  void hold() {
    held.fetch_add(1, std::memory_order_release);
    open.wait();
  }
  void wait_until_held(int workers) const {
    while (held.load(std::memory_order_acquire) < workers) std::this_thread::yield();
  }
};

// The submitting threads, started once per child (before the memory baseline) and handed one
// job per run: each calls job(k) for its index k.
class Crew {
 public:
  explicit Crew(int size) : start_(size + 1), done_(size + 1) {
    for (int k = 0; k < size; ++k) threads_.emplace_back([this, k] { loop(k); });
  }
  ~Crew() {
    stop_ = true;
    start_.arrive_and_wait();
    for (auto& t : threads_) t.join();
  }
  Crew(const Crew&) = delete;
  Crew& operator=(const Crew&) = delete;

  void begin(std::function<void(int)> job) {
    job_ = std::move(job);
    start_.arrive_and_wait();
  }
  void finish() { done_.arrive_and_wait(); }

 private:
  void loop(int k) {
    for (;;) {
      start_.arrive_and_wait();
      if (stop_) return;
      job_(k);
      done_.arrive_and_wait();
    }
  }

  std::barrier<> start_;
  std::barrier<> done_;
  std::function<void(int)> job_;
  bool stop_ = false;  // written before start_ is passed, read after
  std::vector<std::thread> threads_;
};

// Each peer: prepare(n) makes (and writes) the result storage; hold(gate) parks both workers on
// the gate; share(lo, hi, between) submits tasks [lo, hi), calls between(), awaits them and
// returns the sum of their results.

struct ConcurPeer {
  concur::ThreadPoolExecutor pool{kWorkers};
  std::vector<concur::Future<int>> futures;

  explicit ConcurPeer(int /*submitters*/) {}
  void prepare(std::size_t n) {
    futures.clear();
    futures.resize(n);
  }
  void hold(Gate& gate) {
    // One at a time: a submit starts a thread only when no worker is idle, so the second gate
    // task must find the first worker already held, or both could queue for one thread.
    for (int w = 0; w < kWorkers; ++w) {
      pool.submit([&gate] { gate.hold(); });
      gate.wait_until_held(w + 1);
    }
    if (pool.thread_count() != kWorkers) throw std::runtime_error("the pool has not 2 threads");
  }
  template <class Between>
  long share(std::size_t lo, std::size_t hi, Between&& between) {
    for (std::size_t i = lo; i < hi; ++i)
      futures[i] = pool.submit([i] { return static_cast<int>(i); });
    between();
    long sum = 0;
    for (std::size_t i = lo; i < hi; ++i) sum += futures[i].result();
    return sum;
  }
};

struct TbbGroupPeer {
  // A slot per worker and one reserved for each submitter, which enters it to run its group.
  tbb::task_arena arena;
  std::vector<int> results;

  explicit TbbGroupPeer(int submitters)
      : arena(kWorkers + submitters, static_cast<unsigned>(submitters)) {}
  void prepare(std::size_t n) { results.assign(n, 0); }
  void hold(Gate& gate) {
    for (int w = 0; w < kWorkers; ++w) {
      arena.enqueue([&gate] { gate.hold(); });
      gate.wait_until_held(w + 1);
    }
  }
  template <class Between>
  long share(std::size_t lo, std::size_t hi, Between&& between) {
    // Submit, wait and between() all inside one execute(): the tasks sit in this thread's slot,
    // which must stay occupied until the group is waited for.
    arena.execute([&] {
      tbb::task_group group;
      int* r = results.data();
      for (std::size_t i = lo; i < hi; ++i) group.run([r, i] { r[i] = static_cast<int>(i); });
      between();
      group.wait();
    });
    long sum = 0;
    for (std::size_t i = lo; i < hi; ++i) sum += results[i];
    return sum;
  }
};

struct TbbFuturePeer {
  tbb::task_arena arena{kWorkers, 0};
  std::vector<std::future<int>> futures;

  explicit TbbFuturePeer(int /*submitters*/) {}
  void prepare(std::size_t n) {
    futures.clear();
    futures.resize(n);
  }
  void hold(Gate& gate) {
    for (int w = 0; w < kWorkers; ++w) {
      arena.enqueue([&gate] { gate.hold(); });
      gate.wait_until_held(w + 1);
    }
  }
  template <class Between>
  long share(std::size_t lo, std::size_t hi, Between&& between) {
    for (std::size_t i = lo; i < hi; ++i) {
      auto task = std::make_shared<std::packaged_task<int()>>([i] { return static_cast<int>(i); });
      futures[i] = task->get_future();
      arena.enqueue([task] { (*task)(); });
    }
    between();
    long sum = 0;
    for (std::size_t i = lo; i < hi; ++i) sum += futures[i].get();
    return sum;
  }
};

struct Span {
  Clock::time_point start, submitted, end;
};

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

template <class Peer>
nlohmann::json run_sample(std::size_t n, int submitters, int bursts) {
  Peer peer(submitters);
  Crew crew(submitters);
  const auto su = static_cast<std::size_t>(submitters);
  auto lo = [&](int k, std::size_t total) { return total * static_cast<std::size_t>(k) / su; };
  auto hi = [&](int k, std::size_t total) { return lo(k + 1, total); };
  auto expected = [](std::size_t total) {
    return static_cast<long>(total) * static_cast<long>(total - 1) / 2;
  };
  std::vector<Span> spans(su);
  std::vector<long> sums(su);
  auto run = [&](std::size_t total) {
    crew.begin([&](int k) {
      spans[k].start = Clock::now();
      sums[k] = peer.share(lo(k, total), hi(k, total), [] {});
      spans[k].end = Clock::now();
    });
    crew.finish();
    long sum = 0;
    for (long s : sums) sum += s;
    if (sum != expected(total)) throw std::runtime_error("wrong sum of results");
  };
  auto first_start = [&] {
    Clock::time_point t = spans[0].start;
    for (const Span& s : spans) t = std::min(t, s.start);
    return t;
  };

  // Warm-up: the pool's workers, oneTBB's arena slots and each thread's malloc arena exist
  // before the baseline, so that neither counts as growth.
  const std::size_t warm = static_cast<std::size_t>(4 * (kWorkers + submitters));
  peer.prepare(warm);
  run(warm);

  // Gated: every task stays queued while the RSS is read.
  peer.prepare(n);
  Gate gate;
  peer.hold(gate);
  std::latch submitted(submitters);
  std::latch release(1);
  malloc_trim(0);
  const std::size_t rss0 = resident_bytes();
  const long faults0 = minor_faults();
  crew.begin([&](int k) {
    spans[k].start = Clock::now();
    sums[k] = peer.share(lo(k, n), hi(k, n), [&] {
      spans[k].submitted = Clock::now();
      submitted.count_down();
      release.wait();
    });
    spans[k].end = Clock::now();
  });
  submitted.wait();
  const std::size_t rss1 = resident_bytes();
  const long faults1 = minor_faults();
  gate.open.count_down();
  release.count_down();
  crew.finish();
  Clock::time_point last_submit = spans[0].submitted;
  for (const Span& s : spans) last_submit = std::max(last_submit, s.submitted);
  const double submit_s = seconds(first_start(), last_submit);
  {
    long sum = 0;
    for (long s : sums) sum += s;
    if (sum != expected(n)) throw std::runtime_error("wrong sum of results (gated)");
  }

  // Ungated: the throughput.
  std::vector<double> rates;
  const long faults2 = minor_faults();
  for (int b = 0; b < bursts; ++b) {
    peer.prepare(n);  // outside the clock: the last burst's results are freed here
    run(n);
    Clock::time_point last_end = spans[0].end;
    for (const Span& s : spans) last_end = std::max(last_end, s.end);
    rates.push_back(static_cast<double>(n) / seconds(first_start(), last_end));
  }
  const long faults3 = minor_faults();

  const double growth = static_cast<double>(rss1) - static_cast<double>(rss0);
  const double dn = static_cast<double>(n);
  return {{"tasks_per_s", median_of(rates)},
          {"burst_tasks_per_s", rates},
          {"bytes_per_task", growth / dn},
          {"rss_growth_bytes", growth},
          {"submit_per_s", dn / submit_s},
          {"minor_faults_per_task_gated", static_cast<double>(faults1 - faults0) / dn},
          {"minor_faults_per_task", static_cast<double>(faults3 - faults2) / (dn * bursts)}};
}

// "--child peer:tasks:submitters:bursts": prints one sample as a line of JSON.
int child_main(const std::string& spec) {
  char peer[32] = {};
  std::size_t n = 0;
  int submitters = 0;
  int bursts = 0;
  if (std::sscanf(spec.c_str(), "%31[^:]:%zu:%d:%d", peer, &n, &submitters, &bursts) != 4 ||
      n < 2 || submitters < 1 || bursts < 1) {
    fmt::print(stderr, "bad --child spec '{}'\n", spec);
    return 2;
  }
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, kWorkers + 1);
  const std::string name = peer;
  nlohmann::json sample;
  if (name == "concur") {
    sample = run_sample<ConcurPeer>(n, submitters, bursts);
  } else if (name == "tbb_task_group") {
    sample = run_sample<TbbGroupPeer>(n, submitters, bursts);
  } else if (name == "tbb_future") {
    sample = run_sample<TbbFuturePeer>(n, submitters, bursts);
  } else {
    fmt::print(stderr, "unknown peer '{}'\n", name);
    return 2;
  }
  fmt::print("{}\n", sample.dump());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The parent: the sweep, the table, the charts.

double mem_available_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemAvailable:", 0) == 0) return std::stod(line.substr(13)) * 1024;
  }
  return NAN;
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", &tm);
  return text;
}

struct Point {
  std::vector<nlohmann::json> samples;
  std::string note;  // why it has none (skipped, failed)

  std::optional<double> median(const char* field) const {
    std::vector<double> v;
    for (const auto& s : samples) v.push_back(s.at(field).get<double>());
    if (v.empty()) return std::nullopt;
    return median_of(v);
  }
};

// points[{tasks, submitters, peer}]
using Key = std::tuple<std::size_t, int, std::string>;

int parent_main(int repetitions, std::size_t min_tasks, std::size_t max_tasks,
                std::size_t future_max_tasks, const std::string& chart_dir,
                const std::string& json_path) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::size_t> loads;
  for (std::size_t n = 1000; n <= max_tasks; n *= 10) {
    if (n >= min_tasks) loads.push_back(n);
  }
  if (loads.empty()) {
    fmt::print(stderr, "no load between --min-tasks and --max-tasks (powers of ten from 1000)\n");
    return 2;
  }

  std::map<Key, Point> points;
  std::map<std::string, double> bytes_estimate;  // per peer, from the last load measured
  const auto sweep_start = Clock::now();
  for (std::size_t li = 0; li < loads.size(); ++li) {
    const std::size_t n = loads[li];
    const int bursts =
        std::max(1, static_cast<int>(std::ceil(kTasksPerSample / static_cast<double>(n))));
    std::vector<const PeerInfo*> runnable;
    const double available = mem_available_bytes();
    for (const PeerInfo& peer : kPeers) {
      if (peer.name == std::string(kFuturePeer) && n > future_max_tasks) {
        for (int s : kSubmitterCounts) {
          points[{n, s, peer.name}].note = "not run: above --future-max-tasks";
        }
        continue;
      }
      const double per_task =
          (bytes_estimate.count(peer.name) ? bytes_estimate[peer.name] : 1024.0) +
          peer.result_bytes;
      const double need = 1.5 * per_task * static_cast<double>(n);
      if (std::isfinite(available) && need > 0.8 * available) {
        const std::string note =
            fmt::format("skipped: needs ~{}, {} available", concur::bench::format_bytes(need),
                        concur::bench::format_bytes(available));
        fmt::print(stderr, "{} at {} tasks: {}\n", peer.name, n, note);
        for (int s : kSubmitterCounts) points[{n, s, peer.name}].note = note;
      } else {
        runnable.push_back(&peer);
      }
    }
    for (int rep = 0; rep < repetitions; ++rep) {
      for (std::size_t si = 0; si < std::size(kSubmitterCounts); ++si) {
        const int s = kSubmitterCounts[si];
        for (std::size_t j = 0; j < runnable.size(); ++j) {
          const PeerInfo& peer =
              *runnable[(j + static_cast<std::size_t>(rep) + si) % runnable.size()];
          Point& point = points[{n, s, peer.name}];
          if (!point.note.empty()) continue;  // failed before: do not try again
          const auto result = concur::support::run_command(
              {self, "--child", fmt::format("{}:{}:{}:{}", peer.name, n, s, bursts)},
              std::chrono::minutes(10));
          try {
            if (result.exit_code != 0) throw std::runtime_error("");
            point.samples.push_back(nlohmann::json::parse(result.out));
          } catch (const std::exception&) {
            point.note =
                result.timed_out
                    ? "failed: timed out"
                    : fmt::format("failed: exit {}{}", result.exit_code,
                                  result.exit_code == -9 ? " (killed: out of memory?)" : "");
            fmt::print(stderr, "{} at {} tasks, {} submitters: {}\n{}\n", peer.name, n, s,
                       point.note, result.err);
          }
        }
      }
    }
    for (const PeerInfo* peer : runnable) {
      double worst = 0;
      for (int s : kSubmitterCounts) {
        if (auto b = points[{n, s, peer->name}].median("bytes_per_task"))
          worst = std::max(worst, *b);
      }
      if (worst > 0) bytes_estimate[peer->name] = worst;
    }
    fmt::print(stderr, "{} tasks done ({:.0f} s so far)\n", n, seconds(sweep_start, Clock::now()));
  }

  // The table.
  const concur::support::MachineInfo machine = concur::support::machine_info();
  const std::string date = today();
  using concur::bench::format_bytes;
  using concur::bench::format_number;
  using concur::bench::format_times;
  const std::string medians = repetitions == 1
                                  ? std::string("one repetition")
                                  : fmt::format("medians of {} repetitions", repetitions);
  fmt::print(
      "\nThread pool under load: N tiny tasks queued at once by S submitting threads, {} workers; "
      "{}, interleaved\nmachine: {}\ndate: {}\n\n",
      kWorkers, medians, concur::support::describe(machine), date);
  fmt::print("{:>9} {:>2}  {:<15} {:>9} {:>9} {:>11} {:>10} {:>9}\n", "tasks", "S", "peer",
             "tasks/s", "/ tg", "submit/s", "bytes/task", "/ tg");
  for (std::size_t n : loads) {
    for (int s : kSubmitterCounts) {
      const Point& ref = points[{n, s, kReference}];
      for (const PeerInfo& peer : kPeers) {
        const Point& p = points[{n, s, peer.name}];
        if (p.samples.empty()) {
          fmt::print("{:>9} {:>2}  {:<15} {}\n", n, s, peer.name,
                     p.note.empty() ? "no samples" : p.note);
          continue;
        }
        auto ratio = [&](const char* field) -> std::string {
          auto a = p.median(field);
          auto b = ref.median(field);
          if (peer.name == std::string(kReference) || !a || !b || *b <= 0) return "";
          return format_times(*a / *b);
        };
        fmt::print("{:>9} {:>2}  {:<15} {:>9} {:>9} {:>11} {:>10} {:>9}\n", n, s, peer.name,
                   format_number(*p.median("tasks_per_s")), ratio("tasks_per_s"),
                   format_number(*p.median("submit_per_s")),
                   format_bytes(*p.median("bytes_per_task")), ratio("bytes_per_task"));
      }
    }
  }
  fmt::print(
      "\ntasks/s: ungated, first submit to all awaited. submit/s: the gated run's submitting "
      "alone.\nbytes/task: RSS growth with all N pending / N. / tg: this peer / oneTBB "
      "task_group (tasks/s: higher is better; bytes: lower is better).\n");

  // The charts.
  if (!chart_dir.empty()) {
    std::filesystem::create_directories(chart_dir);
    const std::string caption =
        fmt::format("{} cores ({}), {}; {}; {} workers; {}", machine.cores, machine.cpu_model,
                    machine.kernel, date, kWorkers, medians);
    auto chart = [&](const char* title, const char* field, const char* y_label, bool y_log) {
      concur::bench::LineChart c;
      c.title = title;
      c.x = {"tasks queued at once", true};
      c.y = {y_label, y_log};
      c.caption = caption;
      for (const PeerInfo& peer : kPeers) {
        if (!peer.charted) continue;
        for (int s : kSubmitterCounts) {
          concur::bench::ChartSeries series;
          series.name = fmt::format("{}, {} submitter{}", peer.label, s, s == 1 ? "" : "s");
          for (std::size_t n : loads) {
            const auto m = points[{n, s, peer.name}].median(field);
            series.points.emplace_back(static_cast<double>(n), m ? *m : NAN);
          }
          c.series.push_back(std::move(series));
        }
      }
      return c;
    };
    const std::string throughput = chart_dir + "/thread-pool-throughput.svg";
    const std::string memory = chart_dir + "/thread-pool-memory-per-task.svg";
    concur::bench::write_svg(chart("Thread pool throughput as the queue grows (oneTBB: task_group)",
                                   "tasks_per_s", "tasks/s", true),
                             throughput);
    concur::bench::write_svg(chart("Thread pool memory per pending task (oneTBB: task_group)",
                                   "bytes_per_task", "bytes per pending task", false),
                             memory);
    fmt::print("wrote {} and {}\n", throughput, memory);
  }

  if (!json_path.empty()) {
    nlohmann::json out;
    out["title"] = "thread_pool_curve: N tiny tasks queued at once, 2 workers";
    out["machine"] = concur::support::describe(machine);
    out["date"] = date;
    out["workers"] = kWorkers;
    out["repetitions"] = repetitions;
    for (auto& [key, p] : points) {
      const auto& [n, s, peer] = key;
      nlohmann::json row = {
          {"tasks", n}, {"submitters", s}, {"peer", peer}, {"samples", p.samples}};
      if (!p.note.empty()) row["note"] = p.note;
      for (const char* field : {"tasks_per_s", "submit_per_s", "bytes_per_task",
                                "minor_faults_per_task", "minor_faults_per_task_gated"}) {
        if (auto m = p.median(field)) row["median"][field] = *m;
      }
      out["points"].push_back(row);
    }
    std::ofstream(json_path) << out.dump(2) << '\n';
    fmt::print("wrote {}\n", json_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "How concur::ThreadPoolExecutor's throughput and memory per pending task grow "
      "with the number of tasks queued at once, beside oneTBB"};
  int repetitions = 3;
  std::size_t min_tasks = 1000;
  std::size_t max_tasks = 10'000'000;
  std::string chart_dir;
  std::string json_path;
  std::string child;
  app.add_option("--repetitions", repetitions, "samples per point (medians are reported)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--min-tasks", min_tasks, "the smallest load of the sweep (powers of ten)")
      ->capture_default_str();
  app.add_option("--max-tasks", max_tasks, "the largest load of the sweep")->capture_default_str();
  std::size_t future_max_tasks = 1'000'000;
  app.add_option("--future-max-tasks", future_max_tasks,
                 "the largest load for oneTBB arena + std::future (slow to fill at 10^7)")
      ->capture_default_str();
  app.add_option("--chart-dir", chart_dir, "write the two SVG charts into this directory")
      ->type_name("DIR");
  app.add_option("--json", json_path, "write every sample and the medians to this file")
      ->type_name("FILE");
  app.add_option("--child", child, "internal: run one sample")->group("");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!child.empty()) return child_main(child);
    return parent_main(repetitions, min_tasks, max_tasks, future_max_tasks, chart_dir, json_path);
  } catch (const std::exception& e) {
    fmt::print(stderr, "thread_pool_curve: {}\n", e.what());
    return 1;
  }
}
