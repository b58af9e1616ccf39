// c10k: ten thousand connections served by one thread.
//
// Claim (in our words): because an event loop never switches OS threads, one thread can serve
// ten thousand network connections at once, promptly and in little memory (the tutorial: on a
// small board with 1 GB of RAM).
//
// Workload: an echo server on 127.0.0.1 in a process of its own, and a client process (concur-lab
// itself, `concur-lab __c10k client`: c10k_processes.hpp, c10k_client.cpp, c10k_server.cpp; one
// thread of concur::asyncio) that opens kConnections connections (kQuickConnections with --quick;
// fewer if RLIMIT_NOFILE is too low even at its hard limit, said in a note), at most
// kConnectParallel connects at a time, each echoing one message to show it is served. With every
// connection open, concur-lab reads the server's VmRSS and thread count from /proc/PID/status
// (against its VmRSS before any connection). Then two phases, on every connection at once, each
// echo of kMessageBytes checked byte for byte:
//   paced: each connection sends one message per kPacedPeriodS (one second: the pace of a chat
//          or notification socket, mostly idle; spread evenly over the period), so the server
//          sees connections/period requests per second: latency under a steady load;
//   burst: each connection does `burst_rounds` round trips back to back: throughput, and the
//          latency when every connection has a request waiting.
// Servers, one after another, each driven by the same C++ client:
//   - concur::asyncio: start_server, a coroutine per connection, read / write / drain, one loop;
//   - one OS thread per connection (blocking accept, recv, send), where the machine lets it make
//     them: a failure to create a thread is caught, reported, and its connection closed;
//   - CPython asyncio and uvloop (lab/python/c10k_server.py, the same streams echo), when usable.
// RSS counts the server's user-space memory only; the kernel's socket buffers and thread
// structures are not in it.
//
// Verdict (c10k.hpp), on CPython's asyncio (the tutorial's subject; concur's server when CPython
// cannot run): "served" means every connection opened, and every echo in both phases came back,
// right. Confirmed when, with kConnections connections, all were served, the paced p99 latency was
// at most kBoundedP99 and the server's growth for the connections, scaled to kConnections, fits in
// kMemoryBudgetMiB (a quarter of the tutorial's 1 GB board). Inconclusive when all of that held
// but fewer than kConnections were tried (--quick, or the descriptor limit), or when the run did
// not finish (a process hung or died: nothing was measured). Partly true when all were served
// but slowly or in too much memory; refuted when some connections were not served.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <concur/asyncio.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "c10k.hpp"
#include "c10k_processes.hpp"
#include "child_process.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "stats.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace {

using c10k::kBoundedP99;
using c10k::kConnections;
using c10k::kMemoryBudgetMiB;
constexpr int kQuickConnections = 1'000;
using c10k::kBacklog;
using c10k::kConnectParallel;
using c10k::kHost;
using c10k::raise_fd_limit;
constexpr int kReservedFds = 64;  // descriptors a process needs besides its connections

struct Load {
  int connections;
  int paced_rounds;
  double period_s;
  int burst_rounds;
};
constexpr Load kFullLoad{kConnections, 3, c10k::kPacedPeriodS, 5};
constexpr Load kQuickLoad{kQuickConnections, 2, c10k::kPacedPeriodS, 3};

using Clock = std::chrono::steady_clock;

}  // namespace

// =============================================================================================
// The experiment: starts each server and the client as child processes and watches them.

namespace {

// A field of /proc/PID/status ("VmRSS", "VmHWM", "Threads"), in its unit (kB for memory); NaN if
// it cannot be read.
double status_field(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      double value = NAN;
      fields >> value;
      return value;
    }
  }
  return NAN;
}

struct ServerRun {
  std::string who;
  std::string bar;  // short label for the pictures
  std::string skipped;
  std::string failure;
  int asked = 0;
  long connected = 0;
  long connect_failures = 0;
  double connect_s = NAN;
  double rss_base_kib = NAN;
  double rss_ready_kib = NAN;
  double hwm_kib = NAN;
  double threads = NAN;
  std::vector<std::string> server_said;  // THREAD_FAIL, ACCEPT_FAIL...
  nlohmann::json result;                 // the client's RESULT, when it finished

  bool finished() const { return skipped.empty() && failure.empty() && !result.is_null(); }
  double per_connection_kib() const {
    return connected > 0 ? (rss_ready_kib - rss_base_kib) / static_cast<double>(connected) : NAN;
  }
  // Every connection opened and every echo came back, in both phases.
  bool served_all(const Load& load) const {
    return finished() && connected == asked && result.at("errors").get<long>() == 0 &&
           result.at("paced").at("count").get<long>() ==
               static_cast<long>(asked) * load.paced_rounds &&
           result.at("burst").at("count").get<long>() ==
               static_cast<long>(asked) * load.burst_rounds;
  }
  double paced(const char* key) const {
    return finished() ? result.at("paced").at(key).get<double>() : NAN;
  }
  double burst(const char* key) const {
    return finished() ? result.at("burst").at(key).get<double>() : NAN;
  }
  double burst_per_s() const {
    return finished() ? result.at("burst").at("count").get<double>() /
                            result.at("burst").at("seconds").get<double>()
                      : NAN;
  }
};

void collect_server_lines(support::ChildProcess& server, ServerRun& run) {
  while (auto line = server.read_line(std::chrono::milliseconds(0))) {
    run.server_said.push_back(*line);
  }
}

ServerRun measure_server(std::string who, std::string bar, const std::vector<std::string>& argv,
                         const Load& load, Report& report) {
  progress::phase(who);
  ServerRun run;
  run.who = std::move(who);
  run.bar = std::move(bar);
  run.asked = load.connections;
  // Generous bounds (a healthy run needs a fraction of them), so that a hung server or client
  // costs a bounded time: it is then stopped and reported.
  const bool big = load.connections > kQuickConnections;
  const auto connect_budget = std::chrono::seconds(big ? 120 : 20);
  const double phase_s = load.paced_rounds * load.period_s + (big ? 90 : 20);

  support::ChildProcess server(argv);
  const std::optional<std::string> first = server.read_line(std::chrono::seconds(30));
  if (first && first->rfind("SKIP ", 0) == 0) {
    run.skipped = first->substr(5);
    return run;
  }
  if (!first || first->rfind("PORT ", 0) != 0) {
    run.failure =
        "the server did not start: " + first.value_or("(no output)") + " " + server.stderr_tail();
    return run;
  }
  const std::string port = first->substr(5);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it settle
  run.rss_base_kib = status_field(server.pid(), "VmRSS");

  support::ChildProcess client(
      {self_path(), kC10kHelper, "client", "--port", port, "--connections",
       std::to_string(load.connections), "--paced-rounds", std::to_string(load.paced_rounds),
       "--period", fmt::format("{}", load.period_s), "--burst-rounds",
       std::to_string(load.burst_rounds), "--parallel", std::to_string(kConnectParallel),
       "--deadline",
       fmt::format("{}", std::chrono::duration<double>(connect_budget).count() + phase_s)},
      support::ChildProcess::Stdin::pipe);
  const std::optional<std::string> ready = client.read_line(connect_budget);
  if (!ready || ready->rfind("READY ", 0) != 0) {
    run.failure =
        "the client did not get its connections open in time: " + ready.value_or("(no output)") +
        " " + client.stderr_tail();
    collect_server_lines(server, run);
    return run;
  }
  {
    std::istringstream fields(ready->substr(6));
    fields >> run.connected >> run.connect_failures >> run.connect_s;
  }
  run.rss_ready_kib = status_field(server.pid(), "VmRSS");
  run.threads = status_field(server.pid(), "Threads");
  collect_server_lines(server, run);

  client.send_line("GO");
  const std::optional<std::string> result =
      client.read_line(std::chrono::milliseconds(static_cast<long>(phase_s * 1000)));
  run.hwm_kib = status_field(server.pid(), "VmHWM");
  collect_server_lines(server, run);
  if (!result || result->rfind("RESULT ", 0) != 0) {
    run.failure =
        "the client did not finish: " + result.value_or("(no output)") + " " + client.stderr_tail();
    return run;
  }
  run.result = nlohmann::json::parse(result->substr(7));
  report.check(run.result.at("mismatches").get<long>() == 0,
               run.who + ": every echo equals what was sent");
  if (!client.wait_for(std::chrono::seconds(10))) {
    report.note(run.who + ": the client process did not exit by itself; it was stopped");
  }
  return run;
}

std::string kib_text(double kib) {
  if (std::isnan(kib)) return "-";
  return kib >= 1024 ? fmt::format("{:.1f} MiB", kib / 1024) : fmt::format("{:.1f} KiB", kib);
}

void run(const Options& options, Report& report) {
  report.claim(
      "Because an event loop never switches OS threads, a single thread can serve ten thousand "
      "network connections at once, promptly and in little memory, even on a small board with "
      "1 GB of RAM.",
      "10,000 asynchronous web sockets");
  report.note(load_note());
  Load load = options.quick ? kQuickLoad : kFullLoad;
  const long fd_limit = raise_fd_limit();  // the children inherit it
  if (fd_limit - kReservedFds < load.connections) {
    const int fewer = static_cast<int>(std::max<long>(10, fd_limit - kReservedFds));
    report.note(
        fmt::format("RLIMIT_NOFILE allows {} descriptors per process even at its hard "
                    "limit: {} connections instead of {}.",
                    fd_limit, fewer, load.connections));
    load.connections = fewer;
  }
  if (options.quick) {
    report.note(fmt::format("--quick: {} connections, not {}.", load.connections, kConnections));
  }

  std::vector<ServerRun> runs;
  const std::string backlog = std::to_string(kBacklog);
  runs.push_back(measure_server("concur::asyncio, one thread", "concur asyncio",
                                {self_path(), kC10kHelper, "server-asyncio", "--backlog", backlog},
                                load, report));
  runs.push_back(measure_server("C++, one OS thread per connection", "C++ thread per conn",
                                {self_path(), kC10kHelper, "server-threads", "--backlog", backlog},
                                load, report));
  std::string version;
  if (auto python = cpython_for(options, report)) {
    version = python->version();
    const std::string script = support::Python::find_script("c10k_server.py");
    for (const char* impl : {"asyncio", "uvloop"}) {
      runs.push_back(measure_server(
          fmt::format("CPython {} {}, one thread", version, impl),
          std::string(impl == std::string("asyncio") ? "CPython asyncio" : "uvloop"),
          {python->interpreter(), script, "--impl", impl, "--backlog", backlog}, load, report));
    }
  }

  Table table{fmt::format("{} connections to an echo server on {}, from a second process; "
                          "paced: {} rounds of one message per {} per connection; burst: {} "
                          "round trips per connection back to back",
                          load.connections, kHost, load.paced_rounds, format_seconds(load.period_s),
                          load.burst_rounds),
              {"server", "served", "connect all", "paced p50", "paced p99", "paced max",
               "burst round trips/s", "burst p50", "burst p99", "server RSS growth",
               "per connection", "server threads"},
              {}};
  std::vector<svg::Bar> memory_bars;
  std::vector<svg::Bar> p99_bars;
  std::vector<svg::Bar> rate_bars;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const ServerRun& r = runs[i];
    const int kind = static_cast<int>(i);
    if (!r.skipped.empty()) {
      table.rows.push_back({r.who, "skipped: " + r.skipped});
      report.note(r.who + " skipped: " + r.skipped);
      continue;
    }
    for (const std::string& said : r.server_said) report.note(r.who + " said: " + said);
    if (!r.failure.empty()) report.note(r.who + ": " + r.failure);
    const std::string served =
        r.finished()
            ? fmt::format("{} of {}{}", r.connected, r.asked,
                          r.result.at("errors").get<long>() > 0
                              ? fmt::format(" ({} failed later)", r.result.at("errors").get<long>())
                              : "")
            : fmt::format("{} of {} (did not finish)", r.connected, r.asked);
    table.rows.push_back(
        {r.who, served, format_seconds(r.connect_s), format_seconds(r.paced("p50_s")),
         format_seconds(r.paced("p99_s")), format_seconds(r.paced("max_s")),
         std::isnan(r.burst_per_s()) ? "-" : fmt::format("{:.0f}", r.burst_per_s()),
         format_seconds(r.burst("p50_s")), format_seconds(r.burst("p99_s")),
         kib_text(r.rss_ready_kib - r.rss_base_kib), kib_text(r.per_connection_kib()),
         std::isnan(r.threads) ? "-" : fmt::format("{:.0f}", r.threads)});
    if (!std::isnan(r.per_connection_kib())) {
      memory_bars.push_back({r.bar, r.per_connection_kib(), kind});
    }
    if (r.finished()) {
      p99_bars.push_back({r.bar, r.paced("p99_s") * 1e3, kind});
      rate_bars.push_back({r.bar, r.burst_per_s() / 1e3, kind});
    }
  }
  report.table(std::move(table));
  report.figure({"c10k-memory.svg",
                 fmt::format("Server memory (VmRSS growth) per open connection, with {} open.",
                             load.connections),
                 svg::bars("Server memory per connection", "KiB", memory_bars)});
  report.figure({"c10k-latency.svg",
                 fmt::format("p99 round-trip latency while each of {} connections sends one "
                             "message per {}.",
                             load.connections, format_seconds(load.period_s)),
                 svg::bars("Paced load: p99 latency", "ms", p99_bars)});
  report.figure({"c10k-throughput.svg",
                 "Round trips per second when every connection has a request waiting (one "
                 "client thread drives them all).",
                 svg::bars("Burst: round trips per second", "thousand/s", rate_bars)});

  for (const ServerRun& r : runs) {
    if (!r.finished()) continue;
    const std::string key = r.bar == "C++ thread per conn" ? "threads"
                            : r.bar == "concur asyncio"    ? "concur"
                            : r.bar == "uvloop"            ? "uvloop"
                                                           : "cpython";
    report.measured(key + "_per_connection_kib", r.per_connection_kib(), "KiB");
    report.measured(key + "_paced_p99_s", r.paced("p99_s"), "s");
    report.measured(key + "_burst_per_s", r.burst_per_s(), "1/s");
  }

  // The subject: CPython's asyncio when it ran, else concur's loop.
  const ServerRun* subject = &runs[0];
  for (const ServerRun& r : runs) {
    if (r.bar == "CPython asyncio" && r.skipped.empty()) subject = &r;
  }
  const ServerRun& threads = runs[1];
  std::string about_threads;
  if (threads.finished() && threads.served_all(load)) {
    about_threads = fmt::format(
        " One OS thread per connection also served all {} ({:.0f} threads, {} per connection, "
        "{:.0f} MiB for {}; paced p99 {}, {:.0f} round trips/s in the burst).",
        threads.asked, threads.threads, kib_text(threads.per_connection_kib()),
        threads.per_connection_kib() * kConnections / 1024, kConnections,
        format_seconds(threads.paced("p99_s")), threads.burst_per_s());
  } else {
    about_threads = fmt::format(" One OS thread per connection served {} of {}.", threads.connected,
                                threads.asked);
  }
  c10k::Measurements m;
  m.from_cpython = subject->bar == "CPython asyncio";
  m.who = subject->who;
  m.finished = subject->finished();
  m.failure = subject->failure;
  m.asked = subject->asked;
  m.quick = options.quick;
  m.offered_per_s = load.connections / load.period_s;
  if (m.finished) {
    m.connected = subject->connected;
    m.served_all = subject->served_all(load);
    if (!m.served_all) m.first_error = subject->result.at("first_error").get<std::string>();
    m.threads = subject->threads;
    m.p50_s = subject->paced("p50_s");
    m.p99_s = subject->paced("p99_s");
    m.max_s = subject->paced("max_s");
    m.burst_per_s = subject->burst_per_s();
    m.per_connection_kib = subject->per_connection_kib();
  }
  for (const Threshold& t : c10k::thresholds()) report.threshold(t);
  Judgement j = c10k::judge(m);
  j.because += about_threads;
  report.verdict(j, m.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"c10k", "10,000 TCP connections on one loop thread vs a thread each; memory, latency", run,
     Chapter::kCoroutines, 90});

}  // namespace
}  // namespace concur::lab
