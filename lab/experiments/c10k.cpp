// c10k: ten thousand connections served by one thread.
//
// Claim (in our words): because an event loop never switches OS threads, one thread can serve
// ten thousand network connections at once, promptly and in little memory (the tutorial: on a
// small board with 1 GB of RAM).
//
// Workload: an echo server on 127.0.0.1 in a process of its own, and a client process (concur-lab
// itself, `concur-lab __c10k client`, one thread of concur::asyncio) that opens kConnections
// connections (kQuickConnections with --quick; fewer if RLIMIT_NOFILE is too low even at its hard
// limit, said in a note), at most kConnectParallel connects at a time, each echoing one message
// to show it is served. With every connection open, concur-lab reads the server's VmRSS and
// thread count from /proc/PID/status (against its VmRSS before any connection). Then two phases,
// on every connection at once, each echo of kMessageBytes checked byte for byte:
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
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <concur/asyncio.hpp>
#include <concur/asyncio/streams.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "c10k.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "stats.hpp"
#include "svg.hpp"

extern char** environ;

namespace concur::lab {
namespace {

using c10k::kBoundedP99;
using c10k::kConnections;
using c10k::kMemoryBudgetMiB;
constexpr int kQuickConnections = 1'000;
constexpr std::size_t kMessageBytes = 64;
constexpr int kConnectParallel = 256;
constexpr int kBacklog = 1024;
constexpr int kReservedFds = 64;  // descriptors a process needs besides its connections
constexpr const char* kHost = "127.0.0.1";

struct Load {
  int connections;
  int paced_rounds;
  double period_s;
  int burst_rounds;
};
constexpr Load kFullLoad{kConnections, 3, c10k::kPacedPeriodS, 5};
constexpr Load kQuickLoad{kQuickConnections, 2, c10k::kPacedPeriodS, 3};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force.
long raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur != lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(lim.rlim_cur);
}

void say(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// =============================================================================================
// The helper processes: `concur-lab __c10k server-asyncio|server-threads|client ...`

std::map<std::string, std::string> parse_flags(int argc, char** argv, int first) {
  std::map<std::string, std::string> flags;
  for (int i = first; i + 1 < argc; i += 2) flags[argv[i]] = argv[i + 1];
  return flags;
}

// --- server: concur::asyncio ----------------------------------------------------------------

asyncio::Task<void> echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  try {
    for (;;) {
      std::string data = co_await reader.read(65536);
      if (data.empty()) break;  // EOF
      writer.write(data);
      co_await writer.drain();
    }
  } catch (const ConnectionError&) {
    // The client is gone, and so is this connection.
  }
  writer.close();
}

asyncio::Task<void> serve_with_loop(int backlog) {
  asyncio::ServerOptions server_options;
  server_options.backlog = backlog;
  asyncio::Server server = co_await asyncio::start_server(echo, kHost, 0, server_options);
  say(fmt::format("PORT {}", server.port()));
  co_await server.serve_forever();
}

// --- server: one OS thread per connection ---------------------------------------------------

void echo_blocking(int fd) {
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    for (ssize_t sent = 0; sent < n;) {
      const ssize_t k = send(fd, buf + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
      if (k <= 0) {
        close(fd);
        return;
      }
      sent += k;
    }
  }
  close(fd);
}

int serve_with_threads(int backlog) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, kHost, &addr.sin_addr);
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, backlog) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    say(fmt::format("ERROR cannot listen: {}", std::strerror(errno)));
    return 1;
  }
  say(fmt::format("PORT {}", ntohs(addr.sin_port)));
  long started = 0;
  bool thread_failure_told = false;
  bool accept_failure_told = false;
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (!accept_failure_told) {
        say(fmt::format("ACCEPT_FAIL {} {}", started, std::strerror(errno)));
        accept_failure_told = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    try {
      std::thread(echo_blocking, fd).detach();
      ++started;
    } catch (const std::system_error& e) {
      close(fd);  // this connection is refused: the client sees it closed
      if (!thread_failure_told) {
        say(fmt::format("THREAD_FAIL {} {}", started, e.what()));
        thread_failure_told = true;
      }
    }
  }
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

}  // namespace

int run_c10k_helper(int argc, char** argv) {
  // argv: concur-lab __c10k MODE [--flag value]...
  if (argc < 3) return 2;
  raise_fd_limit();
  const std::string mode = argv[2];
  const auto flags = parse_flags(argc, argv, 3);
  try {
    const int backlog = flags.count("--backlog") ? std::stoi(flags.at("--backlog")) : kBacklog;
    if (mode == "server-asyncio") {
      asyncio::run(serve_with_loop(backlog), asyncio::RunOptions{.handle_sigint = false});
      return 0;
    }
    if (mode == "server-threads") return serve_with_threads(backlog);
    if (mode == "client") return run_client(flags);
    say("ERROR unknown mode " + mode);
    return 2;
  } catch (const std::exception& e) {
    say(std::string("ERROR ") + e.what());
    return 1;
  }
}

// =============================================================================================
// The experiment: starts each server and the client as child processes and watches them.

namespace {

// A child process: argv run with stdout on a pipe (read by lines), stdin on a pipe or /dev/null,
// stderr in an unlinked temporary file (its tail is shown on failure). It dies with this program
// (PR_SET_PDEATHSIG) and is stopped (SIGTERM, then SIGKILL) and reaped on destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, bool with_stdin) {
    int out[2] = {-1, -1};
    int in[2] = {-1, -1};
    char err_path[] = "/tmp/concur-lab-c10k-XXXXXX";
    err_ = mkostemp(err_path, O_CLOEXEC);
    if (err_ < 0 || pipe2(out, O_CLOEXEC) != 0 || (with_stdin && pipe2(in, O_CLOEXEC) != 0)) {
      const int e = errno;
      for (int fd : {out[0], out[1], in[0], in[1], err_}) {
        if (fd >= 0) close(fd);
      }
      if (err_ >= 0) unlink(err_path);
      err_ = -1;
      throw std::system_error(e, std::generic_category(), "c10k: pipe or temporary file");
    }
    unlink(err_path);
    const int null_fd = with_stdin ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls from here to exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      dup2(with_stdin ? in[0] : null_fd, 0);
      dup2(out[1], 1);
      dup2(err_, 2);
      execve(args[0], args.data(), environ);
      _exit(127);
    }
    const int fork_errno = errno;
    if (null_fd >= 0) close(null_fd);
    close(out[1]);
    out_ = out[0];
    if (with_stdin) {
      close(in[0]);
      in_ = in[1];
    }
    if (pid_ < 0) {
      close_fds();
      throw std::system_error(fork_errno, std::generic_category(), "c10k: fork");
    }
  }
  ~Child() {
    stop();
    close_fds();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // The next line of its stdout, or nullopt after `timeout` or at end of file.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const std::size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (out_ < 0) return std::nullopt;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{out_, POLLIN, 0};
      const int n = poll(&p, 1, static_cast<int>(std::max<long>(0, left)));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      char buf[4096];
      const ssize_t got = read(out_, buf, sizeof buf);
      if (got <= 0) {
        close(out_);
        out_ = -1;
        continue;
      }
      buffer_.append(buf, static_cast<std::size_t>(got));
    }
  }

  bool send_line(const std::string& line) {
    const std::string text = line + "\n";
    return in_ >= 0 && write(in_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  }

  // Waits up to `timeout` for it to exit; true if it did (and was reaped).
  bool wait_exit(std::chrono::milliseconds timeout) {
    if (reaped_ || pid_ <= 0) return true;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        reaped_ = true;
        return true;
      }
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // SIGTERM, SIGKILL if it is still there after a grace period; reaped.
  void stop() {
    if (reaped_ || pid_ <= 0) return;
    kill(pid_, SIGTERM);
    if (!wait_exit(std::chrono::seconds(3))) {
      kill(pid_, SIGKILL);
      wait_exit(std::chrono::seconds(30));
    }
  }

  // The last bytes it wrote to stderr.
  std::string stderr_tail() const {
    struct stat st {};
    if (err_ < 0 || fstat(err_, &st) != 0) return {};
    const off_t from = std::max<off_t>(0, st.st_size - 1500);
    std::string text(static_cast<std::size_t>(st.st_size - from), '\0');
    const ssize_t n = pread(err_, text.data(), text.size(), from);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
  }

 private:
  void close_fds() {
    for (int* fd : {&out_, &in_, &err_}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
  }
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  int err_ = -1;
  bool reaped_ = false;
  std::string buffer_;
};

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

void collect_server_lines(Child& server, ServerRun& run) {
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

  Child server(argv, false);
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

  Child client({self_path(), kC10kHelper, "client", "--port", port, "--connections",
                std::to_string(load.connections), "--paced-rounds",
                std::to_string(load.paced_rounds), "--period", fmt::format("{}", load.period_s),
                "--burst-rounds", std::to_string(load.burst_rounds), "--parallel",
                std::to_string(kConnectParallel), "--deadline",
                fmt::format("{}", std::chrono::duration<double>(connect_budget).count() + phase_s)},
               true);
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
  if (!client.wait_exit(std::chrono::seconds(10))) {
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
