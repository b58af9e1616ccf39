// bench/peers/asio_echo: a TCP echo server as idiomatic Boost.Asio code writes it: C++20
// coroutines on one io_context and one thread, a coroutine per connection that owns its buffer
// (--buffer-bytes, 64 KiB by default), reads some and writes it all back.
//
//   asio_echo --port 0 [--buffer-bytes 65536]
//       prints "PORT <n>", echoes on 127.0.0.1:<n> until SIGTERM or SIGINT
#include <utility>  // before Asio: Boost 1.74's Asio misses it on libstdc++ 12

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

awaitable<void> echo(tcp::socket socket, std::size_t buffer_bytes) {
  std::vector<char> data(buffer_bytes);
  try {
    for (;;) {
      const std::size_t n = co_await socket.async_read_some(asio::buffer(data), use_awaitable);
      co_await asio::async_write(socket, asio::buffer(data, n), use_awaitable);
    }
  } catch (const boost::system::system_error&) {
    // End of file or a reset: the client is gone, and so is this connection.
  }
}

awaitable<void> accept_loop(tcp::acceptor& acceptor, std::size_t buffer_bytes) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    // As asyncio and uvloop do by default: an echo must not wait for Nagle's algorithm.
    socket.set_option(tcp::no_delay(true));
    co_spawn(acceptor.get_executor(), echo(std::move(socket), buffer_bytes), asio::detached);
  }
}

// Ten thousand connections need ten thousand descriptors: take the hard limit.
void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
}

int serve(unsigned short port, std::size_t buffer_bytes) {
  asio::io_context context(1);
  tcp::acceptor acceptor(context, {asio::ip::make_address_v4("127.0.0.1"), port});
  std::printf("PORT %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  asio::signal_set signals(context, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { context.stop(); });
  // An accept that fails (out of descriptors) ends the server with the error, not silently.
  co_spawn(context, accept_loop(acceptor, buffer_bytes), [](const std::exception_ptr& e) {
    if (e) std::rethrow_exception(e);
  });
  context.run();
  return 0;  // the connections' coroutines are destroyed with the context, closing their sockets
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  std::size_t buffer_bytes = 65536;
  CLI::App app{"TCP echo server: Boost.Asio with C++20 coroutines, one thread"};
  app.add_option("--port", port, "0: any free port (printed as PORT <n>)")->required();
  app.add_option("--buffer-bytes", buffer_bytes, "each connection's read buffer")
      ->check(CLI::Range(1, 64 << 20));
  CLI11_PARSE(app, argc, argv);
  raise_fd_limit();
  try {
    return serve(port, buffer_bytes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_echo: %s\n", e.what());
    return 1;
  }
}
