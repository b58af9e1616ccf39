// fault_scenarios SCENARIO: runs one use of concur's multiprocessing that crosses the system
// calls fault_inject can fail, then checks that it left nothing behind. Run under the fault
// library by tests/faults/fault_injection_test.cpp.
//
// Exit status: 0 when the scenario either worked (a retried EINTR, a short write completed) or
// failed with a clear concur error (an exception whose message starts with "concur"), and in
// either case left no descriptor, thread, child process or shared-memory segment behind;
// 3 when something was left; 4 when the error was not a clear concur error; 2 for a bad
// scenario name. A crash, an abort or a hang is the driver's to see.
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <concur/multiprocessing/connection.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/queue.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/process_pool.hpp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#if CONCUR_FAULT_ASYNCIO
#include <uv.h>

#include <concur/asyncio.hpp>
#endif

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;

namespace {

int square(int x) {
  return x * x;
}
CONCUR_REGISTER(square);

std::vector<std::uint8_t> echo_bytes(std::vector<std::uint8_t> bytes) {
  return bytes;
}
CONCUR_REGISTER(echo_bytes);

void child_echo(mp::Connection conn) {
  conn.send(conn.recv<std::string>(30s));
}
CONCUR_REGISTER(child_echo);

std::vector<std::string> list_dir(const char* path) {
  std::vector<std::string> names;
  if (DIR* d = opendir(path)) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    closedir(d);
  }
  return names;
}

// Whether a child process is concur's forkserver, which lives as long as the program that
// started it (with one descriptor, its channel, in the parent). Its environment, as the kernel
// keeps it from exec, names it.
bool is_forkserver(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/environ", std::ios::binary);
  const std::string environ((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return environ.find("CONCUR_MP_FORKSERVER=") != std::string::npos;
}

// What a scenario may leave behind, counted from /proc and /dev/shm. A forkserver started by the
// scenario is not left behind (it is meant to outlive it): neither it nor its channel counts.
struct Resources {
  std::size_t fds = 0;
  std::size_t threads = 0;
  std::size_t children = 0;
  std::size_t segments = 0;  // concur segments of this program (their names start with its pid)

  static Resources now() {
    Resources r;
    r.fds = list_dir("/proc/self/fd").size() - 1;  // less the one opendir holds
    r.threads = list_dir("/proc/self/task").size();
    for (const std::string& task : list_dir("/proc/self/task")) {
      std::ifstream in("/proc/self/task/" + task + "/children");
      for (std::string pid; in >> pid;) {
        if (is_forkserver(pid)) {
          --r.fds;
        } else {
          ++r.children;
        }
      }
    }
    const std::string prefix = "concur-" + std::to_string(getpid()) + "-";
    for (const std::string& name : list_dir("/dev/shm")) {
      if (name.rfind(prefix, 0) == 0) ++r.segments;
    }
    return r;
  }
};

void pipe_round_trip() {
  auto [a, b] = mp::Pipe();
  const std::string big(300'000, 'x');  // more than a socket buffer: several writes and reads
  std::thread echo([&b] {
    b.send(b.recv<std::string>(30s));
    b.send(b.recv<std::string>(30s));
  });
  struct Join {
    std::thread& t;
    ~Join() { t.join(); }
  } join{echo};
  a.send(std::string("small"));
  a.send(big);
  if (a.recv<std::string>(30s) != "small" || a.recv<std::string>(30s) != big) {
    throw std::runtime_error("wrong data through the pipe");
  }
}

void shared_memory() {
  auto shm = mp::SharedMemory::create(1 << 20);
  std::memset(shm.data(), 7, shm.size());
  auto other = mp::SharedMemory::attach(shm.name());
  if (other.data()[12345] != std::byte{7}) {
    throw std::runtime_error("wrong data in shared memory");
  }
  shm.unlink();
}

void process(mp::StartMethod method) {
  auto [ours, theirs] = mp::Pipe();
  mp::Process child({.start_method = method}, child_echo, std::move(theirs));
  child.start();
  ours.send(std::string("ping"));
  const std::string reply = ours.recv<std::string>(30s);
  child.join();
  if (reply != "ping" || child.exitcode() != 0) throw std::runtime_error("wrong child outcome");
}

void pool() {
  concur::ProcessPoolExecutor pool({.max_workers = 2, .start_method = mp::StartMethod::forkserver});
  std::vector<concur::Future<int>> futures;
  for (int i = 0; i < 20; ++i) futures.push_back(pool.submit(square, i));
  for (int i = 0; i < 20; ++i) {
    if (futures[static_cast<std::size_t>(i)].result(30s) != i * i) {
      throw std::runtime_error("wrong result from the pool");
    }
  }
  pool.shutdown();
}

// Arguments and results above the pool's shared-memory threshold: a failed memfd_create,
// ftruncate or mmap must either fall back to the socket (the values still right) or surface as a
// concur error, and leave nothing open.
void pool_large() {
  concur::ProcessPoolExecutor pool({.max_workers = 2, .start_method = mp::StartMethod::forkserver});
  const std::vector<std::uint8_t> in(256 * 1024, 7);
  std::vector<concur::Future<std::vector<std::uint8_t>>> futures;
  for (int i = 0; i < 6; ++i) futures.push_back(pool.submit(echo_bytes, in));
  for (auto& f : futures) {
    if (f.result(30s) != in) throw std::runtime_error("wrong large result from the pool");
  }
  pool.shutdown();
}

void queue() {
  mp::Queue<std::string> q;
  for (int i = 0; i < 50; ++i) q.put(std::string(1000, static_cast<char>('a' + i % 26)));
  for (int i = 0; i < 50; ++i) {
    if (q.get(30s).size() != 1000) throw std::runtime_error("wrong item from the queue");
  }
}

#if CONCUR_FAULT_ASYNCIO
namespace asyncio = concur::asyncio;

// A scenario of asyncio that hangs is caught here, and reported as such (not as a clear error).
struct Hung : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class T>
T run_bounded(asyncio::EventLoop& loop, asyncio::Task<T> task) {
  // What reaches the loop's handler (a failed accept, a handler's error) is not a failure of
  // the scenario: it is printed, as Python's loop logs it.
  loop.set_exception_handler([](const asyncio::ExceptionContext& context) {
    std::fprintf(stderr, "reported: %s\n", context.message.c_str());
  });
  try {
    return loop.run_until_complete(asyncio::wait_for(std::move(task), 20s));
  } catch (const concur::TimeoutError&) {
    throw Hung("the scenario hung for 20 s");
  }
}

asyncio::Task<void> echo_handler(asyncio::StreamReader r, asyncio::StreamWriter w) {
  for (;;) {
    std::string data = co_await r.read(64 * 1024);
    if (data.empty()) break;
    w.write(std::move(data));
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

// One client's exchange: a small and a large message echoed, a half-close, the client closed.
asyncio::Task<void> echo_exchange(std::uint16_t port) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  const std::string big(300'000, 'y');
  writer.write("hello\n");
  writer.write(big);
  co_await writer.drain();
  writer.write_eof();
  const std::string back = co_await reader.read(-1);
  writer.close();
  co_await writer.wait_closed();
  // A write that failed on the server's side ends its connection: the echo may stop short, but
  // what came back must be what was sent, from its start.
  const std::string sent = "hello\n" + big;
  if (back.size() > sent.size() || sent.compare(0, back.size(), back) != 0) {
    throw std::runtime_error("wrong bytes echoed");
  }
}

// A server on 127.0.0.1 (numeric, so no resolver thread) and a client. The fault fires once: if
// it broke the first client's exchange, a second client must be served in full (a server does
// not stop over one failed accept, read or write).
asyncio::Task<void> echo_body() {
  asyncio::Server server = co_await asyncio::start_server(echo_handler, "127.0.0.1", 0);
  std::exception_ptr error;
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      co_await echo_exchange(server.port());
      error = nullptr;
      break;
    } catch (...) {
      error = std::current_exception();
    }
  }
  server.close();
  co_await server.wait_closed();
  if (error) std::rethrow_exception(error);
}

void asyncio_echo() {
  asyncio::EventLoop loop;
  run_bounded(loop, echo_body());
}

asyncio::Task<void> subprocess_body() {
  asyncio::Process cat = co_await asyncio::create_subprocess_exec(
      "/bin/cat", {}, {.stdin_mode = asyncio::Stdio::PIPE, .stdout_mode = asyncio::Stdio::PIPE});
  const std::string input(200'000, 'z');
  std::exception_ptr error;
  try {
    asyncio::CommunicateResult r = co_await cat.communicate(input);
    // A failed write to stdin is dropped, as Python's communicate() drops BrokenPipeError: the
    // output may stop short, but what came back must be the input's start.
    if (input.compare(0, r.out.size(), r.out) != 0) {
      throw std::runtime_error("cat gave back other bytes");
    }
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    // A child outlives a failed communicate() (as in Python); a program that gives up on it
    // stops it.
    if (cat.returncode() == std::nullopt) {
      cat.kill();
      co_await cat.wait();
    }
    std::rethrow_exception(error);
  }
}

void asyncio_subprocess() {
  asyncio::EventLoop loop;
  run_bounded(loop, subprocess_body());
}
#endif

const std::map<std::string, std::function<void()>>& scenarios() {
  static const std::map<std::string, std::function<void()>> all {
    {"pipe", pipe_round_trip}, {"shared_memory", shared_memory},
        {"process_fork", [] { process(mp::StartMethod::fork); }},
        {"process_spawn", [] { process(mp::StartMethod::spawn); }},
        {"process_forkserver", [] { process(mp::StartMethod::forkserver); }}, {"pool", pool},
        {"pool_large", pool_large}, {"queue", queue},
#if CONCUR_FAULT_ASYNCIO
        {"asyncio_echo", asyncio_echo}, {"asyncio_subprocess", asyncio_subprocess},
#endif
  };
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  mp::main_guard(argc, argv);
  if (argc != 2 || !scenarios().count(argv[1])) {
    std::fprintf(stderr, "usage: fault_scenarios SCENARIO (pipe, shared_memory, ...)\n");
    return 2;
  }
  const std::string name = argv[1];
  const Resources before = Resources::now();
  int status = 0;
  try {
    scenarios().at(name)();
  } catch (const std::exception& e) {
    // concur's errors name the library ("concur...") or, in asyncio, the call ("asyncio::...").
    const bool clear =
        std::strncmp(e.what(), "concur", 6) == 0 || std::strncmp(e.what(), "asyncio::", 9) == 0;
    std::fprintf(stderr, "%s: %s\n", clear ? "clear error" : "UNCLEAR ERROR", e.what());
    if (!clear) status = 4;
  }
#if CONCUR_FAULT_ASYNCIO
  // libuv keeps process-wide state once a loop was made (a pipe for its signal handling, its
  // thread pool): released here, so that what is left is concur's.
  if (name.rfind("asyncio_", 0) == 0) uv_library_shutdown();
#endif
  // Children and threads end asynchronously after their last use: give them a moment.
  Resources after = Resources::now();
  for (int i = 0; i < 100 && (after.children > before.children || after.threads > before.threads);
       ++i) {
    std::this_thread::sleep_for(20ms);
    after = Resources::now();
  }
  const auto leaked = [&](const char* what, std::size_t b, std::size_t a) {
    if (a > b) {
      std::fprintf(stderr, "LEAK: %zu %s before, %zu after\n", b, what, a);
      status = 3;
    }
  };
  leaked("descriptors", before.fds, after.fds);
  leaked("threads", before.threads, after.threads);
  leaked("child processes", before.children, after.children);
  leaked("shared-memory segments", before.segments, after.segments);
  return status;
}
