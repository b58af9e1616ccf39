// bench/echo/echo_race: TCP echo servers raced on the measurement rules of issue 12.
//
// The figure that compares servers is the server's CPU time per request: utime+stime of the
// server process (/proc/PID/stat) between two quiet points of echo_client (warm-up done, nothing
// in flight; window done, nothing in flight), divided by the requests the client counted in
// between. A single-threaded client cannot saturate the fastest servers, so req/s and latency
// (p50/p99, from the client) are shown but do not rank them. Memory per connection is the growth
// of the server's VmRSS from just after start-up to the second quiet point (every connection
// open), over the connection count. Each run starts a fresh server pinned to CPU 0 and a client
// pinned to CPU 1 (taskset); repetitions interleave the servers round-robin, rotating the order
// each time, and a server's ratio to the reference is the median of its per-repetition ratios.
//
//   echo_race [--quick] [--tls] [--servers libuv,asio,...] [--server NAME=COMMAND]...
//             [--reference NAME] [--python PATH] [--json FILE] [--repetitions N] [--seconds S]
//             [--warmup S] [--scenarios 100x64,10000x64] [--chart-dir DIR]
//
// Built-in servers: concur (concur_echo: concur::asyncio streams, read()), concur-read-into (the
// same with the zero-copy read_into), libuv, asio (the binaries next to this one), uvloop-protocol,
// uvloop-streams, asyncio-protocol, asyncio-streams (bench/peers/python_echo.py under --python).
// --server adds any program that takes "--port 0" and prints "PORT <n>" first, e.g.
//   echo_race --server concur=build/release/bench/concur_echo
//
// --tls races the servers that speak TLS (concur, concur-read-into and the four Python ones; a
// --server too, which then gets --tls-cert F --tls-key K) with the same handlers behind TLS, and
// uvloop-protocol as the reference. echo_race makes a self-signed P-256 certificate for the race
// with the openssl command; every server uses it, and this machine's one libssl picks the same
// TLS 1.3 cipher for each (echo_client offers OpenSSL's default suites). Handshakes happen while
// connecting, before the warm-up, so the window measures the echo through TLS records only.
//
// How each cost grows with the load (issue 22): the sweep
//   echo_race --scenarios 100x64,1000x64,10000x64,50000x64 --chart-dir DIR
// should take under 10 minutes with --repetitions 3 --seconds 2 --warmup 1 and the four servers
// concur, libuv and uvloop's two. --chart-dir DIR draws, after the race, echo-cpu-per-request.svg
// (server CPU per request over the connection count) and echo-memory-per-connection.svg (bytes per
// connection, both axes logarithmic) into DIR (tls-echo-... with --tls), one line per server, from
// the scenarios with the most common message size; a server that failed or was skipped at a load
// leaves a gap there.
//
// Many connections: each of the race's processes needs a file descriptor per connection, so
// echo_race raises its soft and hard RLIMIT_NOFILE (children inherit both) to what the largest
// scenario needs; raising the hard limit needs root (CAP_SYS_RESOURCE), up to fs.nr_open. A
// scenario that needs more than the hard limit allows is not run, and its table says why and
// how to fix it (ulimit -Hn); the others run, and echo_race then exits with code 1. echo_client
// spreads connections over several loopback source addresses, as the ephemeral port range of one
// holds fewer than 50,000 (echo_client.cpp).
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "common/chart.hpp"
#include "common/format.hpp"
#include "machine.hpp"
#include "python.hpp"
#include "stats.hpp"
#include "subprocess.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using concur::bench::format_bytes;
using concur::bench::format_number;
using concur::bench::format_times;
using Child = concur::support::ChildProcess;
using concur::support::find_program;
using concur::support::median_of;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kSkipExitCode = 3;     // a server that cannot run here (python_echo.py: no uvloop)
constexpr int kClientOutOfTime = 4;  // echo_client: could not connect, or requests unanswered
constexpr auto kStartTimeout = 30s;
constexpr auto kStopGrace = 2s;
// Descriptors a process of the race needs besides one per connection (its own files, the
// Python interpreter's, libuv's).
constexpr long kSpareDescriptors = 64;

struct Interrupted {};

// SIGINT and SIGTERM only set a flag, so that echo_race stops its children before it exits (they
// would die with it anyway: ChildProcess sets PR_SET_PDEATHSIG). SIGPIPE is ignored: a child that
// stopped reading its stdin must not kill the race.
volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_interrupt(int) {
  g_interrupted = 1;
}

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() must return so that the flag is seen
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

void check_interrupt() {
  if (g_interrupted != 0) throw Interrupted{};
}

struct Scenario {
  int connections;
  int message_bytes;
  std::string label() const { return fmt::format("{}x{}", connections, message_bytes); }
};

struct Settings {
  bool quick = false;
  int repetitions = 0;
  double seconds = 0;
  double warmup = -1;
  double connect_timeout = 60;
  double run_timeout = 0;
  std::vector<std::string> scenario_args;
  std::vector<std::string> server_args;
  std::vector<std::string> selection;
  bool tls = false;
  std::string tls_cert;  // --tls: the race's certificate and key, made by make_certificate()
  std::string tls_key;
  std::string reference;  // default: libuv, or uvloop-protocol with --tls
  std::string python = concur::support::kDefaultPython;
  std::string client;
  std::string json_path;
  std::string chart_dir;
  std::vector<Scenario> scenarios;
};

struct ServerSpec {
  std::string name;
  std::vector<std::string> argv;
  std::optional<std::string> skipped;  // why it is not run
  bool speaks_tls = true;              // takes --tls-cert F --tls-key K
};

struct Measurement {
  double cpu_us_per_request = NAN;
  double rps = NAN;
  double p50_us = NAN;
  double p99_us = NAN;
  double memory_per_connection = NAN;  // bytes
  long requests = 0;
  long errors = 0;
};

enum class Status { measured, skipped, did_not_finish, failed };

struct Outcome {
  Status status;
  std::string reason;
  Measurement m{};
};

// One server in one scenario.
struct Cell {
  std::vector<std::optional<Measurement>> runs;  // by repetition
  std::vector<std::string> notes;
  bool gave_up = false;
};

using Results = std::map<std::string, Cell>;  // by server name

// One scenario of the race: its results, or why it was not run.
struct ScenarioResults {
  Scenario scenario;
  Results results;
  std::optional<std::string> not_run;
};

// ---------------------------------------------------------------------------------------------
// What the operating system tells about a process.

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// utime + stime (fields 14 and 15 of /proc/PID/stat, every thread included), in seconds.
double cpu_seconds(pid_t pid) {
  const std::string text = slurp(fmt::format("/proc/{}/stat", pid));
  const auto paren = text.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) throw std::runtime_error("unexpected /proc/PID/stat");
  std::istringstream fields(text.substr(paren + 1));
  std::string skipped;
  for (int field = 3; field < 14; ++field) fields >> skipped;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  if (!(fields >> utime >> stime)) throw std::runtime_error("unexpected /proc/PID/stat");
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double rss_bytes(pid_t pid) {
  std::istringstream status(slurp(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024;
  }
  throw std::runtime_error("no VmRSS in /proc/PID/status");
}

std::string executable_dir() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : self.parent_path().string();
}

// Soft and hard limit up to what `connections` need, for the children to inherit; as before,
// the soft limit is at least the hard limit found. Returns the hard limit obtained: without
// CAP_SYS_RESOURCE the hard limit cannot be raised, and scenarios above it are not run.
rlim_t raise_fd_limit(long connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  rlimit want = lim;
  const auto needed = static_cast<rlim_t>(connections + kSpareDescriptors);
  if (want.rlim_max != RLIM_INFINITY) want.rlim_max = std::max(want.rlim_max, needed);
  want.rlim_cur = want.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &want) == 0) return want.rlim_max;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_max;
}

// Why `sc` cannot run under the hard limit `hard`, if it cannot.
std::optional<std::string> descriptor_shortage(const Scenario& sc, rlim_t hard) {
  const long needed = sc.connections + kSpareDescriptors;
  if (hard == RLIM_INFINITY || static_cast<long>(hard) >= needed) return std::nullopt;
  return fmt::format(
      "{} connections need {} file descriptors in the server and in the client, but the hard "
      "limit (ulimit -Hn) is {} and echo_race may not raise it (that needs CAP_SYS_RESOURCE): "
      "raise it before echo_race, with 'ulimit -Hn {}' as root (in a container: docker run "
      "--ulimit nofile={}), or with nofile in /etc/security/limits.conf",
      sc.connections, needed, hard, needed, needed);
}

// ---------------------------------------------------------------------------------------------
// Pinning.

struct Pinning {
  std::optional<std::string> taskset;
  std::string description;
};

Pinning detect_pinning() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || !CPU_ISSET(0, &allowed) ||
      !CPU_ISSET(1, &allowed)) {
    return {std::nullopt, "unpinned: CPUs 0 and 1 are not both available"};
  }
  auto taskset = find_program("taskset");
  if (!taskset) return {std::nullopt, "unpinned: taskset (util-linux) not found"};
  return {taskset, "server pinned to CPU 0, client to CPU 1 (taskset)"};
}

std::vector<std::string> pinned(const Pinning& pin, int cpu, std::vector<std::string> argv) {
  if (pin.taskset) argv.insert(argv.begin(), {*pin.taskset, "-c", std::to_string(cpu)});
  return argv;
}

// ---------------------------------------------------------------------------------------------
// Servers.

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::vector<ServerSpec> builtin_servers(const Settings& s) {
  const std::string dir = executable_dir();
  std::vector<ServerSpec> servers{
      {"concur", {dir + "/concur_echo"}, std::nullopt},
      {"concur-read-into", {dir + "/concur_echo", "--read-into"}, std::nullopt},
      {"libuv", {dir + "/libuv_echo"}, std::nullopt, false},
      {"asio", {dir + "/asio_echo"}, std::nullopt, false}};
  const concur::support::Python python(s.python);
  std::optional<std::string> why_not = python.unavailable();
  std::string script;
  if (!why_not) {
    try {
      script = concur::support::Python::find_script("python_echo.py");
    } catch (const std::exception& e) {
      why_not = e.what();
    }
  }
  for (const char* impl : {"uvloop", "asyncio"}) {
    for (const char* api : {"protocol", "streams"}) {
      servers.push_back({fmt::format("{}-{}", impl, api),
                         {s.python, script, "--impl", impl, "--api", api},
                         why_not});
    }
  }
  return servers;
}

void add_custom_server(std::vector<ServerSpec>& servers, const std::string& arg) {
  const auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || split_words(arg.substr(eq + 1)).empty()) {
    throw std::invalid_argument("--server takes NAME=COMMAND, not '" + arg + "'");
  }
  ServerSpec spec{arg.substr(0, eq), split_words(arg.substr(eq + 1)), std::nullopt};
  for (ServerSpec& existing : servers) {
    if (existing.name == spec.name) {
      existing = spec;
      return;
    }
  }
  servers.push_back(spec);
}

std::vector<ServerSpec> select_servers(const Settings& s) {
  std::vector<ServerSpec> all = builtin_servers(s);
  for (const std::string& arg : s.server_args) add_custom_server(all, arg);
  std::vector<ServerSpec> chosen;
  if (s.selection.empty()) {
    for (const ServerSpec& spec : all) {
      if (!s.tls || spec.speaks_tls) chosen.push_back(spec);
    }
  }
  for (const std::string& name : s.selection) {
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& x) { return x.name == name; });
    if (it == all.end()) {
      std::string known;
      for (const ServerSpec& x : all) known += " " + x.name;
      throw std::invalid_argument("unknown server '" + name + "' (known:" + known + ")");
    }
    if (s.tls && !it->speaks_tls) {
      throw std::invalid_argument("server '" + name + "' speaks no TLS: leave it out of --tls");
    }
    chosen.push_back(*it);
  }
  if (s.tls) {
    for (ServerSpec& spec : chosen) {
      spec.argv.insert(spec.argv.end(), {"--tls-cert", s.tls_cert, "--tls-key", s.tls_key});
    }
  }
  return chosen;
}

// ---------------------------------------------------------------------------------------------
// One run: a fresh server, one client, one scenario.

// The end of a child's stderr, on one line, for a table cell.
std::string short_reason(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  for (char& ch : text) {
    if (ch == '\n') ch = ' ';
  }
  if (text.size() > 240) text = "..." + text.substr(text.size() - 240);
  return text.empty() ? "(nothing on stderr)" : text;
}

std::string exit_reason(std::optional<int> status, const std::string& err) {
  if (status && *status == kSkipExitCode) return short_reason(err);
  const std::string how = !status        ? "still running"
                          : *status >= 0 ? fmt::format("exit code {}", *status)
                                         : fmt::format("killed by signal {}", -*status);
  return how + ": " + short_reason(err);
}

// The port the server printed, or why it did not start.
std::optional<int> await_port(Child& server, std::string& why_not) {
  const auto deadline = Clock::now() + kStartTimeout;
  Child* const children[] = {&server};
  while (Clock::now() < deadline) {
    check_interrupt();
    for (const Child::Line& line : Child::read_lines(children, 100ms)) {
      if (line.stream != 1 || line.text.rfind("PORT ", 0) != 0) continue;
      try {
        return std::stoi(line.text.substr(5));
      } catch (const std::exception&) {
        why_not = "printed a bad PORT line: " + line.text;
        return std::nullopt;
      }
    }
    if (server.outputs_closed() || server.exit_status()) {
      why_not = exit_reason(server.wait_for(kStopGrace), server.stderr_tail());
      return std::nullopt;
    }
  }
  why_not = fmt::format("printed no PORT line in {} s: {}", kStartTimeout.count(),
                        short_reason(server.stderr_tail()));
  return std::nullopt;
}

// --tls: a self-signed certificate for localhost with a P-256 key (the cheapest handshake that
// every peer accepts) in a fresh directory, which the caller removes.
void make_certificate(Settings& s, const std::filesystem::path& dir) {
  const auto openssl = find_program("openssl");
  if (!openssl) {
    throw std::invalid_argument(
        "--tls makes its certificate with the openssl command, which is not installed "
        "(scripts/setup installs it: apt-get install openssl)");
  }
  s.tls_cert = (dir / "cert.pem").string();
  s.tls_key = (dir / "key.pem").string();
  const auto result = concur::support::run_command(
      {*openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", s.tls_key, "-out", s.tls_cert, "-days", "2", "-subj", "/CN=localhost"},
      30s);
  if (result.exit_code != 0) {
    throw std::runtime_error("openssl req could not make the race's certificate: " +
                             short_reason(result.err));
  }
}

std::vector<std::string> client_argv(const Settings& s, const Scenario& sc, int port) {
  std::vector<std::string> argv{s.client,
                                "--host",
                                "127.0.0.1",
                                "--port",
                                std::to_string(port),
                                "--connections",
                                std::to_string(sc.connections),
                                "--message-bytes",
                                std::to_string(sc.message_bytes),
                                "--seconds",
                                fmt::format("{}", s.seconds),
                                "--warmup",
                                fmt::format("{}", s.warmup),
                                "--connect-timeout",
                                fmt::format("{}", s.connect_timeout),
                                "--sync-stdin"};
  if (s.tls) argv.push_back("--tls");
  return argv;
}

// What the server did between the client's two quiet points.
struct Window {
  std::optional<double> cpu_start;
  std::optional<double> cpu_end;
  double rss_end = 0;
  std::string client_json;
};

void on_client_line(const Child::Line& line, Child& server, Child& client, Window& w) {
  if (line.stream == 1) {
    if (line.text.rfind('{', 0) == 0) w.client_json = line.text;
  } else if (line.text == "MARK quiet-start") {
    w.cpu_start = cpu_seconds(server.pid());
    client.send_line("go");
  } else if (line.text == "MARK quiet-end") {
    w.cpu_end = cpu_seconds(server.pid());
    w.rss_end = rss_bytes(server.pid());
    client.send_line("go");
  }
}

Outcome measure(const Window& w, const Scenario& sc, double rss_start) {
  if (!w.cpu_start || !w.cpu_end) return {Status::failed, "echo_client did not mark its window"};
  const json r = json::parse(w.client_json, nullptr, false);
  if (!r.is_object()) return {Status::failed, "echo_client printed no JSON result"};
  Measurement m;
  m.requests = r.value("requests", 0L);
  if (m.requests <= 0) return {Status::failed, "no request was answered in the window"};
  m.cpu_us_per_request = (*w.cpu_end - *w.cpu_start) * 1e6 / static_cast<double>(m.requests);
  m.rps = r.value("rps", NAN);
  m.p50_us = r.value("p50_us", NAN);
  m.p99_us = r.value("p99_us", NAN);
  m.errors = r.value("errors", 0L);
  m.memory_per_connection = (w.rss_end - rss_start) / sc.connections;
  return {Status::measured, "", m};
}

Outcome drive_client(Child& server, Child& client, const Scenario& sc, const Settings& s,
                     double rss_start) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(s.run_timeout);
  Child* const children[] = {&server, &client};
  Window w;
  while (!client.outputs_closed()) {
    check_interrupt();
    if (Clock::now() >= deadline) {
      return {Status::did_not_finish, fmt::format("ran past the {:g} s limit", s.run_timeout)};
    }
    for (const Child::Line& line : Child::read_lines(children, 200ms)) {
      if (line.child == &client) on_client_line(line, server, client, w);
    }
    if (server.exit_status()) {
      return {Status::failed, "the server exited during the run: " +
                                  exit_reason(server.exit_status(), server.stderr_tail())};
    }
  }
  const std::optional<int> status = client.wait_for(10s);
  if (status == kClientOutOfTime) {
    return {Status::did_not_finish, short_reason(client.stderr_tail())};
  }
  if (status != 0) {
    return {Status::failed, "echo_client: " + exit_reason(status, client.stderr_tail())};
  }
  return measure(w, sc, rss_start);
}

Outcome run_once(const ServerSpec& spec, const Scenario& sc, const Settings& s,
                 const Pinning& pin) {
  std::vector<std::string> argv = spec.argv;
  argv.insert(argv.end(), {"--port", "0"});
  std::optional<Child> server;
  try {
    if (!find_program(argv[0])) {
      return {Status::skipped, "cannot find the program " + argv[0]};
    }
    server.emplace(pinned(pin, 0, argv), Child::Stdin::null, Child::Stderr::pipe);
  } catch (const std::runtime_error& e) {
    return {Status::skipped, e.what()};
  }
  std::string why_not;
  const std::optional<int> port = await_port(*server, why_not);
  if (!port) return {Status::skipped, why_not};
  try {
    const double rss_start = rss_bytes(server->pid());
    Child client(pinned(pin, 1, client_argv(s, sc, *port)), Child::Stdin::pipe,
                 Child::Stderr::pipe);
    Outcome outcome = drive_client(*server, client, sc, s, rss_start);
    client.stop(kStopGrace);
    bool killed = false;
    server->stop(kStopGrace, &killed);
    if (killed && outcome.status == Status::measured) outcome.reason = "needed SIGKILL to stop";
    return outcome;
  } catch (const std::runtime_error& e) {  // the server vanished while /proc was read
    return {Status::failed, e.what()};
  }
}

// ---------------------------------------------------------------------------------------------
// Tables.

template <class Field>
std::vector<double> values_of(const Cell& cell, Field field) {
  std::vector<double> v;
  for (const auto& run : cell.runs) {
    if (run) v.push_back((*run).*field);
  }
  return v;
}

// For each repetition both ran in, this server's CPU per request over the reference's.
std::vector<double> paired_ratios(const Cell& cell, const Cell* reference) {
  std::vector<double> ratios;
  if (reference == nullptr) return ratios;
  for (std::size_t i = 0; i < cell.runs.size() && i < reference->runs.size(); ++i) {
    if (cell.runs[i] && reference->runs[i] && reference->runs[i]->cpu_us_per_request > 0) {
      ratios.push_back(cell.runs[i]->cpu_us_per_request / reference->runs[i]->cpu_us_per_request);
    }
  }
  return ratios;
}

std::string notes_of(const Cell& cell, const std::optional<std::string>& skipped) {
  if (skipped) return "skipped: " + *skipped;
  std::string text;
  const auto errors = values_of(cell, &Measurement::errors);
  double total_errors = 0;
  for (double e : errors) total_errors += e;
  if (total_errors > 0) text = fmt::format("{:.0f} connection errors; ", total_errors);
  for (const std::string& n : cell.notes) text += n + "; ";
  if (text.size() >= 2) text.resize(text.size() - 2);
  return text;
}

void print_table(const Scenario& sc, const std::vector<ServerSpec>& servers, const Results& results,
                 const Settings& s) {
  const auto ref = results.find(s.reference);
  const Cell* reference = ref == results.end() ? nullptr : &ref->second;
  fmt::print("\n{} connections, {}-byte messages; medians of up to {} repetitions\n",
             sc.connections, sc.message_bytes, s.repetitions);
  const std::string ratio_title = "vs " + s.reference;
  const std::size_t ratio_width = std::max<std::size_t>(9, ratio_title.size());
  fmt::print("  {:<18} {:>11} {:>{}} {:>9} {:>9} {:>9} {:>10}  {}\n", "server", "CPU us/req",
             ratio_title, ratio_width, "req/s", "p50 us", "p99 us", "mem/conn", "notes");
  for (const ServerSpec& spec : servers) {
    const auto it = results.find(spec.name);
    const Cell empty;
    const Cell& cell = it == results.end() ? empty : it->second;
    const auto cpu = values_of(cell, &Measurement::cpu_us_per_request);
    const auto ratios = paired_ratios(cell, reference);
    fmt::print("  {:<18} {:>11} {:>{}} {:>9} {:>9} {:>9} {:>10}  {}\n", spec.name,
               format_number(median_of(cpu)),
               ratios.empty() ? "-" : format_times(median_of(ratios)), ratio_width,
               format_number(median_of(values_of(cell, &Measurement::rps))),
               format_number(median_of(values_of(cell, &Measurement::p50_us))),
               format_number(median_of(values_of(cell, &Measurement::p99_us))),
               format_bytes(median_of(values_of(cell, &Measurement::memory_per_connection))),
               notes_of(cell, spec.skipped));
  }
  std::fflush(stdout);
}

json summary(const std::vector<double>& values) {
  json j{{"values", values}};
  if (!values.empty()) j["median"] = median_of(values);
  return j;
}

json cell_json(const Cell& cell, const Cell* reference, const std::optional<std::string>& skipped) {
  if (skipped) return {{"skipped", *skipped}};
  return {{"cpu_us_per_request", summary(values_of(cell, &Measurement::cpu_us_per_request))},
          {"vs_reference", summary(paired_ratios(cell, reference))},
          {"rps", summary(values_of(cell, &Measurement::rps))},
          {"p50_us", summary(values_of(cell, &Measurement::p50_us))},
          {"p99_us", summary(values_of(cell, &Measurement::p99_us))},
          {"memory_per_connection_bytes",
           summary(values_of(cell, &Measurement::memory_per_connection))},
          {"requests", summary(values_of(cell, &Measurement::requests))},
          {"errors", summary(values_of(cell, &Measurement::errors))},
          {"notes", cell.notes}};
}

json scenario_json(const Scenario& sc, const std::vector<ServerSpec>& servers,
                   const Results& results, const Settings& s) {
  const auto ref = results.find(s.reference);
  const Cell* reference = ref == results.end() ? nullptr : &ref->second;
  json j{{"connections", sc.connections}, {"message_bytes", sc.message_bytes}};
  for (const ServerSpec& spec : servers) {
    const auto it = results.find(spec.name);
    j["servers"][spec.name] =
        cell_json(it == results.end() ? Cell{} : it->second, reference, spec.skipped);
  }
  return j;
}

// ---------------------------------------------------------------------------------------------
// The race.

void add_note(Cell& cell, const std::string& note) {
  if (std::find(cell.notes.begin(), cell.notes.end(), note) == cell.notes.end()) {
    cell.notes.push_back(note);
  }
}

void record(const Outcome& o, ServerSpec& spec, Cell& cell, int rep) {
  const bool measured_before =
      std::any_of(cell.runs.begin(), cell.runs.end(), [](const auto& r) { return r.has_value(); });
  if (o.status == Status::measured) {
    cell.runs[static_cast<std::size_t>(rep)] = o.m;
    if (!o.reason.empty()) add_note(cell, o.reason);
  } else if (o.status == Status::skipped && !measured_before) {
    spec.skipped = o.reason;  // it cannot start here: not tried again, in any scenario
  } else if (o.status == Status::did_not_finish) {
    // Trying it again would only take as long again.
    add_note(cell, fmt::format("did not finish (repetition {}): {}", rep + 1, o.reason));
    cell.gave_up = true;
  } else {
    add_note(cell, fmt::format("failed (repetition {}): {}", rep + 1, o.reason));
  }
}

void report_progress(const Scenario& sc, int rep, const Settings& s, const ServerSpec& spec,
                     const Outcome& o) {
  const std::string what =
      o.status == Status::measured
          ? fmt::format("{} us/req, {} req/s, p99 {} us", format_number(o.m.cpu_us_per_request),
                        format_number(o.m.rps), format_number(o.m.p99_us))
          : (o.status == Status::skipped          ? "skipped: "
             : o.status == Status::did_not_finish ? "did not finish: "
                                                  : "failed: ") +
                o.reason;
  fmt::print(stderr, "  {:<10} {}/{}  {:<18} {}\n", sc.label(), rep + 1, s.repetitions, spec.name,
             what);
}

Results race_scenario(const Scenario& sc, std::vector<ServerSpec>& servers, const Settings& s,
                      const Pinning& pin) {
  Results results;
  for (const ServerSpec& spec : servers) {
    results[spec.name].runs.resize(static_cast<std::size_t>(s.repetitions));
  }
  for (int rep = 0; rep < s.repetitions; ++rep) {
    for (std::size_t k = 0; k < servers.size(); ++k) {
      ServerSpec& spec = servers[(k + static_cast<std::size_t>(rep)) % servers.size()];
      Cell& cell = results[spec.name];
      if (spec.skipped || cell.gave_up) continue;
      const Outcome o = run_once(spec, sc, s, pin);
      report_progress(sc, rep, s, spec, o);
      record(o, spec, cell, rep);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Charts: how each cost grows with the connection count.

// The message size most scenarios share (the first of those tied): the charts hold it fixed.
int charted_message_bytes(const std::vector<ScenarioResults>& all) {
  std::map<int, int> count;
  for (const ScenarioResults& r : all) ++count[r.scenario.message_bytes];
  int best = all.front().scenario.message_bytes;
  for (const ScenarioResults& r : all) {
    if (count[r.scenario.message_bytes] > count[best]) best = r.scenario.message_bytes;
  }
  return best;
}

// One series per server that has a point anywhere: the median at each connection count, NaN (a
// gap) where it failed, was skipped or the scenario was not run.
std::vector<concur::bench::ChartSeries> chart_series(const std::vector<ScenarioResults>& all,
                                                     const std::vector<ServerSpec>& servers,
                                                     int message_bytes,
                                                     double Measurement::*field) {
  std::vector<const ScenarioResults*> charted;
  for (const ScenarioResults& r : all) {
    if (r.scenario.message_bytes == message_bytes) charted.push_back(&r);
  }
  std::stable_sort(charted.begin(), charted.end(), [](const auto* a, const auto* b) {
    return a->scenario.connections < b->scenario.connections;
  });
  std::vector<concur::bench::ChartSeries> series;
  for (const ServerSpec& spec : servers) {
    concur::bench::ChartSeries line{spec.name, {}};
    bool any = false;
    for (const ScenarioResults* r : charted) {
      double y = NAN;
      const auto it = r->results.find(spec.name);
      if (it != r->results.end()) {
        const std::vector<double> values = values_of(it->second, field);
        if (!values.empty()) y = median_of(values);
      }
      any = any || std::isfinite(y);
      line.points.emplace_back(r->scenario.connections, y);
    }
    if (any) series.push_back(std::move(line));
  }
  return series;
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[16];
  return std::strftime(text, sizeof text, "%Y-%m-%d", &local) > 0 ? text : "";
}

void write_charts(const Settings& s, const std::vector<ServerSpec>& servers,
                  const std::vector<ScenarioResults>& all,
                  const concur::support::MachineInfo& machine) {
  if (all.empty()) return;
  const int bytes = charted_message_bytes(all);
  const std::string protocol = s.tls ? "TLS" : "TCP";
  const std::string caption =
      fmt::format("{} cores ({}), {}; {}; {}-byte messages; median of {} repetition{}",
                  machine.cores, machine.cpu_model, machine.kernel, today(), bytes, s.repetitions,
                  s.repetitions == 1 ? "" : "s");
  concur::bench::ChartAxis connections;
  connections.label = "connections";
  connections.log = true;
  std::filesystem::create_directories(s.chart_dir);
  const std::string prefix = s.tls ? "tls-echo-" : "echo-";

  // Filled member by member: GCC 12 sees an uninitialized string in the aggregate form.
  concur::bench::LineChart cpu;
  cpu.title = protocol + " echo: server CPU time per request (lower is better)";
  cpu.x = connections;
  cpu.y.label = "server CPU per request (µs)";
  cpu.series = chart_series(all, servers, bytes, &Measurement::cpu_us_per_request);
  cpu.caption = caption;
  const std::string cpu_path =
      (std::filesystem::path(s.chart_dir) / (prefix + "cpu-per-request.svg")).string();
  concur::bench::write_svg(cpu, cpu_path);

  concur::bench::LineChart memory;
  memory.title = protocol + " echo: server memory per open connection";
  memory.x = connections;
  memory.y.label = "server RSS growth per connection (bytes)";
  memory.y.log = true;
  memory.series = chart_series(all, servers, bytes, &Measurement::memory_per_connection);
  memory.caption = caption;
  const std::string memory_path =
      (std::filesystem::path(s.chart_dir) / (prefix + "memory-per-connection.svg")).string();
  concur::bench::write_svg(memory, memory_path);
  fmt::print("\nwrote {} and {}\n", cpu_path, memory_path);
}

// ---------------------------------------------------------------------------------------------

void print_not_run(const ScenarioResults& r) {
  fmt::print("\n{} connections, {}-byte messages: not run: {}\n", r.scenario.connections,
             r.scenario.message_bytes, *r.not_run);
  std::fflush(stdout);
}

json run_race(Settings& s, rlim_t fd_hard_limit) {
  std::vector<ServerSpec> servers = select_servers(s);
  const Pinning pin = detect_pinning();
  const concur::support::MachineInfo machine_info = concur::support::machine_info();
  const std::string machine = concur::support::describe(machine_info);
  fmt::print("{} echo race: server CPU time per request (lower is better), {} repetitions\n",
             s.tls ? "TLS" : "TCP", s.repetitions);
  fmt::print("machine: {}\n{}; warm-up {} s, window {} s; python: {}\n", machine, pin.description,
             s.warmup, s.seconds, s.python);
  if (std::none_of(servers.begin(), servers.end(),
                   [&](const ServerSpec& x) { return x.name == s.reference; })) {
    fmt::print("reference '{}' is not in the race: no ratios\n", s.reference);
  }
  std::fflush(stdout);
  json out{{"machine", machine},        {"pinning", pin.description},
           {"reference", s.reference},  {"warmup_s", s.warmup},
           {"window_s", s.seconds},     {"repetitions", s.repetitions},
           {"python", s.python},        {"tls", s.tls},
           {"scenarios", json::array()}};
  std::vector<ScenarioResults> all;
  for (const Scenario& sc : s.scenarios) {
    ScenarioResults& r = all.emplace_back(ScenarioResults{sc, {}, std::nullopt});
    r.not_run = descriptor_shortage(sc, fd_hard_limit);
    if (r.not_run) {
      fmt::print(stderr, "  {:<10} not run: {}\n", sc.label(), *r.not_run);
      print_not_run(r);
      out["scenarios"].push_back(json{{"connections", sc.connections},
                                      {"message_bytes", sc.message_bytes},
                                      {"not_run", *r.not_run}});
      continue;
    }
    r.results = race_scenario(sc, servers, s, pin);
    print_table(sc, servers, r.results, s);
    out["scenarios"].push_back(scenario_json(sc, servers, r.results, s));
  }
  if (!s.chart_dir.empty()) write_charts(s, servers, all, machine_info);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options.

Scenario parse_scenario(const std::string& text) {
  const auto x = text.find('x');
  try {
    if (x != std::string::npos) {
      Scenario sc{std::stoi(text.substr(0, x)), std::stoi(text.substr(x + 1))};
      if (sc.connections > 0 && sc.message_bytes > 0) return sc;
    }
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("a scenario is CONNECTIONSxBYTES, e.g. 1000x64, not '" + text + "'");
}

void resolve(Settings& s) {
  if (s.repetitions <= 0) s.repetitions = s.quick ? 3 : 7;
  if (s.seconds <= 0) s.seconds = s.quick ? 2 : 5;
  if (s.warmup < 0) s.warmup = s.quick ? 1 : 2;
  if (s.run_timeout <= 0) s.run_timeout = s.connect_timeout + s.warmup + s.seconds + 45;
  if (s.reference.empty()) s.reference = s.tls ? "uvloop-protocol" : "libuv";
  if (s.client.empty()) s.client = executable_dir() + "/echo_client";
  if (!find_program(s.client)) {
    throw std::invalid_argument("no echo_client at " + s.client + " (build it, or pass --client)");
  }
  if (s.scenario_args.empty() && s.tls) {
    s.scenarios = s.quick ? std::vector<Scenario>{{100, 64}, {1000, 64}}
                          : std::vector<Scenario>{{100, 64}, {1000, 64}, {100, 65536}};
  } else if (s.scenario_args.empty()) {
    s.scenarios = s.quick ? std::vector<Scenario>{{100, 64}, {1000, 64}}
                          : std::vector<Scenario>{{100, 64}, {1000, 64}, {10000, 64}, {100, 65536}};
  }
  for (const std::string& text : s.scenario_args) s.scenarios.push_back(parse_scenario(text));
}

void add_options(CLI::App& app, Settings& s) {
  app.add_flag("--quick", s.quick, "2 scenarios, 3 repetitions, 1 s warm-up, 2 s windows");
  app.add_flag("--tls", s.tls, "race the servers that speak TLS, over TLS");
  app.add_option("--servers", s.selection, "which servers run, e.g. libuv,asio (default: all)")
      ->delimiter(',');
  app.add_option("--server", s.server_args,
                 "NAME=COMMAND: another server (COMMAND gets --port 0, prints PORT <n>)")
      ->allow_extra_args(false);
  app.add_option("--reference", s.reference,
                 "the server ratios are taken against (libuv; uvloop-protocol with --tls)");
  app.add_option("--python", s.python, "the CPython for the asyncio and uvloop servers");
  app.add_option("--json", s.json_path, "also write the results as JSON");
  app.add_option("--repetitions", s.repetitions, "default 7 (3 with --quick)");
  app.add_option("--seconds", s.seconds, "the measured window of each run");
  app.add_option("--warmup", s.warmup, "seconds of load before the window");
  app.add_option("--scenarios", s.scenario_args, "CONNECTIONSxBYTES,... e.g. 100x64,10000x64")
      ->delimiter(',');
  app.add_option("--connect-timeout", s.connect_timeout, "seconds to get every connection in");
  app.add_option("--run-timeout", s.run_timeout,
                 "seconds a run may take before it is marked 'did not finish'");
  app.add_option("--chart-dir", s.chart_dir,
                 "after the race, write echo-cpu-per-request.svg and "
                 "echo-memory-per-connection.svg (over the connection count) here");
  app.add_option("--client", s.client, "the echo_client binary (default: next to echo_race)");
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"TCP echo servers raced on server CPU time per request (bench/echo/echo_race.cpp)"};
  add_options(app, s);
  CLI11_PARSE(app, argc, argv);
  install_interrupt_handlers();
  // --tls: the race's certificate, in a directory removed however the race ends.
  struct TempDir {
    std::filesystem::path path;
    ~TempDir() {
      std::error_code ec;
      if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
  } cert_dir;
  try {
    resolve(s);
    int most = 0;
    for (const Scenario& sc : s.scenarios) most = std::max(most, sc.connections);
    const rlim_t fd_hard_limit = raise_fd_limit(most);
    if (s.tls) {
      std::string pattern = (std::filesystem::temp_directory_path() / "echo_race.XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
      cert_dir.path = pattern;
      make_certificate(s, cert_dir.path);
    }
    const json out = run_race(s, fd_hard_limit);
    if (!s.json_path.empty()) {
      std::ofstream(s.json_path) << out.dump(2) << '\n';
      fmt::print("\nwrote {}\n", s.json_path);
    }
    // A sweep with a load missing is incomplete: a script must not take it for a full one.
    const auto& done = out["scenarios"];
    const auto missing = std::count_if(done.begin(), done.end(),
                                       [](const json& sc) { return sc.contains("not_run"); });
    if (missing > 0) {
      fmt::print(stderr, "echo_race: {} scenario(s) not run for want of file descriptors\n",
                 missing);
      return 1;
    }
    return 0;
  } catch (const Interrupted&) {
    fmt::print(stderr, "echo_race: interrupted; every server and client was stopped\n");
    return 130;
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_race: {}\n", e.what());
    return 1;
  }
}
