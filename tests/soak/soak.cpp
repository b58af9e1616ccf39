// concur-soak: every part of concur at once for a while, watching for drift (issue 19).
//
//   concur-soak [--seconds N] [--connections N] [--json FILE]   (default 20 s and 10,000
//   connections; docs/RELIABILITY.md has a long run)
//
// Three loads run side by side until the time is up:
//   - thread pool: 4 producer threads submit batches of tiny tasks to one pool of 4 workers, a
//     random quarter of each batch cancelled;
//   - process pool: batches on 2 worker processes, where about one task in 40 kills its own
//     worker (SIGKILL), so the pool breaks and is replaced, as a program would;
//   - asyncio: an echo server and clients that connect, echo a few messages and disconnect, in
//     waves of --connections clients open at once (default 10,000, as issue 19 asks; fewer if
//     the descriptor limit cannot be raised that far: two descriptors per connection, both ends
//     being in this process), a random fifth of them cancelled by a wait_for() that runs out.
// Every second it samples this process's resident memory, descriptors, threads and children.
// It fails (exit 1, saying why) when a task is lost (every future must end as a value, an
// exception or a cancellation), an echo comes back wrong, resident memory keeps growing (its
// median over the last fifth of the run above the median over the second fifth by more than
// kDriftLimit), or a descriptor, thread or child outlives the loads.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <concur/asyncio.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/process_pool.hpp>
#include <concur/thread_pool.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "stats.hpp"

namespace asyncio = concur::asyncio;
using Clock = std::chrono::steady_clock;

int plus_one(int x) {
  return x + 1;
}
CONCUR_REGISTER(plus_one);

int die_now(int) {
  ::kill(getpid(), SIGKILL);
  return 0;
}
CONCUR_REGISTER(die_now);

namespace {

// Resident memory may grow this much from the second fifth of the run to the last fifth (the
// allocator's arenas and caches settle in the first): more is a leak.
constexpr double kDriftLimitMiB = 16;
constexpr unsigned kProducers = 4;  // threads submitting to the one thread pool

// Under ThreadSanitizer or AddressSanitizer resident memory grows with the work done by design
// (shadow memory, race history, the freed-memory quarantine): the drift is reported, not judged.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kJudgeDrift = false;
#else
constexpr bool kJudgeDrift = true;
#endif

// The samples are read with raw system calls, bypassing libc: ThreadSanitizer's interceptors
// would otherwise see this thread close a descriptor number that another thread's socket reuses
// moments later, and report a race that the kernel's ordering rules out.
std::string read_raw(const char* path) {
  const long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text;
  char buf[4096];
  for (long n; (n = syscall(SYS_read, fd, buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<std::size_t>(n));
  }
  syscall(SYS_close, fd);
  return text;
}

long count_raw(const char* dir) {
  const long fd = syscall(SYS_openat, AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  long n = 0;
  alignas(8) char buf[8192];
  for (long got; (got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0;) {
    for (long at = 0; at < got;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buf + at);
      if (entry->d_name[0] != '.') ++n;
      at += entry->d_reclen;
    }
  }
  syscall(SYS_close, fd);
  return n;
}

double rss_mib_raw() {
  const std::string status = read_raw("/proc/self/status");
  const auto at = status.find("VmRSS:");
  return at == std::string::npos ? NAN : std::atof(status.c_str() + at + 6) / 1024;
}

struct Sample {
  double seconds = 0;
  double rss_mib = 0;
  long fds = 0;
  long threads = 0;
};

long count_entries(const char* dir) {
  long n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

long children() {
  long n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "children");
    for (long pid; in >> pid;) ++n;
  }
  return n;
}

struct Counts {
  std::atomic<long> submitted{0}, values{0}, errors{0}, cancelled{0}, wrong{0};
  long ended() const { return values + errors + cancelled; }
};

// One producer of the thread-pool load; four of them share one pool.
void thread_pool_load(concur::ThreadPoolExecutor& pool, Clock::time_point end, Counts& c,
                      std::mt19937& rng) {
  while (Clock::now() < end) {
    std::vector<concur::Future<int>> batch;
    for (int i = 0; i < 256; ++i) {
      batch.push_back(pool.submit([i] { return i + 1; }));
      ++c.submitted;
    }
    for (auto& f : batch) {
      if (rng() % 4 == 0) f.cancel();
    }
    for (int i = 0; i < static_cast<int>(batch.size()); ++i) {
      try {
        if (batch[static_cast<std::size_t>(i)].result() != i + 1) ++c.wrong;
        ++c.values;
      } catch (const concur::CancelledError&) {
        ++c.cancelled;
      }
    }
  }
}

void process_pool_load(Clock::time_point end, Counts& c, long& pools, std::mt19937& rng) {
  while (Clock::now() < end) {
    concur::ProcessPoolExecutor pool(2);
    ++pools;
    bool broken = false;
    while (!broken && Clock::now() < end) {
      std::vector<concur::Future<int>> batch;
      for (int i = 0; i < 64 && !broken; ++i) {
        ++c.submitted;
        try {
          batch.push_back(rng() % 40 == 0 ? pool.submit(die_now, i) : pool.submit(plus_one, i));
        } catch (const concur::BrokenProcessPool&) {  // broke while this batch was submitted
          ++c.errors;
          broken = true;
        }
      }
      for (int i = 0; i < static_cast<int>(batch.size()); ++i) {
        try {
          if (batch[static_cast<std::size_t>(i)].result(std::chrono::seconds(60)) != i + 1) {
            ++c.wrong;
          }
          ++c.values;
        } catch (const concur::BrokenProcessPool&) {
          ++c.errors;
          broken = true;
        }
      }
    }
  }
}

asyncio::Task<void> echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
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

asyncio::Task<void> one_client(std::uint16_t port, int id, Counts& c) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  for (int k = 0; k < 3; ++k) {
    const std::string line = std::to_string(id) + ":" + std::to_string(k) + "\n";
    writer.write(line);
    co_await writer.drain();
    if (co_await reader.readline() != line) ++c.wrong;
  }
  writer.close();
  co_await writer.wait_closed();
}

// How many clients a wave may open at once: `wanted`, or fewer if the descriptor limit cannot be
// raised to hold them (raised as far as the hard limit allows).
int wave_size(int wanted) {
  constexpr rlim_t kSpare = 256;  // the rest of the program: pools, pipes, /proc reads
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::min(wanted, 200);
  const rlim_t needed = 2 * static_cast<rlim_t>(wanted) + kSpare;
  if (limit.rlim_cur < needed) {
    // Past the hard limit only with the privilege to raise it (root); else up to it.
    const rlimit raised{needed, std::max(needed, limit.rlim_max)};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      limit.rlim_cur = std::min(needed, limit.rlim_max);
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t fits = limit.rlim_cur > kSpare ? (limit.rlim_cur - kSpare) / 2 : 1;
  return static_cast<int>(std::min<rlim_t>(static_cast<rlim_t>(wanted), fits));
}

asyncio::Task<void> asyncio_load(Clock::time_point end, Counts& c, long& connections, int wave_n) {
  // A backlog for the whole wave: the clients connect at once.
  asyncio::Server server =
      co_await asyncio::start_server(echo, "127.0.0.1", 0, {.backlog = std::max(511, wave_n)});
  std::mt19937 rng(7);
  int id = 0;
  while (Clock::now() < end) {
    std::vector<asyncio::Task<void>> wave;
    for (int i = 0; i < wave_n; ++i) {
      // A fifth get a deadline too short to finish: cancelled mid-connect or mid-echo.
      const auto limit = rng() % 5 == 0 ? std::chrono::microseconds(rng() % 500)
                                        : std::chrono::microseconds(10'000'000);
      wave.push_back(
          asyncio::create_task(asyncio::wait_for(one_client(server.port(), id++, c), limit)));
      ++c.submitted;
    }
    for (auto& t : wave) {
      try {
        co_await t;
        ++c.values;
      } catch (const concur::TimeoutError&) {
        ++c.cancelled;
      } catch (const std::exception&) {
        ++c.errors;
      }
    }
    connections += static_cast<long>(wave.size());
  }
  server.close();
  co_await server.wait_closed();
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  double seconds = 20;
  int connections_wanted = 10'000;
  std::string json;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--seconds") seconds = std::atof(argv[i + 1]);
    if (std::string(argv[i]) == "--json") json = argv[i + 1];
    if (std::string(argv[i]) == "--connections") connections_wanted = std::atoi(argv[i + 1]);
  }
  const int wave_n = wave_size(std::max(1, connections_wanted));
  std::printf("asyncio: waves of %d connections open at once%s\n", wave_n,
              wave_n < connections_wanted ? " (the descriptor limit allows no more)" : "");
  {  // What lasts by design starts first, so that only leftovers of the loads count: the
     // forkserver (a child and its channel) and libuv's process-wide descriptors.
    concur::ProcessPoolExecutor warm(1);
    (void)warm.submit(plus_one, 1).result();
    asyncio::run(
        []() -> asyncio::Task<void> { co_await asyncio::sleep(std::chrono::milliseconds(1)); }(),
        {.handle_sigint = false});
  }
  const long fds_before = count_entries("/proc/self/fd");
  const long threads_before = count_entries("/proc/self/task");
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));

  Counts threads_c, procs_c, aio_c;
  long pools = 0;
  long connections = 0;
  std::thread t1([&] {
    concur::ThreadPoolExecutor pool(4);
    std::vector<std::thread> producers;
    for (unsigned p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        std::mt19937 rng(10 + p);
        thread_pool_load(pool, end, threads_c, rng);
      });
    }
    for (auto& producer : producers) producer.join();
  });
  std::thread t2([&] {
    std::mt19937 rng(2);
    process_pool_load(end, procs_c, pools, rng);
  });
  std::thread t3([&] {
    asyncio::run(asyncio_load(end, aio_c, connections, wave_n), {.handle_sigint = false});
  });
  std::vector<Sample> samples;
  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    samples.push_back({std::chrono::duration<double>(Clock::now() - start).count(), rss_mib_raw(),
                       count_raw("/proc/self/fd"), count_raw("/proc/self/task")});
  }
  t1.join();
  t2.join();
  t3.join();

  std::vector<std::string> failures;
  auto check_counts = [&](const char* what, const Counts& c) {
    std::printf("%-13s %9ld submitted, %9ld values, %6ld errors, %6ld cancelled, %ld wrong\n", what,
                c.submitted.load(), c.values.load(), c.errors.load(), c.cancelled.load(),
                c.wrong.load());
    if (c.ended() != c.submitted) failures.push_back(std::string(what) + ": a task was lost");
    if (c.wrong != 0) failures.push_back(std::string(what) + ": a wrong result");
  };
  check_counts("thread pool", threads_c);
  check_counts("process pool", procs_c);
  check_counts("asyncio", aio_c);
  std::printf("process pools made: %ld; connections: %ld\n", pools, connections);

  const std::size_t n = samples.size();
  double early = NAN;
  double late = NAN;
  if (n >= 5) {
    std::vector<double> a, b;
    for (std::size_t i = n / 5; i < 2 * n / 5; ++i) a.push_back(samples[i].rss_mib);
    for (std::size_t i = 4 * n / 5; i < n; ++i) b.push_back(samples[i].rss_mib);
    early = concur::support::median_of(a);
    late = concur::support::median_of(b);
    std::printf("resident memory: %.1f MiB in the second fifth, %.1f MiB in the last (%+.1f)\n",
                early, late, late - early);
    if (kJudgeDrift && late - early > kDriftLimitMiB) {
      failures.push_back("resident memory grew by more than " + std::to_string(kDriftLimitMiB) +
                         " MiB");
    }
  }
  // Whatever the loads opened must be gone (a moment for the pools' children to be reaped).
  long fds_after = 0;
  long threads_after = 0;
  long children_after = 0;
  for (int tries = 0; tries < 100; ++tries) {
    fds_after = count_entries("/proc/self/fd");
    threads_after = count_entries("/proc/self/task");
    children_after = children();
    if (fds_after <= fds_before && threads_after <= threads_before && children_after <= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf(
      "after: %ld descriptors (before %ld), %ld threads (before %ld), %ld children (the "
      "forkserver)\n",
      fds_after, fds_before, threads_after, threads_before, children_after);
  if (fds_after > fds_before) {
    std::string open;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
      std::error_code ec;
      open += " " + e.path().filename().string() + "->" +
              std::filesystem::read_symlink(e.path(), ec).string();
    }
    failures.push_back("descriptors left open:" + open);
  }
  if (threads_after > threads_before) failures.push_back("threads left running");
  if (children_after > 1) failures.push_back("child processes left (beyond the forkserver)");

  if (!json.empty()) {
    std::ofstream out(json);
    out << "{\"seconds\": " << seconds << ", \"rss_mib\": [";
    for (std::size_t i = 0; i < n; ++i) out << (i ? ", " : "") << samples[i].rss_mib;
    out << "]}\n";
  }
  for (const std::string& f : failures) std::printf("FAILED: %s\n", f.c_str());
  return failures.empty() ? 0 : 1;
}
