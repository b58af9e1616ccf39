// asyncio-one-thread: how many threads does an asyncio server really run?
//
// Claim (in our words): asyncio runs everything on exactly one thread.
//
// Workload: an echo server in a process of its own serving `connections` connections (10,000;
// 1,000 with --quick) opened by concur-lab's c10k client (`concur-lab __c10k client`, see
// lab/experiments/c10k.cpp), one paced and one burst round of echoes on each. While the
// connections are open and traffic flows, concur-lab polls the server's /proc/<pid>/task every
// few milliseconds (the most threads seen at once), and at the end reads each thread's name and
// time on the CPU (schedstat). Servers: CPython's asyncio (lab/python/c10k_server.py) and
// concur::asyncio (`concur-lab __c10k server-asyncio`, on libuv).
//
// libuv keeps a thread pool (UV_THREADPOOL_SIZE, 4 by default) that it starts only on the first
// getaddrinfo, file-system or queue_work request; sockets are watched by epoll on the loop's own
// thread. The report says which threads this run saw and what CPU time they used.
//
// Verdict (asyncio_one_thread.hpp): on CPython's server, else on concur's (and it says so).
#include "asyncio_one_thread.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "lab.hpp"
#include "procfs.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace asyncio_one_thread {

std::vector<Threshold> thresholds() {
  return {{"one_thread_share", kOneThreadShare,
           "other threads that did under 5% of the server's CPU work are idle helpers"}};
}

Judgement judge(const Measurements& m) {
  if (!m.served) {
    return {Verdict::kInconclusive,
            fmt::format("{} did not serve all {} connections, so its thread count while serving "
                        "was not measured",
                        m.who, m.connections)};
  }
  const std::string text = fmt::format(
      "{} served {} connections with at most {} OS thread{} alive at once; its main thread did "
      "{:.1f}% of the process's CPU work.",
      m.who, m.connections, m.max_threads, m.max_threads == 1 ? "" : "s", 100 * m.main_cpu_share);
  if (m.max_threads <= 1) return {Verdict::kConfirmed, text};
  if (m.main_cpu_share >= kOneThreadShare) {
    return {Verdict::kPartlyTrue,
            text + " Other threads existed, but the serving was the one thread's."};
  }
  return {Verdict::kRefuted, text + " Other threads shared the work."};
}

}  // namespace asyncio_one_thread

namespace {

using Clock = std::chrono::steady_clock;

struct ServerRun {
  asyncio_one_thread::Measurements m;
  bool skipped = false;
  std::string why;
  std::vector<std::string> threads;  // "name: 12.3 ms on the CPU"
};

std::string comm_of(pid_t pid, pid_t tid) {
  std::ifstream in(fmt::format("/proc/{}/task/{}/comm", pid, tid));
  std::string name;
  std::getline(in, name);
  return name;
}

ServerRun measure(const std::string& who, const std::vector<std::string>& server_argv,
                  int connections) {
  progress::phase(who);
  ServerRun run;
  run.m.who = who;
  run.m.connections = connections;
  support::ChildProcess server(server_argv);
  const auto port_line = server.read_line(std::chrono::seconds(30));
  if (!port_line || port_line->rfind("PORT ", 0) != 0) {
    run.skipped = true;
    run.why = who + " did not start: " + port_line.value_or("(no output)");
    return run;
  }
  support::ChildProcess client(
      {self_path(), kC10kHelper, "client", "--port", port_line->substr(5), "--connections",
       std::to_string(connections), "--paced-rounds", "1", "--period", "1", "--burst-rounds", "1",
       "--parallel", "200", "--deadline", "120"},
      support::ChildProcess::Stdin::pipe);
  auto sample = [&] {
    run.m.max_threads = std::max<int>(
        run.m.max_threads, static_cast<int>(procfs::status_field(server.pid(), "Threads")));
  };
  // Reads lines until one starts with `prefix`, sampling the server's threads meanwhile.
  auto until = [&](const std::string& prefix, std::chrono::seconds budget) {
    const auto deadline = Clock::now() + budget;
    while (Clock::now() < deadline) {
      sample();
      if (auto line = client.read_line(std::chrono::milliseconds(20))) {
        if (line->rfind(prefix, 0) == 0) return std::optional<std::string>(*line);
      }
    }
    return std::optional<std::string>();
  };
  const auto ready = until("READY ", std::chrono::seconds(120));
  int connected = 0;
  if (ready) std::istringstream(ready->substr(6)) >> connected;
  client.send_line("GO");
  const auto result = until("RESULT ", std::chrono::seconds(120));
  sample();
  double total_cpu = 0, main_cpu = 0;
  for (const auto& t : procfs::all_tasks(server.pid())) {
    total_cpu += t.on_cpu_s;
    if (t.tid == server.pid()) main_cpu += t.on_cpu_s;
    run.threads.push_back(fmt::format("{} ({}): {} on the CPU", comm_of(server.pid(), t.tid),
                                      t.tid == server.pid() ? "main" : "other",
                                      format_seconds(t.on_cpu_s)));
  }
  run.m.main_cpu_share = total_cpu > 0 ? main_cpu / total_cpu : 1.0;
  if (result) {
    const auto j = nlohmann::json::parse(result->substr(7));
    run.m.served = connected == connections && j.at("errors").get<long>() == 0 &&
                   j.at("mismatches").get<long>() == 0;
  }
  if (!run.m.served) {
    run.why = fmt::format("{}: {} of {} connections opened; {}", who, connected, connections,
                          result ? "the echoes had errors" : "the client did not finish");
  }
  return run;
}

void run(const Options& options, Report& report) {
  report.claim("An asyncio program runs everything on exactly one thread.",
               "Asyncio uses only exactly ONE Thread");
  for (const Threshold& t : asyncio_one_thread::thresholds()) report.threshold(t);
  const int connections = options.quick ? 1000 : 10000;
  std::vector<ServerRun> runs;
  runs.push_back(
      measure("concur::asyncio", {self_path(), kC10kHelper, "server-asyncio"}, connections));
  std::optional<asyncio_one_thread::Measurements> subject;
  if (auto python = cpython_for(options, report)) {
    runs.push_back(measure("CPython " + python->version() + " asyncio",
                           {python->interpreter(), support::Python::find_script("c10k_server.py"),
                            "--impl", "asyncio"},
                           connections));
    if (!runs.back().skipped) subject = runs.back().m;
  }
  Table table{fmt::format("OS threads of an echo server process while it serves {} connections",
                          connections),
              {"server", "connections served", "most threads at once", "main thread's CPU share",
               "its threads"},
              {}};
  std::vector<svg::Bar> bars;
  for (const ServerRun& r : runs) {
    if (r.skipped) {
      report.note(r.why);
      continue;
    }
    bars.push_back({r.m.who, static_cast<double>(r.m.max_threads), static_cast<int>(bars.size())});
    std::string names;
    for (const std::string& t : r.threads) names += (names.empty() ? "" : "; ") + t;
    table.rows.push_back({r.m.who, r.m.served ? "all" : "not all", std::to_string(r.m.max_threads),
                          fmt::format("{:.1f}%", 100 * r.m.main_cpu_share), names});
    if (!r.why.empty()) report.note(r.why);
    report.measured(r.m.who == "concur::asyncio" ? "concur_max_threads" : "cpython_max_threads",
                    r.m.max_threads, "threads");
  }
  report.table(std::move(table));
  if (!bars.empty()) {
    report.figure(
        {"asyncio-one-thread.svg",
         "The most OS threads each server process had while it served; the dashed line "
         "is the claim's one thread.",
         svg::bars(fmt::format("OS threads of an echo server serving {} connections", connections),
                   "threads", bars, 1.0, "one thread")});
  }
  if (!runs.empty() && !runs[0].skipped) {
    report.note(fmt::format(
        "concur's server (libuv) had at most {} thread{} while serving: libuv watches sockets "
        "with epoll on the loop's own thread, and starts its pool of worker threads "
        "(UV_THREADPOOL_SIZE, 4 by default) only for getaddrinfo, file-system calls or "
        "queue_work, {}.",
        runs[0].m.max_threads, runs[0].m.max_threads == 1 ? "" : "s",
        runs[0].m.max_threads == 1 ? "none of which this server asked for"
                                   : "which would be the extra threads listed above"));
  }
  if (subject) {
    report.verdict(asyncio_one_thread::judge(*subject), Source::kCPython);
  } else {
    report.verdict(asyncio_one_thread::judge(runs[0].m), Source::kConcurModel);
  }
}

const bool registered = register_experiment(
    {"asyncio-one-thread", "OS threads of an asyncio server serving many connections", run,
     Chapter::kCoroutines, 40});

}  // namespace
}  // namespace concur::lab
