// bench/echo/concur_echo: the TCP echo server of echo_race written with concur::asyncio as an
// asyncio programmer writes it: start_server, a coroutine per connection, StreamReader::read and
// StreamWriter::write + drain.
//
//   concur_echo --port 0     prints "PORT <n>", echoes on 127.0.0.1:<n> until SIGTERM or SIGINT
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "concur/asyncio.hpp"
#include "concur/asyncio/streams.hpp"

namespace {

namespace asyncio = concur::asyncio;

asyncio::Task<void> echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  try {
    for (;;) {
      std::string data = co_await reader.read(65536);
      if (data.empty()) break;        // EOF
      writer.write(std::move(data));  // queued without a copy if the socket is full
      co_await writer.drain();
    }
  } catch (const concur::ConnectionError&) {
    // A reset: the client is gone, and so is this connection.
  }
  writer.close();
}

asyncio::Task<void> serve(std::uint16_t port) {
  asyncio::Server server = co_await asyncio::start_server(echo, "127.0.0.1", port);
  std::printf("PORT %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  loop.add_signal_handler(SIGTERM, [server]() mutable { server.close(); });
  loop.add_signal_handler(SIGINT, [server]() mutable { server.close(); });
  co_await server.serve_forever();
}

// Ten thousand connections need ten thousand descriptors: take the hard limit.
void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  CLI::App app{"TCP echo server: concur::asyncio streams, one thread"};
  app.add_option("--port", port, "0: any free port (printed as PORT <n>)")->required();
  CLI11_PARSE(app, argc, argv);
  raise_fd_limit();
  try {
    asyncio::run(serve(port), asyncio::RunOptions{.handle_sigint = false});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur_echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
