// bench/echo/concur_echo: the TCP echo server of echo_race written with concur::asyncio as an
// asyncio programmer writes it: start_server, a coroutine per connection, StreamReader::read and
// StreamWriter::write + drain.
//
//   concur_echo --port 0     prints "PORT <n>", echoes on 127.0.0.1:<n> until SIGTERM or SIGINT
//     --read-into            reads with StreamReader::read_into into a 64 KiB buffer of each
//                            connection (the zero-copy read) instead of read() -> std::string
//     --tls-cert F --tls-key K   TLS: the same handlers behind SSLContext::server() with the
//                            certificate chain F and its key K (echo_race --tls)
//
// It raises its descriptor limits (soft and hard) to 131,072 where it may (raise_fd_limit).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "concur/asyncio.hpp"
#include "concur/asyncio/ssl.hpp"
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

// The same with the zero-copy read: the socket is read straight into the connection's buffer and
// written back from it (write(string_view) copies only what the socket does not take at once).
asyncio::Task<void> echo_into(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  try {
    std::unique_ptr<char[]> buffer(new char[65536]);
    for (;;) {
      const std::size_t n = co_await reader.read_into(std::span<char>(buffer.get(), 65536));
      if (n == 0) break;  // EOF
      writer.write(std::string_view(buffer.get(), n));
      co_await writer.drain();
    }
  } catch (const concur::ConnectionError&) {
    // A reset: the client is gone, and so is this connection.
  }
  writer.close();
}

asyncio::Task<void> serve(std::uint16_t port, bool read_into, asyncio::SSLContext tls) {
  asyncio::ServerOptions options;
  options.ssl = tls;  // empty: plain TCP
  asyncio::Server server =
      co_await asyncio::start_server(read_into ? echo_into : echo, "127.0.0.1", port, options);
  std::printf("PORT %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  loop.add_signal_handler(SIGTERM, [server]() mutable { server.close(); });
  loop.add_signal_handler(SIGINT, [server]() mutable { server.close(); });
  co_await server.serve_forever();
}

// A connection is a descriptor, and echo_race goes up to 50,000 of them: the soft and the hard
// limit are raised to 131,072 (2^17, or fs.nr_open if lower), or to the hard limit if it is
// higher. Raising the hard limit needs root (CAP_SYS_RESOURCE); without it the server takes the
// hard limit and says how to raise it (echo_race checks each load against its own limit first).
void raise_fd_limit() {
  constexpr rlim_t kWanted = 131072;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  rlim_t wanted = kWanted;
  if (std::FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
    unsigned long nr_open = 0;
    if (std::fscanf(f, "%lu", &nr_open) == 1) wanted = std::min<rlim_t>(wanted, nr_open);
    std::fclose(f);
  }
  rlimit want = lim;
  if (want.rlim_max != RLIM_INFINITY) want.rlim_max = std::max(want.rlim_max, wanted);
  want.rlim_cur = want.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &want) == 0) return;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  std::fprintf(stderr,
               "concur_echo: at most %lu descriptors (the hard limit, which only root may "
               "raise: ulimit -Hn %lu)\n",
               static_cast<unsigned long>(lim.rlim_max), static_cast<unsigned long>(wanted));
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  bool read_into = false;
  std::string cert;
  std::string key;
  CLI::App app{"TCP echo server: concur::asyncio streams, one thread"};
  app.add_option("--port", port, "0: any free port (printed as PORT <n>)")->required();
  app.add_flag("--read-into", read_into, "read with read_into (zero-copy) instead of read()");
  app.add_option("--tls-cert", cert, "TLS: the server's certificate chain (PEM)");
  app.add_option("--tls-key", key, "TLS: its private key (PEM)");
  CLI11_PARSE(app, argc, argv);
  raise_fd_limit();
  try {
    asyncio::SSLContext tls;
    if (cert.empty() != key.empty()) throw std::invalid_argument("--tls-cert needs --tls-key");
    if (!cert.empty()) {
      tls = asyncio::SSLContext::server();
      tls.load_cert_chain(cert, key);
    }
    asyncio::run(serve(port, read_into, tls), asyncio::RunOptions{.handle_sigint = false});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur_echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
