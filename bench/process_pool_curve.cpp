// bench/process_pool_curve: how process-pool throughput grows with the number of worker
// processes (issue 22), concur::ProcessPoolExecutor beside CPython's multiprocessing.Pool(n), at
// 1, 2, 3, 4, 6 and 8 workers, on two workloads:
//
//   tiny   20,000 tasks int f(int) (x + 1), all submitted, then every result read: the
//          coordinating process (sending tasks, receiving results) is the limit, not the workers.
//          concur: submit() each, then result() of each. CPython: Pool.map(f, range(N),
//          chunksize=1), every task its own message as with submit(); of Pool's per-task ways it
//          is the fastest here (apply_async per task measured ~1.5x slower, imap about the same).
//          Figure: tasks/s, and concur's ratio to CPython.
//   cpu    1,000 tasks of fixed arithmetic (K rounds of an integer LCG, the same recurrence on
//          both sides), submitted at once, every result read and checked: the cores are the
//          limit. The same loop runs tens of times faster in C++ than in Python, so each side's K
//          is calibrated in this run to take about 1 ms alone on a core in that language, and the
//          figure is the speed-up over the same implementation's own 1-worker throughput: a
//          scaling curve, comparable across the two. Ideal: min(workers, cores).
//
// Past the cores this process may use (support/cores.hpp; 2 here) a pool is oversubscribed:
// more busy workers than cores, so the cpu curve can only stay flat (or sag), and the tiny curve
// shows what the extra processes cost the coordinator. The table marks those rows, the charts say
// so in their captions and draw the core count as a dashed line.
//
// Every measurement makes its own pool of n workers and warms it (every worker started and
// having run a task) before the clock runs, so process start-up is not timed. concur uses its
// default start method, forkserver; CPython its own default (fork on Linux up to 3.13). CPython
// is measured by bench/peers/cpython_process_pool_curve.py, one run of the script per worker
// count and repetition. Repetitions interleave: each one sweeps every (worker count, peer) cell,
// starting at a different cell (an odd step, so which peer goes first in a worker count
// alternates too), so a noisy moment on a shared machine is spread over the curve instead of
// bending it. Medians of the repetitions.
//
// Usage: process_pool_curve [--python PATH] [--repetitions N] [--json FILE] [--chart-dir DIR]
//                           [--quick] [--workers 1,2,3,4,6,8]
//   --python       the CPython peer's interpreter (default /usr/bin/python3); if it cannot run,
//                  the peer is reported as skipped with the reason
//   --repetitions  default 3
//   --json FILE    also write every sample and median as JSON
//   --chart-dir    write process-pool-throughput.svg (tiny tasks/s by workers, log y) and
//                  process-pool-scaling.svg (cpu speed-up by workers, with the ideal) there
//   --quick        a tenth of the tasks (a smoke run, not figures)
//   --workers      the worker counts (1 is always measured: it is the scaling baseline)
// The full default sweep takes about a minute on 2 cores (--quick: a few seconds).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/process_pool.hpp>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/chart.hpp"
#include "common/format.hpp"
#include "cores.hpp"
#include "machine.hpp"
#include "python.hpp"
#include "stats.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using concur::bench::format_number;
using concur::bench::format_times;
using concur::support::median_of;
using nlohmann::json;

// No single wait may hang the run: a stuck pool fails its measurement instead.
constexpr auto kResultTimeout = std::chrono::seconds(300);
constexpr auto kPythonTimeout = std::chrono::seconds(600);
constexpr const char* kPeerScript = "cpython_process_pool_curve.py";
constexpr const char* kConcur = "concur";
constexpr const char* kCpython = "cpython_pool";

struct Settings {
  std::string python = concur::support::kDefaultPython;
  std::string json_path;
  std::string chart_dir;
  bool quick = false;
  int repetitions = 3;
  std::vector<int> workers{1, 2, 3, 4, 6, 8};
  int tiny_tasks = 20'000;
  int cpu_tasks = 1'000;
  double cpu_ms = 1.0;
};

// ---------------------------------------------------------------------------------------------
// The tasks. They run in the workers, which re-run this program up to main_guard().

int inc(int x) {
  return x + 1;
}
CONCUR_REGISTER(inc);

int nap_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
CONCUR_REGISTER(nap_ms);

// k rounds of an LCG modulo 2^31: each round needs the last, so the compiler can neither
// vectorise nor fold it, and the work grows exactly with k. The Python peer runs the same.
std::uint32_t spin(std::uint64_t k) {
  std::uint32_t x = 1;
  for (std::uint64_t i = 0; i < k; ++i) x = (x * 1103515245u + 12345u) & 0x7fffffffu;
  return x;
}
CONCUR_REGISTER(spin);

// ---------------------------------------------------------------------------------------------

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double time_spin(std::uint64_t k) {
  const auto t0 = Clock::now();
  volatile std::uint32_t sink = spin(k);  // volatile: the call may not be dropped
  (void)sink;
  return seconds_since(t0);
}

struct Calibration {
  std::uint64_t iterations = 0;
  double task_ms = 0;  // what one call of that many takes, fastest of several
};

// The k for which spin(k) takes about target_ms here, as the Python peer finds its own: double k
// until a call takes 2 ms, then the fastest of 20 calls (calls this short mostly escape
// preemption, so on a shared machine the fastest is the work itself).
Calibration calibrate(double target_ms) {
  std::uint64_t k = 1024;
  while (time_spin(k) < 0.002) k *= 2;
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 20; ++i) best = std::min(best, time_spin(k));
  Calibration c;
  c.iterations = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(static_cast<double>(k) * target_ms / 1e3 / best)));
  c.task_ms = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 20; ++i) c.task_ms = std::min(c.task_ms, time_spin(c.iterations) * 1e3);
  return c;
}

// A pool of n workers, every one of them started before the clock runs. Workers start on demand:
// the first submit starts one, and the pool starts another only when work queues behind busy
// ones, so rounds of overlapping naps (more naps than workers) bring up all n.
class WarmPool {
 public:
  explicit WarmPool(std::size_t workers) : pool_({.max_workers = workers}) {
    for (int attempt = 0; attempt < 50 && pool_.processes_started() < workers; ++attempt) {
      std::vector<concur::Future<int>> naps;
      for (std::size_t i = 0; i < 4 * workers; ++i) naps.push_back(pool_.submit(nap_ms, 5));
      for (auto& f : naps) f.result(kResultTimeout);
    }
    if (pool_.processes_started() != workers) {
      throw std::runtime_error(
          fmt::format("warm-up started {} workers, not {}", pool_.processes_started(), workers));
    }
  }
  concur::ProcessPoolExecutor* operator->() { return &pool_; }

 private:
  concur::ProcessPoolExecutor pool_;
};

double concur_tiny(std::size_t workers, int n) {
  WarmPool pool(workers);
  std::vector<concur::Future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) futures.push_back(pool->submit(inc, i));
  long sum = 0;
  for (auto& f : futures) sum += f.result(kResultTimeout);
  const double dt = seconds_since(t0);
  if (sum != static_cast<long>(n) * (n + 1) / 2) throw std::runtime_error("wrong sum of results");
  return n / dt;
}

double concur_cpu(std::size_t workers, int n, std::uint64_t iterations) {
  const std::uint32_t expected = spin(iterations);
  WarmPool pool(workers);
  std::vector<concur::Future<std::uint32_t>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) futures.push_back(pool->submit(spin, iterations));
  bool wrong = false;
  for (auto& f : futures) wrong = f.result(kResultTimeout) != expected || wrong;
  const double dt = seconds_since(t0);
  if (wrong) throw std::runtime_error("a task returned a wrong value");
  return n / dt;
}

// ---------------------------------------------------------------------------------------------
// The samples, and what went wrong where.

struct Samples {
  std::vector<double> tiny;  // tasks/s, one per repetition
  std::vector<double> cpu;   // tasks/s
  std::vector<std::string> errors;
};

struct Peer {
  Peer(std::string name_, std::string label_) : name(std::move(name_)), label(std::move(label_)) {}

  std::string name;   // "concur", "cpython_pool"
  std::string label;  // in the table and the charts
  std::optional<std::string> skipped;
  Calibration calibration;
  std::map<int, Samples> by_workers;

  std::optional<double> median(int workers, std::vector<double> Samples::*which) const {
    const auto it = by_workers.find(workers);
    if (it == by_workers.end() || (it->second.*which).empty()) return std::nullopt;
    return median_of(it->second.*which);
  }
  // cpu throughput at n over the same peer's at 1 worker.
  std::optional<double> speedup(int workers) const {
    const auto base = median(1, &Samples::cpu);
    const auto at = median(workers, &Samples::cpu);
    if (!base || !at || *base <= 0) return std::nullopt;
    return *at / *base;
  }
};

struct CpythonInfo {
  std::string version = "?";
  std::string start_method = "?";
};

void run_concur_cell(Peer& peer, int workers, const Settings& s) {
  Samples& cell = peer.by_workers[workers];
  const auto n = static_cast<std::size_t>(workers);
  try {
    cell.tiny.push_back(concur_tiny(n, s.tiny_tasks));
  } catch (const std::exception& e) {
    cell.errors.push_back(fmt::format("tiny: {}", e.what()));
  }
  try {
    cell.cpu.push_back(concur_cpu(n, s.cpu_tasks, peer.calibration.iterations));
  } catch (const std::exception& e) {
    cell.errors.push_back(fmt::format("cpu: {}", e.what()));
  }
}

void run_cpython_cell(Peer& peer, int workers, const Settings& s,
                      const concur::support::Python& python) {
  Samples& cell = peer.by_workers[workers];
  try {
    const json r =
        python.run_json(kPeerScript,
                        {"--workers", std::to_string(workers), "--tiny-tasks",
                         std::to_string(s.tiny_tasks), "--cpu-tasks", std::to_string(s.cpu_tasks),
                         "--cpu-iterations", std::to_string(peer.calibration.iterations)},
                        kPythonTimeout);
    if (r.contains("tiny_tasks_per_s")) cell.tiny.push_back(r["tiny_tasks_per_s"].get<double>());
    if (r.contains("cpu_tasks_per_s")) cell.cpu.push_back(r["cpu_tasks_per_s"].get<double>());
    for (const auto& [workload, why] : r.value("errors", json::object()).items()) {
      cell.errors.push_back(fmt::format("{}: {}", workload, why.get<std::string>()));
    }
  } catch (const std::exception& e) {
    cell.errors.push_back(e.what());
  }
}

// The peer script's calibration run, which also says whether CPython can run here at all.
CpythonInfo prepare_cpython(Peer& peer, const Settings& s, const concur::support::Python& python) {
  CpythonInfo info;
  if (python.unavailable()) {
    peer.skipped = *python.unavailable();
    return info;
  }
  try {
    const json r = python.run_json(
        kPeerScript, {"--calibrate", "--cpu-ms", fmt::format("{}", s.cpu_ms)}, kPythonTimeout);
    peer.calibration.iterations = r.at("cpu_iterations").get<std::uint64_t>();
    peer.calibration.task_ms = r.at("task_ms").get<double>();
    info.version = r.value("version", "?");
    info.start_method = r.value("start_method", "?");
  } catch (const std::exception& e) {
    peer.skipped = e.what();
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// Output.

std::string cell_text(std::optional<double> v) {
  return v ? format_number(*v) : "-";
}

std::string today_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d", &tm);
  return text;
}

std::string ratio_text(std::optional<double> a, std::optional<double> b) {
  return a && b && *b > 0 ? format_times(*a / *b) : "-";
}

void print_tables(const std::vector<Peer>& peers, const Settings& s, unsigned cores) {
  const Peer& ours = peers[0];
  const Peer& py = peers[1];
  auto workers_text = [&](int w) {
    return fmt::format("{}{}", w, static_cast<unsigned>(w) > cores ? " *" : "");
  };
  fmt::print("\ntiny: {} tasks x+1 [tasks/s, higher is better; medians]\n", s.tiny_tasks);
  fmt::print("{:>9}  {:>10}  {:>10}  {:>14}\n", "workers", ours.label, py.label, "concur/CPython");
  for (int w : s.workers) {
    const auto ot = ours.median(w, &Samples::tiny);
    const auto pt = py.median(w, &Samples::tiny);
    fmt::print("{:>9}  {:>10}  {:>10}  {:>14}\n", workers_text(w), cell_text(ot), cell_text(pt),
               ratio_text(ot, pt));
  }
  fmt::print(
      "\ncpu: {} tasks of ~{:g} ms [speed-up over the same pool's 1-worker throughput, higher is "
      "better; medians; (tasks/s)]\n",
      s.cpu_tasks, s.cpu_ms);
  fmt::print("{:>9}  {:>16}  {:>16}  {:>6}  {:>14}\n", "workers", ours.label, py.label, "ideal",
             "concur/CPython");
  auto scaling_text = [](const Peer& p, int w) {
    const auto su = p.speedup(w);
    const auto rate = p.median(w, &Samples::cpu);
    if (!rate) return std::string("-");
    return fmt::format("{} ({})", su ? format_times(*su) : "-", format_number(*rate));
  };
  for (int w : s.workers) {
    fmt::print("{:>9}  {:>16}  {:>16}  {:>6}  {:>14}\n", workers_text(w), scaling_text(ours, w),
               scaling_text(py, w), format_times(std::min<double>(w, cores)),
               ratio_text(ours.speedup(w), py.speedup(w)));
  }
  fmt::print(
      "\n* oversubscribed: more workers than the {} cores this process may use (the cpu speed-up "
      "cannot pass {}; the coordinating process shares the cores too)\n",
      cores, cores);
  for (const Peer& p : peers) {
    if (p.skipped) fmt::print("{}: skipped: {}\n", p.label, *p.skipped);
    for (const auto& [w, cell] : p.by_workers) {
      for (const std::string& e : cell.errors) {
        fmt::print("{} at {} workers: failed: {}\n", p.label, w, e);
      }
    }
  }
}

json to_json(const std::vector<Peer>& peers, const Settings& s, unsigned cores,
             const std::string& machine, const CpythonInfo& cpython) {
  json out{{"machine", machine},
           {"date", today_utc()},
           {"cores", cores},
           {"repetitions", s.repetitions},
           {"tiny_tasks", s.tiny_tasks},
           {"cpu_tasks", s.cpu_tasks},
           {"python", s.python},
           {"cpython_version", cpython.version},
           {"cpython_start_method", cpython.start_method},
           {"peers", json::object()}};
  for (const Peer& p : peers) {
    json peer{{"label", p.label}};
    if (p.skipped) peer["skipped"] = *p.skipped;
    peer["cpu_iterations"] = p.calibration.iterations;
    peer["cpu_task_ms"] = p.calibration.task_ms;
    json rows = json::array();
    for (int w : s.workers) {
      json row{{"workers", w}, {"oversubscribed", static_cast<unsigned>(w) > cores}};
      if (auto it = p.by_workers.find(w); it != p.by_workers.end()) {
        row["tiny_tasks_per_s"] = it->second.tiny;
        row["cpu_tasks_per_s"] = it->second.cpu;
        if (!it->second.errors.empty()) row["errors"] = it->second.errors;
      }
      if (auto m = p.median(w, &Samples::tiny)) row["tiny_tasks_per_s_median"] = *m;
      if (auto m = p.median(w, &Samples::cpu)) row["cpu_tasks_per_s_median"] = *m;
      if (auto m = p.speedup(w)) row["cpu_speedup"] = *m;
      rows.push_back(row);
    }
    peer["by_workers"] = rows;
    out["peers"][p.name] = peer;
  }
  return out;
}

// A vertical dashed line at x = cores, spanning the y values drawn (so it does not stretch the
// axis): where oversubscription starts.
concur::bench::ChartSeries core_line(unsigned cores, double y_lo, double y_hi) {
  const auto x = static_cast<double>(cores);
  // The legend column is narrow; the caption says what lies past the line.
  return {fmt::format("{} cores", cores), {{x, y_lo}, {x, y_hi}}, true};
}

void write_charts(const std::vector<Peer>& peers, const Settings& s, unsigned cores,
                  const concur::support::MachineInfo& machine, const CpythonInfo& cpython) {
  namespace fs = std::filesystem;
  fs::create_directories(s.chart_dir);
  // One line under a 760-pixel chart: about 120 characters at most.
  const std::string caption = fmt::format(
      "{}, {} cores; {}; medians of {} runs; {}; oversubscribed past {} cores", machine.cpu_model,
      machine.cores, today_utc(), s.repetitions,
      peers[1].skipped ? "CPython skipped"
                       : fmt::format("CPython {} ({})", cpython.version, cpython.start_method),
      cores);
  // A skipped peer has no series (its legend entry would name nothing drawn); the core line only
  // when some worker count passes it.
  const bool oversubscribed = static_cast<unsigned>(s.workers.back()) > cores;

  concur::bench::LineChart throughput{
      .title =
          fmt::format("Process pools: {} tiny tasks, submitted then all results", s.tiny_tasks),
      .x = {.label = "worker processes", .log = false},
      .y = {.label = "tasks/s", .log = true},
      .series = {},
      .caption = caption};
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const Peer& p : peers) {
    if (p.skipped) continue;
    concur::bench::ChartSeries series{p.label, {}, false};
    for (int w : s.workers) {
      const auto m = p.median(w, &Samples::tiny);
      series.points.emplace_back(w, m ? *m : NAN);
      if (m && *m > 0) lo = std::min(lo, *m), hi = std::max(hi, *m);
    }
    throughput.series.push_back(std::move(series));
  }
  if (oversubscribed && hi > 0) throughput.series.push_back(core_line(cores, lo, hi));
  concur::bench::write_svg(throughput,
                           (fs::path(s.chart_dir) / "process-pool-throughput.svg").string());

  concur::bench::LineChart scaling{
      .title = fmt::format("Process pools: {} CPU-bound tasks of ~{:g} ms, speed-up over 1 worker",
                           s.cpu_tasks, s.cpu_ms),
      .x = {.label = "worker processes", .log = false},
      .y = {.label = "speed-up over the same pool's 1 worker", .log = false},
      .series = {},
      .caption = caption};
  hi = 0;
  for (const Peer& p : peers) {
    if (p.skipped) continue;
    concur::bench::ChartSeries series{p.label, {}, false};
    for (int w : s.workers) {
      const auto m = p.speedup(w);
      series.points.emplace_back(w, m ? *m : NAN);
      if (m) hi = std::max(hi, *m);
    }
    scaling.series.push_back(std::move(series));
  }
  concur::bench::ChartSeries ideal{fmt::format("ideal: min(n, {})", cores), {}, true};
  for (int w : s.workers) {
    ideal.points.emplace_back(w, std::min<double>(w, cores));
    hi = std::max<double>(hi, std::min<double>(w, cores));
  }
  scaling.series.push_back(std::move(ideal));
  if (oversubscribed) scaling.series.push_back(core_line(cores, 0, hi));
  concur::bench::write_svg(scaling, (fs::path(s.chart_dir) / "process-pool-scaling.svg").string());
  fmt::print("charts: {}/process-pool-throughput.svg, {}/process-pool-scaling.svg\n", s.chart_dir,
             s.chart_dir);
}

// ---------------------------------------------------------------------------------------------

void add_options(CLI::App& app, Settings& s) {
  app.add_option("--python", s.python, "the CPython the Pool peer runs under")
      ->capture_default_str();
  app.add_option("--repetitions", s.repetitions, "repetitions of the whole sweep (medians)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--json", s.json_path, "also write every sample and median as JSON");
  app.add_option("--chart-dir", s.chart_dir,
                 "write process-pool-throughput.svg and process-pool-scaling.svg there");
  app.add_flag("--quick", s.quick, "a tenth of the tasks: a smoke run, not figures");
  app.add_option("--workers", s.workers, "worker counts (1 is always measured)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);  // workers re-run this program: they stop here

  Settings s;
  CLI::App app{
      "process-pool throughput by worker count, concur beside CPython's multiprocessing.Pool "
      "(bench/process_pool_curve.cpp)"};
  add_options(app, s);
  CLI11_PARSE(app, argc, argv);
  if (s.quick) {
    s.tiny_tasks /= 10;
    s.cpu_tasks /= 10;
  }
  s.workers.push_back(1);
  std::sort(s.workers.begin(), s.workers.end());
  s.workers.erase(std::unique(s.workers.begin(), s.workers.end()), s.workers.end());

  const concur::support::MachineInfo machine = concur::support::machine_info();
  const std::string machine_text = concur::support::describe(machine);
  const unsigned cores = concur::support::usable_cores();
  const concur::support::Python python(s.python);

  std::vector<Peer> peers{{kConcur, "concur"}, {kCpython, "CPython"}};
  // Calibrated before any pool exists, each in its own language, with the machine as quiet as
  // this run leaves it.
  peers[0].calibration = calibrate(s.cpu_ms);
  const CpythonInfo cpython = prepare_cpython(peers[1], s, python);

  fmt::print(
      "Process pools by worker count (issue 22): concur::ProcessPoolExecutor (forkserver) beside "
      "{}; {} repetitions, interleaved; medians\n",
      peers[1].skipped ? "CPython skipped (see below)"
                       : fmt::format("CPython {}'s multiprocessing.Pool ({})", cpython.version,
                                     cpython.start_method),
      s.repetitions);
  fmt::print("machine: {}; {} usable cores\n", machine_text, cores);
  fmt::print(
      "tiny: {} tasks x+1, all submitted then every result (CPython: Pool.map chunksize=1); "
      "warm pools, start-up excluded\n",
      s.tiny_tasks);
  fmt::print(
      "cpu: {} tasks of an LCG loop, ~{:g} ms each alone on a core: concur {} rounds "
      "({:.2f} ms), CPython {} ({})\n",
      s.cpu_tasks, s.cpu_ms, peers[0].calibration.iterations, peers[0].calibration.task_ms,
      peers[1].calibration.iterations,
      peers[1].skipped ? "skipped" : fmt::format("{:.2f} ms", peers[1].calibration.task_ms));
  std::fflush(stdout);

  // Every (worker count, peer) cell, each repetition starting at a different one.
  struct Cell {
    int workers;
    std::size_t peer;
  };
  std::vector<Cell> cells;
  for (int w : s.workers) {
    for (std::size_t p = 0; p < peers.size(); ++p) cells.push_back({w, p});
  }
  const std::size_t step =
      std::max<std::size_t>(1, cells.size() / static_cast<std::size_t>(s.repetitions)) | 1;
  for (int rep = 0; rep < s.repetitions; ++rep) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const Cell& c = cells[(i + static_cast<std::size_t>(rep) * step) % cells.size()];
      Peer& peer = peers[c.peer];
      if (peer.skipped) continue;
      const std::size_t errors_before = peer.by_workers[c.workers].errors.size();
      if (c.peer == 0) {
        run_concur_cell(peer, c.workers, s);
      } else {
        run_cpython_cell(peer, c.workers, s, python);
      }
      const Samples& cell = peer.by_workers[c.workers];
      fmt::print(
          "  rep {}/{}  {:>7} {} workers: tiny {} tasks/s, cpu {} tasks/s{}\n", rep + 1,
          s.repetitions, peer.label, c.workers,
          cell.tiny.empty() ? "-" : format_number(cell.tiny.back()),
          cell.cpu.empty() ? "-" : format_number(cell.cpu.back()),
          cell.errors.size() == errors_before ? "" : " (failed: " + cell.errors.back() + ")");
      std::fflush(stdout);
    }
  }

  print_tables(peers, s, cores);
  try {
    if (!s.chart_dir.empty()) write_charts(peers, s, cores, machine, cpython);
    if (!s.json_path.empty()) {
      std::FILE* f = std::fopen(s.json_path.c_str(), "w");
      if (f == nullptr) throw std::runtime_error("cannot write " + s.json_path);
      fmt::print(f, "{}\n", to_json(peers, s, cores, machine_text, cpython).dump(2));
      std::fclose(f);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "process_pool_curve: {}\n", e.what());
    return 1;
  }
  bool failed = false;
  for (const Peer& p : peers) {
    for (const auto& [w, cell] : p.by_workers) failed = failed || !cell.errors.empty();
  }
  return failed ? 1 : 0;
}
