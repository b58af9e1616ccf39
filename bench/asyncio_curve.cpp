// bench/asyncio_curve: asyncio create + gather from 10^3 to 10^6 tasks, cold and warm, beside the
// bare C++20 coroutine floor (issue 22).
//
// One round: create N tasks (each `co_return`s its argument) with asyncio::create_task, gather
// them, and read the N results, written as a user would (the handles' vector is reserved and
// gather's result vector allocated inside the timed region). Four series per N:
//
//   concur cold  the first round of a fresh process: this program runs itself as a child
//                (`asyncio_curve --cold-child concur N`), which starts asyncio::run() and times
//                one round inside the running loop; the loop's own start is not timed.
//   concur warm  in one running loop, one warm-up round of N, then repeated rounds of N (the
//                sample is their median): frames, the ready queue and the vectors' pages come
//                from what the earlier rounds left behind.
//   floor cold   the bare C++20 coroutine floor in a fresh process (`--cold-child floor N`).
//   floor warm   the same floor after a warm-up round, repeated.
//
// What the floor includes, exactly: a minimal hand-written coroutine type (initial and final
// suspend always, the result in the promise) whose frames come from the global operator new
// (glibc malloc); a round reserves a vector of N handles and creates the N frames into it, then
// for each handle resumes it once (it runs to its final suspend), reads its result into a vector
// of N ints and destroys the frame (free). No loop, no scheduler, no ready queue, no task state,
// no cancellation, no awaiter links, no exception transport: what is left of create + gather
// once everything asyncio means is taken away.
//
// Minor faults per task: getrusage(RUSAGE_SELF).ru_minflt across the timed region, over N. The
// medians are over --repetitions samples per series and N, interleaved (each repetition runs every
// N and every series once, in turn), so a noisy minute of a shared machine spreads over all of
// them.
//
// Usage: asyncio_curve [--repetitions R] [--rounds K] [--sizes N...] [--json FILE]
//                      [--chart-dir DIR]
//        asyncio_curve --cold-child concur|floor N   (internal: one cold sample, printed)
//   --chart-dir DIR writes DIR/asyncio-create-gather.svg (tasks/s against tasks, both log).
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <concur/asyncio.hpp>
#include <coroutine>
#include <cstdio>
#include <ctime>
#include <exception>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/chart.hpp"
#include "common/format.hpp"
#include "machine.hpp"

namespace {

namespace asyncio = concur::asyncio;
using Clock = std::chrono::steady_clock;

// One timed round: its wall time and the minor page faults taken during it.
struct Sample {
  double seconds = 0;
  long faults = 0;
};

long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// ---------------------------------------------------------------------------------------------
// concur: create + gather.

asyncio::Task<int> identity(int x) {
  co_return x;
}

asyncio::Task<Sample> concur_round(int n) {
  long f0 = minor_faults();
  auto t0 = Clock::now();
  std::vector<asyncio::Task<int>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) tasks.push_back(asyncio::create_task(identity(i)));
  std::vector<int> out = co_await asyncio::gather(std::move(tasks));
  Sample s{std::chrono::duration<double>(Clock::now() - t0).count(), minor_faults() - f0};
  for (int i = 0; i < n; ++i) {
    if (out[static_cast<std::size_t>(i)] != i) throw std::runtime_error("concur: wrong result");
  }
  co_return s;
}

// A warm-up round, then `rounds` timed ones, all in one running loop.
asyncio::Task<std::vector<Sample>> concur_warm(int n, int rounds) {
  co_await concur_round(n);
  std::vector<Sample> out;
  for (int r = 0; r < rounds; ++r) out.push_back(co_await concur_round(n));
  co_return out;
}

// ---------------------------------------------------------------------------------------------
// The floor: the least a C++20 coroutine costs (see the header for what it includes).

struct Bare {
  struct promise_type {
    int value = 0;
    Bare get_return_object() noexcept {
      return Bare{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_value(int v) noexcept { value = v; }
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

// Not inlined, so that each call is a real frame allocation as a task's is (the handles escape
// into a vector anyway, which rules out eliding the allocation).
[[gnu::noinline]] Bare bare_identity(int x) {
  co_return x;
}

Sample floor_round(int n) {
  long f0 = minor_faults();
  auto t0 = Clock::now();
  std::vector<std::coroutine_handle<Bare::promise_type>> frames;
  frames.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) frames.push_back(bare_identity(i).handle);
  std::vector<int> out(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < frames.size(); ++i) {
    frames[i].resume();
    out[i] = frames[i].promise().value;
    frames[i].destroy();
  }
  Sample s{std::chrono::duration<double>(Clock::now() - t0).count(), minor_faults() - f0};
  for (int i = 0; i < n; ++i) {
    if (out[static_cast<std::size_t>(i)] != i) throw std::runtime_error("floor: wrong result");
  }
  return s;
}

std::vector<Sample> floor_warm(int n, int rounds) {
  floor_round(n);
  std::vector<Sample> out;
  for (int r = 0; r < rounds; ++r) out.push_back(floor_round(n));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cold samples: this program again, as a child, for a process that has done nothing before.

std::string self_path() {
  char buf[4096];
  ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (len <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf, static_cast<std::size_t>(len));
}

int cold_child(const std::string& mode, int n) {
  Sample s = mode == "concur" ? asyncio::run(concur_round(n)) : floor_round(n);
  fmt::print("{:.9f} {}\n", s.seconds, s.faults);
  return 0;
}

Sample cold_sample(const std::string& self, const std::string& mode, int n) {
  std::string cmd = fmt::format("'{}' --cold-child {} {}", self, mode, n);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  Sample s;
  int got = std::fscanf(p, "%lf %ld", &s.seconds, &s.faults);
  int status = pclose(p);
  if (got != 2 || status != 0) throw std::runtime_error("cold child failed: " + cmd);
  return s;
}

// ---------------------------------------------------------------------------------------------

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

struct Series {
  std::string name;
  bool cold;
  bool concur;
  // Per N: each sample's tasks/s and faults per task.
  std::vector<std::vector<double>> rate;
  std::vector<std::vector<double>> faults;
};

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::localtime(&t));
  return buf;
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{
      "asyncio create + gather from 10^3 to 10^6 tasks, cold and warm, beside the bare C++20 "
      "coroutine floor"};
  int repetitions = 5;
  int rounds = 3;
  std::vector<int> sizes{1'000, 10'000, 100'000, 1'000'000};
  std::string json_path;
  std::string chart_dir;
  std::vector<std::string> child;
  app.add_option("--repetitions", repetitions, "samples per series and size, interleaved")
      ->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds,
                 "timed rounds after the warm-up in a warm sample (their median is the sample); "
                 "small sizes run more, to time at least 100,000 tasks")
      ->check(CLI::PositiveNumber);
  app.add_option("--sizes", sizes, "the task counts")->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "write the results as JSON to FILE");
  app.add_option("--chart-dir", chart_dir, "write asyncio-create-gather.svg into DIR");
  app.add_option("--cold-child", child, "internal: one cold sample (concur|floor N)")->expected(2);
  CLI11_PARSE(app, argc, argv);
  if (!child.empty()) return cold_child(child[0], std::stoi(child[1]));

  const std::string self = self_path();
  std::vector<Series> series{{"concur cold", true, true, {}, {}},
                             {"concur warm", false, true, {}, {}},
                             {"floor cold", true, false, {}, {}},
                             {"floor warm", false, false, {}, {}}};
  for (Series& s : series) {
    s.rate.resize(sizes.size());
    s.faults.resize(sizes.size());
  }
  for (int rep = 0; rep < repetitions; ++rep) {
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      const int n = sizes[k];
      const int warm_rounds = std::max(rounds, 100'000 / n);
      for (Series& s : series) {
        std::vector<Sample> got;
        if (s.cold) {
          got.push_back(cold_sample(self, s.concur ? "concur" : "floor", n));
        } else if (s.concur) {
          got = asyncio::run(concur_warm(n, warm_rounds));
        } else {
          got = floor_warm(n, warm_rounds);
        }
        std::vector<double> rate, faults;
        for (const Sample& g : got) {
          rate.push_back(n / g.seconds);
          faults.push_back(static_cast<double>(g.faults) / n);
        }
        s.rate[k].push_back(median(rate));
        s.faults[k].push_back(median(faults));
      }
    }
  }

  const concur::support::MachineInfo info = concur::support::machine_info();
  const std::string machine = concur::support::describe(info);
  const std::string date = today();
  fmt::print("asyncio create + gather, medians of {} repetitions, interleaved; {}\nmachine: {}\n\n",
             repetitions, date, machine);
  fmt::print("{:>9} |", "tasks");
  for (const Series& s : series) fmt::print(" {:>12} {:>8} |", s.name, "flt/task");
  fmt::print("\n");
  nlohmann::json results = nlohmann::json::array();
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    fmt::print("{:>9} |", sizes[k]);
    for (const Series& s : series) {
      double r = median(s.rate[k]);
      double f = median(s.faults[k]);
      fmt::print(" {:>12} {:>8.3f} |", concur::bench::format_number(r) + "/s", f);
      results.push_back({{"tasks", sizes[k]},
                         {"series", s.name},
                         {"tasks_per_s", r},
                         {"minor_faults_per_task", f},
                         {"samples_tasks_per_s", s.rate[k]},
                         {"samples_minor_faults_per_task", s.faults[k]}});
    }
    fmt::print("\n");
  }

  if (!json_path.empty()) {
    nlohmann::json out{{"benchmark", "asyncio_curve"},
                       {"machine", machine},
                       {"date", date},
                       {"repetitions", repetitions},
                       {"results", results}};
    std::ofstream f(json_path);
    f << out.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + json_path);
  }
  if (!chart_dir.empty()) {
    concur::bench::LineChart chart;
    chart.title = "asyncio create + gather, cold (first burst of a process) and warm";
    chart.x = {"tasks created and gathered at once", true};
    chart.y = {"tasks/s", true};
    for (const Series& s : series) {
      concur::bench::ChartSeries cs{s.name, {}, !s.concur};
      for (std::size_t k = 0; k < sizes.size(); ++k)
        cs.points.emplace_back(sizes[k], median(s.rate[k]));
      chart.series.push_back(std::move(cs));
    }
    // Short enough for one line under the chart: the full description is in the table and JSON.
    chart.caption = fmt::format("{} cores ({}), {}; {}; medians of {} repetitions", info.cores,
                                info.cpu_model, info.kernel, date, repetitions);
    concur::bench::write_svg(chart, chart_dir + "/asyncio-create-gather.svg");
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "asyncio_curve: {}\n", e.what());
  return 1;
}
