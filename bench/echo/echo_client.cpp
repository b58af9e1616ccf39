// bench/echo/echo_client: the load generator of echo_race, one thread on epoll. Every connection
// sends one message, waits for the whole echo, checks it byte for byte, then sends the next.
//
// Phases: connect (at most --connect-batch connections not yet proven accepted at a time, so a
// listen backlog of 100, Python's default, is never overrun), warm-up, a quiet point (nothing in
// flight), the measured window, a second quiet point, then every socket is closed. Only requests
// completed between the two quiet points are counted, and their latency (send start to full echo)
// recorded, so a server's CPU time between the quiet points is exactly the work of those requests.
//
//   echo_client --port 5000 --connections 1000 --message-bytes 64 --seconds 5 --warmup 2
//
// Prints one JSON line on stdout: {"requests", "seconds", "rps", "p50_us", "p99_us",
// "connections", "message_bytes", "errors"}. With --sync-stdin (echo_race) it also prints
// "MARK connected", "MARK quiet-start" and "MARK quiet-end" on stderr, and at each quiet point
// waits for a line on stdin before going on. Exit codes: 0 done; 1 error (an echo that differs
// from what was sent, a bad option, too few file descriptors); 4 out of time (not every
// connection accepted within --connect-timeout, or requests unanswered 10 s after a phase).
//
// One source address holds at most one connection per local port to the server's one port, and
// this machine's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999: ~28,000) is smaller
// than the largest load (50,000). So connection i is bound to 127.0.0.(1 + i % N) before its
// connect(), with IP_BIND_ADDRESS_NO_PORT (the port is still chosen by connect(), unique per
// source address and destination, not reserved by bind()). Linux routes all of 127.0.0.0/8 to lo,
// so no setup is needed. --source-addresses N picks N; by default there is one per 10,000
// connections (one up to 10,000, five for 50,000), not the ~28,000 an address could hold:
// connect() searches the range for a free port, even ports first, and that search grows with
// how full the range is. Here 19,900 connections took 14 s to connect from one address and
// 0.9 s from two.
//
// File descriptors: the client raises its soft and hard RLIMIT_NOFILE to what --connections
// needs (raising the hard limit needs root, up to fs.nr_open); if it cannot, it exits naming the
// fix (ulimit -Hn).
//
// --tls speaks TLS (OpenSSL on the socket, non-blocking; the default TLS 1.3 suite of this
// OpenSSL): every connection does its handshake before its first echo, so handshakes are part of
// connecting and never of the measured window. The server's certificate is not verified: this
// client talks only to 127.0.0.1, to a server echo_race started with a certificate it made.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration;

// Payloads are windows into one random buffer, starting at an offset that changes with the
// connection and the request, so that an echo of the wrong bytes (another connection's, or a
// previous request's) cannot pass the check.
constexpr std::uint32_t kOffsets = 251;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr auto kDrainTimeout = std::chrono::seconds(10);
constexpr auto kGoTimeout = std::chrono::seconds(60);
constexpr int kReportedErrors = 5;
constexpr int kConnectionsPerAddress = 10000;  // see the header comment
constexpr int kMaxSourceAddresses = 254;       // 127.0.0.1 to 127.0.0.254

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 100;
  int message_bytes = 64;
  double seconds = 5;
  double warmup = 1;
  int connect_batch = 64;
  int source_addresses = 0;  // 0: as many as the connections need
  double connect_timeout = 60;
  bool sync_stdin = false;
  bool tls = false;
};

struct Fatal : std::runtime_error {
  Fatal(int code_, const std::string& what) : std::runtime_error(what), code(code_) {}
  int code;
};

struct Conn {
  int fd = -1;
  std::uint32_t index = 0;
  bool connecting = false;   // connect() issued, not yet completed
  bool handshaking = false;  // --tls: connected, TLS handshake not yet done
  SSL* ssl = nullptr;        // --tls only
  bool busy = false;         // a message is in flight
  bool want_out = false;     // EPOLLOUT is registered
  std::uint32_t sent = 0;
  std::uint32_t received = 0;
  std::uint32_t offset = 0;
  std::uint32_t attempts = 0;
  std::uint64_t seq = 0;
  Clock::time_point started;
};

Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(duration<double>(seconds));
}

// Soft and hard limit up to what the connections need (the hard one only as root, up to
// fs.nr_open); the soft limit never drops below the hard limit it found, as before.
void raise_fd_limit(int connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) throw Fatal(1, "getrlimit failed");
  const rlim_t needed = static_cast<rlim_t>(connections) + 32;
  rlimit want = lim;
  if (want.rlim_max != RLIM_INFINITY) want.rlim_max = std::max(want.rlim_max, needed);
  want.rlim_cur = want.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &want) == 0) return;
  lim.rlim_cur = lim.rlim_max;  // not permitted to raise the hard limit: take what it allows
  setrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < needed) {
    throw Fatal(1, std::to_string(connections) + " connections need " + std::to_string(needed) +
                       " file descriptors, but the hard limit (ulimit -Hn) is " +
                       std::to_string(lim.rlim_max) + " and only root can raise it: run 'ulimit " +
                       "-Hn " + std::to_string(needed) + "' as root first, or raise nofile in " +
                       "/etc/security/limits.conf");
  }
}

// The source addresses the connections are spread over (see the header comment).
int source_addresses_for(const Options& opt) {
  if (opt.source_addresses > 0) return opt.source_addresses;
  return std::min(kMaxSourceAddresses,
                  (opt.connections + kConnectionsPerAddress - 1) / kConnectionsPerAddress);
}

void check_port_range(int connections, int addresses) {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  long lo = 0;
  long hi = 0;
  if (!(in >> lo >> hi)) return;
  const long per_address = (connections + addresses - 1) / addresses;
  if (hi - lo + 1 < per_address) {
    throw Fatal(1, "the local port range (" + std::to_string(lo) + "-" + std::to_string(hi) +
                       ") is smaller than the " + std::to_string(per_address) +
                       " connections of each source address: raise --source-addresses");
  }
}

// The nearest-rank percentile, to 0.1 us.
double percentile(std::vector<float>& values, double p) {
  if (values.empty()) return 0;
  const auto k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return std::round(static_cast<double>(values[k]) * 10) / 10;
}

class Client {
 public:
  explicit Client(const Options& opt);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  nlohmann::json run();

 private:
  Options opt_;
  std::uint32_t bytes_;
  std::vector<char> pattern_;
  std::vector<char> scratch_;
  std::vector<Conn> conns_;
  int epoll_ = -1;
  sockaddr_in addr_{};
  std::vector<sockaddr_in> sources_;  // connection i binds to sources_[i % size] first
  SSL_CTX* tls_ = nullptr;            // --tls only

  // Connecting.
  bool connect_phase_ = true;
  std::uint32_t next_new_ = 0;
  int in_progress_ = 0;  // connecting, or handshake echo not yet back
  int ready_ = 0;
  using Retry = std::pair<Clock::time_point, std::uint32_t>;
  std::priority_queue<Retry, std::vector<Retry>, std::greater<>> retries_;

  // Load.
  bool issuing_ = false;
  bool recording_ = false;
  int outstanding_ = 0;
  long requests_ = 0;
  long errors_ = 0;
  std::vector<float> latencies_us_;

  void connect_all();
  void start_connects(Clock::time_point now);
  void open_connection(Conn& c);
  void finish_connect(Conn& c);
  void continue_handshake(Conn& c);
  void retry_later(Conn& c);
  double load(Clock::time_point until);
  void quiet_point(const char* mark);

  void wait_events(Clock::time_point deadline);
  void on_event(Conn& c, std::uint32_t events);
  void begin_request(Conn& c, Clock::time_point now);
  void send_more(Conn& c);
  void on_readable(Conn& c);
  bool on_bytes(Conn& c, std::uint32_t got);
  void on_tls_readable(Conn& c);
  void complete(Conn& c);
  void lost(Conn& c, const std::string& why);
  void want_out(Conn& c, bool on);
  void close_conn(Conn& c);
};

Client::Client(const Options& opt)
    : opt_(opt),
      bytes_(static_cast<std::uint32_t>(opt.message_bytes)),
      pattern_(bytes_ + kOffsets),
      scratch_(kReadChunk),
      conns_(static_cast<std::size_t>(opt.connections)),
      sources_(static_cast<std::size_t>(source_addresses_for(opt))) {
  std::mt19937 rng(12345);
  for (char& ch : pattern_) ch = static_cast<char>(rng());
  for (std::uint32_t i = 0; i < conns_.size(); ++i) conns_[i].index = i;
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw Fatal(1, std::string("epoll_create1: ") + strerror(errno));
  addr_.sin_family = AF_INET;
  addr_.sin_port = htons(static_cast<std::uint16_t>(opt.port));
  addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (std::size_t k = 0; k < sources_.size(); ++k) {
    sources_[k].sin_family = AF_INET;
    sources_[k].sin_port = 0;
    sources_[k].sin_addr.s_addr = htonl(INADDR_LOOPBACK + static_cast<std::uint32_t>(k));
  }
  latencies_us_.reserve(1 << 20);
  if (opt.tls) {
    tls_ = SSL_CTX_new(TLS_client_method());
    if (tls_ == nullptr) throw Fatal(1, "SSL_CTX_new failed");
    SSL_CTX_set_verify(tls_, SSL_VERIFY_NONE, nullptr);  // see the header comment
    // SSL_write may then send part of a message, and be called again with the rest from a
    // pointer that moved on, exactly as send() is.
    SSL_CTX_set_mode(tls_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
}

Client::~Client() {
  for (Conn& c : conns_) close_conn(c);
  if (epoll_ >= 0) close(epoll_);
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

void Client::close_conn(Conn& c) {
  if (c.ssl != nullptr) {
    if (!c.handshaking && c.fd >= 0) SSL_shutdown(c.ssl);  // close_notify, not waiting for one
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) close(c.fd);
  c.fd = -1;
  c.connecting = c.handshaking = c.busy = c.want_out = false;
}

// ---------------------------------------------------------------------------------------------
// Connecting: a connection counts as established only once its first echo (the handshake) came
// back, because connect() completes before the server has accepted, and a full accept queue
// drops connections silently.

void Client::connect_all() {
  const auto deadline = Clock::now() + to_duration(opt_.connect_timeout);
  while (ready_ < opt_.connections) {
    const auto now = Clock::now();
    if (now >= deadline) {
      throw Fatal(4, "only " + std::to_string(ready_) + " of " + std::to_string(opt_.connections) +
                         " connections were accepted in " + std::to_string(opt_.connect_timeout) +
                         " s");
    }
    start_connects(now);
    auto wake = deadline;
    if (!retries_.empty()) wake = std::min(wake, retries_.top().first);
    wait_events(wake);
  }
  connect_phase_ = false;
}

void Client::start_connects(Clock::time_point now) {
  while (in_progress_ < opt_.connect_batch) {
    if (!retries_.empty() && retries_.top().first <= now) {
      const std::uint32_t i = retries_.top().second;
      retries_.pop();
      open_connection(conns_[i]);
    } else if (next_new_ < conns_.size()) {
      open_connection(conns_[next_new_++]);
    } else {
      return;
    }
  }
}

void Client::open_connection(Conn& c) {
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) throw Fatal(1, std::string("socket: ") + strerror(errno));
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // The port is left to connect(): a port bind() chose would be reserved for this address
  // whatever the destination, which is how the range ran out before.
  setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  const sockaddr_in& source = sources_[c.index % sources_.size()];
  if (bind(c.fd, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0) {
    throw Fatal(1, "bind to the source address " + std::string(inet_ntoa(source.sin_addr)) + ": " +
                       strerror(errno));
  }
  ++in_progress_;
  c.connecting = true;
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0 &&
      errno != EINPROGRESS) {
    if (errno == EMFILE || errno == ENFILE) throw Fatal(1, "out of file descriptors");
    retry_later(c);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;  // connect() completes with EPOLLOUT, fails with EPOLLERR
  ev.data.u32 = c.index;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    throw Fatal(1, std::string("epoll_ctl: ") + strerror(errno));
  }
  c.want_out = true;
}

void Client::finish_connect(Conn& c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    retry_later(c);
    return;
  }
  c.connecting = false;
  if (tls_ == nullptr) {
    begin_request(c, Clock::now());
    return;
  }
  c.ssl = SSL_new(tls_);
  if (c.ssl == nullptr || SSL_set_fd(c.ssl, c.fd) != 1) throw Fatal(1, "SSL_new failed");
  SSL_set_connect_state(c.ssl);
  c.handshaking = true;
  continue_handshake(c);
}

// --tls: the handshake, driven by the socket's readiness; the first request follows it.
void Client::continue_handshake(Conn& c) {
  ERR_clear_error();
  const int r = SSL_do_handshake(c.ssl);
  if (r == 1) {
    c.handshaking = false;
    begin_request(c, Clock::now());
    return;
  }
  const int err = SSL_get_error(c.ssl, r);
  if (err == SSL_ERROR_WANT_READ) {
    want_out(c, false);
  } else if (err == SSL_ERROR_WANT_WRITE) {
    want_out(c, true);
  } else {
    retry_later(c);  // still connecting: it counts as in progress, as a refused connect does
  }
}

// Refused, reset or timed out while the server's backlog is full: back off exponentially (1 ms
// to 0.5 s) so that the server drains its accept queue.
void Client::retry_later(Conn& c) {
  close_conn(c);
  --in_progress_;
  const auto delay = std::chrono::milliseconds(std::min(500u, 1u << std::min(c.attempts, 9u)));
  ++c.attempts;
  retries_.emplace(Clock::now() + delay, c.index);
}

// ---------------------------------------------------------------------------------------------
// Load: every connection keeps one message in flight while issuing_, then the phase drains.

double Client::load(Clock::time_point until) {
  const auto start = Clock::now();
  issuing_ = true;
  for (Conn& c : conns_) {
    if (c.fd >= 0) begin_request(c, start);
  }
  while (Clock::now() < until) wait_events(until);
  issuing_ = false;
  const auto drain_deadline = Clock::now() + kDrainTimeout;
  while (outstanding_ > 0) {
    if (Clock::now() >= drain_deadline) {
      throw Fatal(4, std::to_string(outstanding_) + " requests still unanswered " +
                         std::to_string(kDrainTimeout.count()) + " s after the phase ended");
    }
    wait_events(drain_deadline);
  }
  return duration<double>(Clock::now() - start).count();
}

void Client::quiet_point(const char* mark) {
  if (!opt_.sync_stdin) return;
  std::fprintf(stderr, "MARK %s\n", mark);
  std::fflush(stderr);
  pollfd in{0, POLLIN, 0};
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(kGoTimeout).count();
  for (char ch = 0; ch != '\n';) {
    if (poll(&in, 1, static_cast<int>(ms)) <= 0 || read(0, &ch, 1) != 1) {
      throw Fatal(1, std::string("no go-ahead on stdin after MARK ") + mark);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Events.

void Client::wait_events(Clock::time_point deadline) {
  const auto left = deadline - Clock::now();
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  const int timeout = static_cast<int>(std::clamp<long>(ms, 0, 1000));
  epoll_event events[512];
  const int n = epoll_wait(epoll_, events, 512, timeout);
  if (n < 0 && errno != EINTR) throw Fatal(1, std::string("epoll_wait: ") + strerror(errno));
  for (int i = 0; i < n; ++i) {
    Conn& c = conns_[events[i].data.u32];
    if (c.fd >= 0) on_event(c, events[i].events);
  }
}

void Client::on_event(Conn& c, std::uint32_t events) {
  if (c.connecting) {
    finish_connect(c);
    return;
  }
  if (c.handshaking) {
    continue_handshake(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    if (c.ssl != nullptr) {
      on_tls_readable(c);
    } else {
      on_readable(c);
    }
  }
  if (c.fd >= 0 && c.busy && (events & EPOLLOUT)) send_more(c);
}

void Client::begin_request(Conn& c, Clock::time_point now) {
  c.busy = true;
  c.sent = c.received = 0;
  c.offset = static_cast<std::uint32_t>((c.index * 7919ull + c.seq++) % kOffsets);
  c.started = now;
  ++outstanding_;
  send_more(c);
}

void Client::send_more(Conn& c) {
  while (c.sent < bytes_) {
    const char* data = pattern_.data() + c.offset + c.sent;
    if (c.ssl != nullptr) {
      ERR_clear_error();
      const int n = SSL_write(c.ssl, data, static_cast<int>(bytes_ - c.sent));
      if (n <= 0) {
        const int err = SSL_get_error(c.ssl, n);
        if (err == SSL_ERROR_WANT_WRITE) {
          want_out(c, true);
        } else if (err != SSL_ERROR_WANT_READ) {  // WANT_READ: EPOLLIN stays registered
          lost(c, "SSL_write failed (TLS error " + std::to_string(err) + ")");
        }
        return;
      }
      c.sent += static_cast<std::uint32_t>(n);
      continue;
    }
    const ssize_t n = send(c.fd, data, bytes_ - c.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        want_out(c, true);
        return;
      }
      lost(c, std::string("send: ") + strerror(errno));
      return;
    }
    c.sent += static_cast<std::uint32_t>(n);
  }
  want_out(c, false);
}

void Client::want_out(Conn& c, bool on) {
  // EPOLLIN stays registered throughout, so that a large echo is read while the rest of the
  // message is still being sent (the server's echo would otherwise stall both sides).
  if (c.want_out == on) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
  ev.data.u32 = c.index;
  epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  c.want_out = on;
}

void Client::on_readable(Conn& c) {
  const std::uint32_t expected = bytes_ - c.received;
  const std::size_t want = c.busy ? std::min<std::size_t>(expected, scratch_.size()) : 1;
  const ssize_t n = recv(c.fd, scratch_.data(), want, 0);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) lost(c, std::string("recv: ") + strerror(errno));
    return;
  }
  if (n == 0) {
    lost(c, "the server closed the connection");
    return;
  }
  on_bytes(c, static_cast<std::uint32_t>(n));
}

// `got` bytes of echo in scratch_: checked, counted; true when they completed the message.
bool Client::on_bytes(Conn& c, std::uint32_t got) {
  if (!c.busy || c.received + got > c.sent) {
    throw Fatal(1, "connection " + std::to_string(c.index) +
                       ": the server sent bytes that were not sent to it");
  }
  if (std::memcmp(scratch_.data(), pattern_.data() + c.offset + c.received, got) != 0) {
    throw Fatal(1, "connection " + std::to_string(c.index) +
                       ": the echo differs from the message sent, in bytes " +
                       std::to_string(c.received) + "-" + std::to_string(c.received + got - 1));
  }
  c.received += got;
  if (c.received != bytes_) return false;
  complete(c);
  return true;
}

// --tls: OpenSSL may hold decrypted bytes that epoll cannot announce, so this reads until
// OpenSSL needs more from the socket (session tickets of TLS 1.3 are consumed on the way).
void Client::on_tls_readable(Conn& c) {
  while (c.fd >= 0) {
    const std::size_t want =
        c.busy ? std::min<std::size_t>(bytes_ - c.received, scratch_.size()) : 1;
    ERR_clear_error();
    const int n = SSL_read(c.ssl, scratch_.data(), static_cast<int>(want));
    if (n > 0) {
      on_bytes(c, static_cast<std::uint32_t>(n));
      continue;
    }
    const int err = SSL_get_error(c.ssl, n);
    if (err == SSL_ERROR_WANT_READ) return;
    if (err == SSL_ERROR_WANT_WRITE) {
      want_out(c, true);
      return;
    }
    lost(c, err == SSL_ERROR_ZERO_RETURN ? "the server closed the connection (close_notify)"
            : err == SSL_ERROR_SYSCALL   ? "the server closed the connection"
                                       : "SSL_read failed (TLS error " + std::to_string(err) + ")");
    return;
  }
}

void Client::complete(Conn& c) {
  c.busy = false;
  --outstanding_;
  const auto now = Clock::now();
  if (connect_phase_) {
    --in_progress_;
    ++ready_;
    return;
  }
  if (recording_) {
    latencies_us_.push_back(
        static_cast<float>(duration<double, std::micro>(now - c.started).count()));
    ++requests_;
  }
  if (issuing_) begin_request(c, now);
}

// A connection that fails while connecting is retried; during the load it is an error, counted,
// and the other connections go on.
void Client::lost(Conn& c, const std::string& why) {
  if (connect_phase_) {
    if (c.busy) {
      --outstanding_;
    } else {  // it had been accepted: it is back to being in progress
      --ready_;
      ++in_progress_;
    }
    c.busy = false;
    retry_later(c);
    return;
  }
  if (++errors_ <= kReportedErrors) {
    std::fprintf(stderr, "echo_client: connection %u: %s\n", c.index, why.c_str());
  }
  if (c.busy) --outstanding_;
  close_conn(c);
}

nlohmann::json Client::run() {
  connect_all();
  if (opt_.sync_stdin) {
    std::fprintf(stderr, "MARK connected\n");
    std::fflush(stderr);
  }
  load(Clock::now() + to_duration(opt_.warmup));
  quiet_point("quiet-start");
  recording_ = true;
  const double seconds = load(Clock::now() + to_duration(opt_.seconds));
  recording_ = false;
  quiet_point("quiet-end");
  for (Conn& c : conns_) close_conn(c);
  return {{"requests", requests_},
          {"seconds", seconds},
          {"rps", static_cast<double>(requests_) / seconds},
          {"p50_us", percentile(latencies_us_, 50)},
          {"p99_us", percentile(latencies_us_, 99)},
          {"connections", opt_.connections},
          {"message_bytes", opt_.message_bytes},
          {"errors", errors_}};
}

void validate(const Options& opt) {
  if (opt.host != "127.0.0.1") {
    throw Fatal(1, "--host must be 127.0.0.1 (this benchmark only talks to this machine)");
  }
  if (opt.port <= 0 || opt.port > 65535) throw Fatal(1, "--port must be 1-65535");
  if (opt.connections < 1 || opt.message_bytes < 1 || opt.connect_batch < 1) {
    throw Fatal(1, "--connections, --message-bytes and --connect-batch must be positive");
  }
  if (opt.source_addresses < 0 || opt.source_addresses > kMaxSourceAddresses) {
    throw Fatal(
        1, "--source-addresses is 0 (as many as needed) to " + std::to_string(kMaxSourceAddresses));
  }
  if (opt.message_bytes > (64 << 20)) throw Fatal(1, "--message-bytes is at most 64 MiB");
  if (opt.seconds <= 0 || opt.warmup < 0 || opt.connect_timeout <= 0) {
    throw Fatal(1, "--seconds and --connect-timeout must be positive, --warmup not negative");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"TCP echo load generator: one message in flight per connection (echo_race)"};
  app.add_option("--host", opt.host, "only 127.0.0.1");
  app.add_option("--port", opt.port, "the echo server's port")->required();
  app.add_option("--connections", opt.connections, "connections, each with one message in flight");
  app.add_option("--message-bytes", opt.message_bytes,
                 "the size of every message (at most 64 MiB)");
  app.add_option("--seconds", opt.seconds, "the measured window");
  app.add_option("--warmup", opt.warmup, "seconds of load before the window");
  app.add_option("--connect-batch", opt.connect_batch,
                 "connections not yet accepted at a time (below the server's listen backlog)");
  app.add_option("--source-addresses", opt.source_addresses,
                 "bind the connections round-robin to 127.0.0.1..127.0.0.N (0: one per " +
                     std::to_string(kConnectionsPerAddress) + " connections)");
  app.add_option("--connect-timeout", opt.connect_timeout, "seconds to get every connection in");
  app.add_flag("--tls", opt.tls, "speak TLS (the server's certificate is not verified)");
  app.add_flag("--sync-stdin", opt.sync_stdin,
               "print MARK lines on stderr and wait for a line on stdin at the quiet points");
  CLI11_PARSE(app, argc, argv);
  try {
    validate(opt);
    raise_fd_limit(opt.connections);
    check_port_range(opt.connections, source_addresses_for(opt));
    Client client(opt);
    const nlohmann::json result = client.run();
    std::printf("%s\n", result.dump().c_str());
    return 0;
  } catch (const Fatal& e) {
    std::fprintf(stderr, "echo_client: %s\n", e.what());
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_client: %s\n", e.what());
    return 1;
  }
}
