// asyncio-io-bound: the tutorial's scraper, written with coroutines on one thread.
//
// Claim (in our words): for work that mostly waits on the network, coroutines on a single
// thread do as well as threads: each one that awaits a reply hands the thread back to the event
// loop, which starts the next, so ten fetches that each wait about a second finish in about one
// second instead of ten.
//
// Workload: a real TCP server on 127.0.0.1, not a sleep in the client: concur-lab runs a slow
// server (concur::asyncio, on a thread of its own) that answers "GET <id>\n" with
// "Data <id> Downloaded\n" after `latency` (1 s as in the tutorial; 0.1 s with --quick), as a
// remote site would. kUrls fetches (connect, send, read the answer, close) are made:
//   - one after another (a coroutine awaiting each fetch in turn),
//   - as kUrls coroutines on one thread (concur::asyncio::gather),
//   - by kUrls OS threads with blocking sockets (concur::ThreadPoolExecutor::map),
//   - in CPython (lab/python/asyncio_io_bound.py) against the same server: one after another,
//     asyncio.gather on asyncio's loop and on uvloop's (when importable), and a thread pool.
// Every answer is checked against its request, in input order; the server also counts the
// requests it held at once.
//
// Verdict (asyncio_io_bound.hpp): on CPython's asyncio (the tutorial's subject; concur's coroutines
// when CPython cannot run, and the verdict says so): confirmed when the concurrent run takes at
// most kNearOneWait x latency while the sequential one takes at least kNearAllWaits x kUrls x
// latency; partly true when the coroutines still beat the sequential run by kSomeHelp x; refuted
// otherwise.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/asyncio.hpp>
#include <concur/asyncio/streams.hpp>
#include <concur/thread_pool.hpp>
#include <future>
#include <mutex>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

#include "asyncio_io_bound.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace asyncio_io_bound {

std::vector<Threshold> thresholds() {
  return {{"near_one_wait", kNearOneWait,
           "about one wait: half a wait of slack for connecting and scheduling ten coroutines"},
          {"near_all_waits", kNearAllWaits,
           "the sequential run must have waited every wait (timer rounding allowed)"},
          {"some_help", kSomeHelp, "below a 2x gain the waits did not overlap usefully"}};
}

Judgement judge(const Measurements& m) {
  const double speedup = m.sequential_s / m.coroutines_s;
  const std::string numbers = fmt::format(
      "In {}, {} fetches that each wait {} took {} one after another and {} as coroutines on one "
      "thread ({} of one wait, {} faster).",
      m.from_cpython ? "CPython's asyncio" : "concur's coroutines (CPython was not measured)",
      m.waits, format_seconds(m.latency_s), format_seconds(m.sequential_s),
      format_seconds(m.coroutines_s), format_ratio(m.coroutines_s / m.latency_s),
      format_ratio(speedup));
  if (m.coroutines_s <= kNearOneWait * m.latency_s &&
      m.sequential_s >= kNearAllWaits * m.waits * m.latency_s) {
    return {Verdict::kConfirmed, numbers + " The waits overlapped on a single thread."};
  }
  if (speedup >= kSomeHelp) {
    return {Verdict::kPartlyTrue,
            numbers + " Coroutines help, but the run is not close to one wait."};
  }
  return {Verdict::kRefuted, numbers + " The waits did not overlap."};
}

}  // namespace asyncio_io_bound

namespace {

constexpr int kUrls = 10;
constexpr const char* kHost = "127.0.0.1";

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string expected_answer(int id) {
  return "Data " + std::to_string(id) + " Downloaded";
}

// --- the slow server --------------------------------------------------------------------------

struct ServerCounters {
  std::atomic<long> served{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> peak_in_flight{0};
};

// One connection: reads "GET <id>\n", waits `latency` like a distant site, answers, closes.
asyncio::Task<void> answer(asyncio::StreamReader reader, asyncio::StreamWriter writer,
                           std::chrono::nanoseconds latency, ServerCounters* counters) {
  try {
    std::string line = co_await reader.readline();
    if (line.rfind("GET ", 0) == 0 && line.back() == '\n') {
      const int now = ++counters->in_flight;
      int peak = counters->peak_in_flight.load();
      while (now > peak && !counters->peak_in_flight.compare_exchange_weak(peak, now)) {
      }
      co_await asyncio::sleep(latency);
      --counters->in_flight;
      writer.write("Data " + line.substr(4, line.size() - 5) + " Downloaded\n");
      co_await writer.drain();
      ++counters->served;
    }
  } catch (const ConnectionError&) {
    // The client went away: nothing to answer.
  }
  writer.close();
}

// The slow server, on a thread of its own with its own loop; stopped and joined on destruction.
class SlowServer {
 public:
  explicit SlowServer(std::chrono::nanoseconds latency) {
    std::promise<std::uint16_t> ready;
    std::future<std::uint16_t> port = ready.get_future();
    thread_ = std::thread([this, latency, ready = std::move(ready)]() mutable {
      try {
        asyncio::run(serve(latency, ready), asyncio::RunOptions{.handle_sigint = false});
      } catch (...) {
        if (!started_) ready.set_exception(std::current_exception());
      }
    });
    if (port.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      throw std::runtime_error("asyncio-io-bound: the slow server did not start in 30 s");
    }
    try {
      port_ = port.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }
  ~SlowServer() {
    try {
      if (loop_) loop_->call_soon_threadsafe([this] { server_.close(); });
    } catch (const std::exception&) {
      // The loop has already ended (its thread failed): nothing left to stop.
    }
    thread_.join();
  }
  SlowServer(const SlowServer&) = delete;
  SlowServer& operator=(const SlowServer&) = delete;

  std::uint16_t port() const { return port_; }
  ServerCounters& counters() { return counters_; }
  // Forgets the previous run's peak.
  void reset_peak() { counters_.peak_in_flight = 0; }

 private:
  asyncio::Task<void> serve(std::chrono::nanoseconds latency, std::promise<std::uint16_t>& ready) {
    ServerCounters* counters = &counters_;
    asyncio::ClientHandler handler = [latency, counters](asyncio::StreamReader r,
                                                         asyncio::StreamWriter w) {
      return answer(std::move(r), std::move(w), latency, counters);
    };
    server_ = co_await asyncio::start_server(handler, kHost, 0);
    loop_ = &asyncio::get_running_loop();
    started_ = true;
    ready.set_value(server_.port());
    co_await server_.serve_forever();
  }

  std::thread thread_;
  asyncio::Server server_;
  asyncio::EventLoop* loop_ = nullptr;  // set before `ready`, read after it
  bool started_ = false;
  std::uint16_t port_ = 0;
  ServerCounters counters_;
};

// --- the clients ------------------------------------------------------------------------------

struct Run {
  double wall = 0;
  std::vector<svg::Span> spans;  // by url id
  bool results_ok = false;
  int server_peak = 0;  // requests the server held at once
};

bool all_right(const std::vector<std::string>& results) {
  if (results.size() != kUrls) return false;
  for (int id = 0; id < kUrls; ++id) {
    if (results[static_cast<std::size_t>(id)] != expected_answer(id)) return false;
  }
  return true;
}

asyncio::Task<std::string> fetch(std::uint16_t port, int id, Clock::time_point t0, svg::Span* span,
                                 int kind) {
  const double start = std::chrono::duration<double>(Clock::now() - t0).count();
  asyncio::StreamPair conn = co_await asyncio::open_connection(kHost, port);
  conn.writer.write("GET " + std::to_string(id) + "\n");
  co_await conn.writer.drain();
  std::string line = co_await conn.reader.readline();
  conn.writer.close();
  co_await conn.writer.wait_closed();
  *span = {start, std::chrono::duration<double>(Clock::now() - t0).count(), kind};
  if (!line.empty() && line.back() == '\n') line.pop_back();
  co_return line;
}

asyncio::Task<std::vector<std::string>> fetch_all(std::uint16_t port, bool together,
                                                  std::vector<svg::Span>& spans) {
  const auto t0 = Clock::now();
  if (!together) {
    std::vector<std::string> results;
    for (int id = 0; id < kUrls; ++id) {
      results.push_back(co_await fetch(port, id, t0, &spans[static_cast<std::size_t>(id)], 0));
    }
    co_return results;
  }
  std::vector<asyncio::Task<std::string>> fetches;
  for (int id = 0; id < kUrls; ++id) {
    fetches.push_back(fetch(port, id, t0, &spans[static_cast<std::size_t>(id)], 1));
  }
  co_return co_await asyncio::gather(std::move(fetches));
}

Run with_coroutines(SlowServer& server, double latency, bool together) {
  Run run;
  run.spans.resize(kUrls);
  server.reset_peak();
  const auto deadline = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(10 + 2 * kUrls * latency));
  const auto t0 = Clock::now();
  std::vector<std::string> results =
      asyncio::run(asyncio::timeout(deadline, fetch_all(server.port(), together, run.spans)),
                   asyncio::RunOptions{.handle_sigint = false});
  run.wall = seconds_since(t0);
  run.results_ok = all_right(results);
  run.server_peak = server.counters().peak_in_flight;
  return run;
}

// A fetch with a blocking socket, as a thread does it.
std::string blocking_fetch(std::uint16_t port, int id, double timeout_s) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  timeval tv{static_cast<time_t>(timeout_s), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, kHost, &addr.sin_addr);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::system_error(errno, std::generic_category(), "connect");
  }
  const std::string request = "GET " + std::to_string(id) + "\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    throw std::system_error(errno, std::generic_category(), "send");
  }
  std::string answer;
  char buf[256];
  while (answer.empty() || answer.back() != '\n') {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  if (!answer.empty() && answer.back() == '\n') answer.pop_back();
  return answer;
}

Run with_threads(SlowServer& server, double latency) {
  Run run;
  run.spans.resize(kUrls);
  server.reset_peak();
  std::mutex mu;
  const auto t0 = Clock::now();
  auto scrape = [&](int id) {
    const double start = seconds_since(t0);
    std::string page = blocking_fetch(server.port(), id, 10 + 2 * kUrls * latency);
    std::lock_guard<std::mutex> lock(mu);
    run.spans[static_cast<std::size_t>(id)] = {start, seconds_since(t0), 2};
    return page;
  };
  std::vector<std::string> results;
  {
    ThreadPoolExecutor executor(kUrls);
    for (std::string& page : executor.map(scrape, std::views::iota(0, kUrls))) {
      results.push_back(std::move(page));
    }
  }
  run.wall = seconds_since(t0);
  run.results_ok = all_right(results);
  run.server_peak = server.counters().peak_in_flight;
  return run;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "For work that mostly waits on the network, coroutines on one thread do as well as "
      "threads: a coroutine that awaits a reply hands the thread back to the event loop, which "
      "starts the next one, so ten fetches that each wait about a second take about one second "
      "in all, not ten.",
      "Check back on me later");
  const double latency = options.quick ? 0.1 : 1.0;
  const auto wait =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(latency));

  SlowServer server(wait);
  const Run seq = with_coroutines(server, latency, false);
  const Run co = with_coroutines(server, latency, true);
  const Run thr = with_threads(server, latency);
  report.check(seq.results_ok && co.results_ok && thr.results_ok,
               "concur's fetches returned every page, each to its own request, in input order");
  report.check(server.counters().served == 3 * kUrls,
               "the server answered each of concur's "
               "requests once");

  Table table{fmt::format("{} fetches from a TCP server on {} that answers after {}", kUrls, kHost,
                          format_seconds(latency)),
              {"who", "how", "wall time", "/ one wait", "speed-up vs one after another",
               "requests the server held at once"},
              {}};
  std::vector<svg::Bar> bars;
  auto add = [&](const std::string& who, const std::string& how, double wall, double seq_wall,
                 const std::string& peak, const std::string& bar, int kind) {
    table.rows.push_back({who, how, format_seconds(wall), format_ratio(wall / latency),
                          format_ratio(seq_wall / wall), peak});
    bars.push_back({bar, wall, kind});
  };
  add("concur", "one after another", seq.wall, seq.wall, std::to_string(seq.server_peak),
      "concur, one after another", 0);
  add("concur", fmt::format("{} coroutines, one thread", kUrls), co.wall, seq.wall,
      std::to_string(co.server_peak), "concur, coroutines", 1);
  add("concur", fmt::format("{} OS threads", kUrls), thr.wall, seq.wall,
      std::to_string(thr.server_peak), "concur, threads", 2);
  report.measured("concur_sequential_s", seq.wall, "s");
  report.measured("concur_coroutines_s", co.wall, "s");
  report.measured("concur_threads_s", thr.wall, "s");

  std::vector<svg::Lane> lanes;
  lanes.push_back({"one after another", seq.spans});
  for (std::size_t i = 0; i < co.spans.size(); ++i) {
    lanes.push_back({"coroutine " + std::to_string(i), {co.spans[i]}});
  }
  report.figure({"asyncio-io-bound-concur.svg",
                 "Each bar is one fetch, from connect to the answer; the coroutines all wait at "
                 "once, on one thread.",
                 svg::timeline("concur: ten fetches, one after another vs ten coroutines", lanes,
                               {{0, "fetch (one after another)"}, {1, "fetch (coroutine)"}})});

  double subject_seq = seq.wall;
  double subject_co = co.wall;
  bool from_cpython = false;
  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j =
        python->run_json("asyncio_io_bound.py",
                         {"--port", std::to_string(server.port()), "--count", std::to_string(kUrls),
                          "--latency", fmt::format("{}", latency)},
                         std::chrono::seconds(static_cast<long>(60 + 8 * kUrls * latency)));
    const auto& runs = j.at("runs");
    const std::string py = "CPython " + j.at("version").get<std::string>();
    auto wall_of = [&](const char* key) {
      report.check(runs.at(key).at("results_ok").get<bool>(),
                   std::string("CPython's ") + key + " fetches returned every page in order");
      return runs.at(key).at("wall_s").get<double>();
    };
    subject_seq = wall_of("sequential");
    subject_co = wall_of("asyncio");
    add(py, "one after another (asyncio)", subject_seq, subject_seq, "-",
        "CPython, one after another", 3);
    add(py, fmt::format("asyncio.gather of {}", kUrls), subject_co, subject_seq, "-",
        "CPython asyncio.gather", 4);
    if (runs.contains("uvloop")) {
      const double uv = wall_of("uvloop");
      add(py, fmt::format("uvloop, gather of {}", kUrls), uv, subject_seq, "-", "uvloop gather", 5);
      report.measured("uvloop_gather_s", uv, "s");
    } else {
      const std::string why = j.at("uvloop_skipped").get<std::string>();
      table.rows.push_back({py, "uvloop: skipped", "-", "-", "-", why});
      report.note("uvloop skipped: " + why);
    }
    const double py_thr = wall_of("threads");
    report.check(server.counters().served == 3 * kUrls + static_cast<long>(runs.size()) * kUrls,
                 "the server answered each of CPython's requests once");
    add(py, fmt::format("ThreadPoolExecutor({})", kUrls), py_thr, subject_seq, "-",
        "CPython threads", 6);
    report.measured("cpython_sequential_s", subject_seq, "s");
    report.measured("cpython_asyncio_s", subject_co, "s");
    report.measured("cpython_threads_s", py_thr, "s");
    from_cpython = true;
  }
  report.table(std::move(table));
  report.figure({"asyncio-io-bound.svg",
                 "Wall time of the ten fetches: one after another vs all at once (coroutines or "
                 "threads).",
                 svg::bars("Ten fetches of a slow local server", "s", bars, latency, "one wait")});

  for (const Threshold& t : asyncio_io_bound::thresholds()) report.threshold(t);
  const asyncio_io_bound::Measurements m{from_cpython, kUrls, latency, subject_seq, subject_co};
  Judgement j = asyncio_io_bound::judge(m);
  j.because += fmt::format(" concur's coroutines took {} ({} of one wait) and its threads {}.",
                           format_seconds(co.wall), format_ratio(co.wall / latency),
                           format_seconds(thr.wall));
  report.verdict(j, from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"asyncio-io-bound", "the scraper as coroutines: 10 slow fetches, sequential vs one thread",
     run, Chapter::kCoroutines, 40});

}  // namespace
}  // namespace concur::lab
