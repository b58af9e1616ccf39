// An asyncio server at its descriptor limit (issue 19): it keeps serving the connections it has,
// does not spin on a listener that stays readable (libuv's EMFILE busy-loop), closes the clients
// it cannot take instead of leaving them hanging, and accepts again once descriptors are free. The
// server runs in a process of its own (this test run again with --emfile-server) with RLIMIT_NOFILE
// lowered; the clients are plain sockets here.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <concur/asyncio.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_process.hpp"

namespace asyncio = concur::asyncio;
using asyncio::Task;

namespace {

constexpr int kLimit = 48;     // the server's RLIMIT_NOFILE
constexpr int kClients = 120;  // well past it

// --- the server process ------------------------------------------------------------------------

Task<void> echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  try {
    for (std::string line = co_await reader.readline(); !line.empty();
         line = co_await reader.readline()) {
      writer.write(line);
      co_await writer.drain();
    }
  } catch (const concur::ConnectionError&) {
  }
  writer.close();
}

Task<void> serve() {
  asyncio::get_running_loop().set_exception_handler([](const asyncio::ExceptionContext& context) {
    std::printf("REPORT %s\n", context.message.c_str());
    std::fflush(stdout);
  });
  asyncio::Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
  std::printf("PORT %u\n", server.port());
  std::fflush(stdout);
  co_await server.serve_forever();
}

int run_server() {
  rlimit lim{kLimit, kLimit};
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) return 3;
  asyncio::run(serve(), {.handle_sigint = false});
  return 0;
}

// --- the clients -------------------------------------------------------------------------------

enum class Fate { served, closed, hung };

int connect_to(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

// Sends a line and waits for it to come back, for the connection to end, or for `wait`.
Fate echo_once(int fd, std::chrono::milliseconds wait) {
  const std::string line = "ping\n";
  if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return Fate::closed;
  }
  std::string got;
  const auto end = std::chrono::steady_clock::now() + wait;
  while (got.size() < line.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - std::chrono::steady_clock::now())
                          .count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return Fate::hung;
    char buf[64];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return Fate::closed;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got == line ? Fate::served : Fate::closed;
}

// User + system CPU seconds of a process so far.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // fields 3..13
  double utime = 0;
  double stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string self_exe() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string();
}

TEST(AsyncioEmfile, AServerAtItsDescriptorLimitKeepsServingDoesNotSpinAndRecovers) {
  concur::support::ChildProcess server({self_exe(), "--emfile-server"});
  const auto port_line = server.read_line(std::chrono::seconds(30));
  ASSERT_TRUE(port_line && port_line->rfind("PORT ", 0) == 0)
      << port_line.value_or("(no output)") << server.stderr_tail();
  const auto port = static_cast<std::uint16_t>(std::stoi(port_line->substr(5)));

  std::vector<int> served;
  int closed = 0;
  int hung = 0;
  for (int i = 0; i < kClients; ++i) {
    const int fd = connect_to(port);
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    switch (echo_once(fd, std::chrono::seconds(5))) {
      case Fate::served:
        served.push_back(fd);
        break;
      case Fate::closed:
        ++closed;
        close(fd);
        break;
      case Fate::hung:
        ++hung;
        close(fd);
        break;
    }
  }
  EXPECT_GE(served.size(), static_cast<std::size_t>(kLimit / 2))
      << "too few served below the limit";
  EXPECT_GT(closed, 0) << "the limit was never reached: the test proves nothing";
  EXPECT_EQ(hung, 0) << "clients past the limit were left hanging";

  // At the limit, with the listener readable: the server must sleep, not spin.
  const double cpu_before = cpu_seconds(server.pid());
  const int extra = connect_to(port);  // one more waiting client keeps the listener readable
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds(server.pid()) - cpu_before;
  EXPECT_LT(cpu / wall, 0.5) << "the server used " << cpu << " s of CPU in " << wall
                             << " s at its descriptor limit: a busy accept loop";
  if (extra >= 0) close(extra);

  // The connections it has still work.
  for (int fd : served) EXPECT_EQ(echo_once(fd, std::chrono::seconds(5)), Fate::served);

  // Free descriptors: new clients are served again.
  for (int i = 0; i < 10 && !served.empty(); ++i) {
    close(served.back());
    served.pop_back();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server sees them close
  for (int i = 0; i < 5; ++i) {
    const int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(echo_once(fd, std::chrono::seconds(5)), Fate::served)
        << "after freeing, client " << i;
    close(fd);
  }
  for (int fd : served) close(fd);

  // Nothing is reported: libuv closes the clients it cannot take (its reserve-descriptor trick)
  // without telling the server; were a report made, it would be at most once a second.
  while (auto line = server.read_line(std::chrono::milliseconds(100))) {
    if (line->rfind("REPORT ", 0) == 0) {
      EXPECT_NE(line->find("out of file descriptors"), std::string::npos) << *line;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--emfile-server") return run_server();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
