// The c10k experiment's echo servers (lab/experiments/c10k_processes.hpp): concur::asyncio on one
// thread, and one OS thread per connection with blocking calls.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <concur/asyncio.hpp>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "c10k_processes.hpp"

namespace concur::lab::c10k {
namespace {

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

}  // namespace

asyncio::Task<void> serve_with_loop(int backlog) {
  asyncio::ServerOptions server_options;
  server_options.backlog = backlog;
  asyncio::Server server = co_await asyncio::start_server(echo, kHost, 0, server_options);
  say(fmt::format("PORT {}", server.port()));
  co_await server.serve_forever();
}

// --- server: one OS thread per connection ---------------------------------------------------

namespace {

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

}  // namespace

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

}  // namespace concur::lab::c10k
