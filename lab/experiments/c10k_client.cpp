// The c10k experiment's client (lab/experiments/c10k_processes.hpp): one thread of
// concur::asyncio that opens the connections, at most --parallel at a time, then runs the paced
// and burst phases on all of them and prints the latencies and failures as one JSON line.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <concur/asyncio.hpp>
#include <cstdint>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "c10k_processes.hpp"
#include "stats.hpp"

namespace concur::lab::c10k {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// --- client -----------------------------------------------------------------------------------

struct ClientConfig {
  std::uint16_t port = 0;
  int connections = 0;
  int paced_rounds = 0;
  double period_s = 1;
  int burst_rounds = 0;
  int parallel = kConnectParallel;
  double deadline_s = 120;
};

struct Conn {
  asyncio::StreamReader reader;
  asyncio::StreamWriter writer;
  bool alive = false;
};

struct Tally {
  std::vector<double> paced;
  std::vector<double> burst;
  long errors = 0;
  long mismatches = 0;
  long connect_failures = 0;
  std::string first_error;
  void error(const std::string& what) {
    ++errors;
    if (first_error.empty()) first_error = what;
  }
};

std::string message_for(int conn, int round) {
  std::string m = fmt::format("{:06d}:{:+04d}:", conn, round);
  m.resize(kMessageBytes - 1, static_cast<char>('a' + (conn + round + 26) % 26));
  m.push_back('\n');
  return m;
}

// One echo: "" when it came back right, else what went wrong.
asyncio::Task<std::string> round_trip(Conn& c, int id, int round, std::vector<double>* latencies,
                                      long& mismatches) {
  const std::string msg = message_for(id, round);
  const auto t0 = Clock::now();
  try {
    c.writer.write(msg);
    co_await c.writer.drain();
    std::string back = co_await c.reader.readexactly(msg.size());
    const double took = seconds_since(t0);
    if (back != msg) {
      ++mismatches;
      co_return "an echo differed from what was sent";
    }
    if (latencies) latencies->push_back(took);
    co_return std::string();
  } catch (const CancelledError&) {
    throw;
  } catch (const std::exception& e) {
    co_return std::string(e.what());
  }
}

asyncio::Task<void> open_one(const ClientConfig& cfg, int id, Conn& c, asyncio::Semaphore& sem,
                             Tally& t) {
  co_await sem.acquire();
  std::string failed;
  try {
    asyncio::StreamPair pair = co_await asyncio::open_connection(kHost, cfg.port);
    c.reader = std::move(pair.reader);
    c.writer = std::move(pair.writer);
  } catch (const CancelledError&) {
    sem.release();
    throw;
  } catch (const std::exception& e) {
    failed = std::string("connect: ") + e.what();
  }
  if (failed.empty()) {
    failed = co_await round_trip(c, id, -1, nullptr, t.mismatches);
    if (!failed.empty()) failed = "first echo: " + failed;
  }
  sem.release();
  c.alive = failed.empty();
  if (!c.alive) {
    ++t.connect_failures;
    if (t.first_error.empty()) t.first_error = failed;
    if (c.writer.valid()) c.writer.close();
  }
}

asyncio::Task<void> paced(Conn& c, int id, const ClientConfig& cfg, Clock::time_point start,
                          Tally& t) {
  const auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.period_s));
  const auto offset = period * id / cfg.connections;
  for (int k = 0; k < cfg.paced_rounds && c.alive; ++k) {
    const auto wait = start + offset + period * k - Clock::now();
    if (wait > Clock::duration::zero()) co_await asyncio::sleep(wait);
    std::string failed = co_await round_trip(c, id, k, &t.paced, t.mismatches);
    if (!failed.empty()) {
      c.alive = false;
      t.error(failed);
    }
  }
}

asyncio::Task<void> burst(Conn& c, int id, const ClientConfig& cfg, Tally& t) {
  for (int k = 0; k < cfg.burst_rounds && c.alive; ++k) {
    std::string failed = co_await round_trip(c, id, cfg.paced_rounds + k, &t.burst, t.mismatches);
    if (!failed.empty()) {
      c.alive = false;
      t.error(failed);
    }
  }
}

nlohmann::json summary_of(const std::vector<double>& latencies) {
  nlohmann::json j;
  j["count"] = latencies.size();
  j["p50_s"] = latencies.empty() ? 0.0 : support::percentile_of(latencies, 50);
  j["p99_s"] = latencies.empty() ? 0.0 : support::percentile_of(latencies, 99);
  j["max_s"] = latencies.empty() ? 0.0 : *std::max_element(latencies.begin(), latencies.end());
  return j;
}

asyncio::Task<void> client_main(ClientConfig cfg) {
  Tally t;
  t.paced.reserve(static_cast<std::size_t>(cfg.connections * cfg.paced_rounds));
  t.burst.reserve(static_cast<std::size_t>(cfg.connections * cfg.burst_rounds));
  std::vector<Conn> conns(static_cast<std::size_t>(cfg.connections));
  asyncio::Semaphore sem(cfg.parallel);
  const auto t0 = Clock::now();
  {
    std::vector<asyncio::Task<void>> opens;
    for (int i = 0; i < cfg.connections; ++i) {
      opens.push_back(open_one(cfg, i, conns[static_cast<std::size_t>(i)], sem, t));
    }
    co_await asyncio::gather(std::move(opens));
  }
  const double connect_s = seconds_since(t0);
  long connected = 0;
  for (const Conn& c : conns) connected += c.alive ? 1 : 0;
  say(fmt::format("READY {} {} {:.6f} {}", connected, t.connect_failures, connect_s,
                  t.first_error));
  std::string go = co_await asyncio::to_thread([] {
    std::string line;
    std::getline(std::cin, line);
    return line;
  });
  if (go != "GO") throw std::runtime_error("expected GO on stdin, got '" + go + "'");
  std::fprintf(stderr, "c10k client: GO received\n");

  const auto start = Clock::now() + std::chrono::milliseconds(20);
  {
    std::vector<asyncio::Task<void>> all;
    for (int i = 0; i < cfg.connections; ++i) {
      Conn& c = conns[static_cast<std::size_t>(i)];
      if (c.alive) all.push_back(paced(c, i, cfg, start, t));
    }
    co_await asyncio::gather(std::move(all));
  }
  std::fprintf(stderr, "c10k client: paced phase done, %zu echoes\n", t.paced.size());
  const auto b0 = Clock::now();
  {
    std::vector<asyncio::Task<void>> all;
    for (int i = 0; i < cfg.connections; ++i) {
      Conn& c = conns[static_cast<std::size_t>(i)];
      if (c.alive) all.push_back(burst(c, i, cfg, t));
    }
    co_await asyncio::gather(std::move(all));
  }
  const double burst_s = seconds_since(b0);
  std::fprintf(stderr, "c10k client: burst phase done, %zu echoes\n", t.burst.size());
  nlohmann::json j;
  j["paced"] = summary_of(t.paced);
  j["burst"] = summary_of(t.burst);
  j["burst"]["seconds"] = burst_s;
  j["errors"] = t.errors;
  j["mismatches"] = t.mismatches;
  j["first_error"] = t.first_error;
  say("RESULT " + j.dump());
  for (Conn& c : conns) {
    if (c.writer.valid()) c.writer.close();
  }
}

}  // namespace

int run_client(const std::map<std::string, std::string>& flags) {
  ClientConfig cfg;
  cfg.port = static_cast<std::uint16_t>(std::stoi(flags.at("--port")));
  cfg.connections = std::stoi(flags.at("--connections"));
  cfg.paced_rounds = std::stoi(flags.at("--paced-rounds"));
  cfg.period_s = std::stod(flags.at("--period"));
  cfg.burst_rounds = std::stoi(flags.at("--burst-rounds"));
  cfg.parallel = std::stoi(flags.at("--parallel"));
  cfg.deadline_s = std::stod(flags.at("--deadline"));
  const auto deadline = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(cfg.deadline_s));
  asyncio::run(asyncio::timeout(deadline, client_main(cfg)),
               asyncio::RunOptions{.handle_sigint = false});
  return 0;
}

}  // namespace concur::lab::c10k
