// bench/mpi_pool_bench: concur::MpiPoolExecutor beside concur::ProcessPoolExecutor in one run,
// and the numbers bench/peers/mpi4py_futures_bench.py prints for mpi4py.futures; bench/mpi_race
// runs both under `mpirun -n 3` (rank 0 submits, 2 worker ranks; the process pool gets 2
// workers too) and prints the ratios issue 20 sets as goals.
//
//   tiny_tasks_per_s   submit N tasks int f(int) (x + 1), then result() of all          tasks/s
//   round_trip_p50_us  submit(f, i).result(), one at a time, M times                    us
//   big_arg_mib_per_s  K tasks, each given a 64 MiB byte vector (returns its size)      MiB/s
//   big_buffer_cold_mib_per_s  the same, the 64 MiB given as a concur::multiprocessing::ByteBuffer
//                      sharing one vector (out of band on MPI: no encode, no decode; inline,
//                      one copy each way, in the process pool), the first time      MiB/s
//   big_buffer_mib_per_s  the same again right after: the MPI workers' receive buffers are
//                      warm, as the bare loop's are (it receives into buffers it has) MiB/s
//   bare_mpi           the floor for big_arg_mib_per_s: the same K x 64 MiB sent with plain
//                      MPI_Isend to the two worker ranks (alternating), each receiving into a
//                      buffer it already has and answering with one small message     MiB/s
//
// Usage: mpirun -n 3 --oversubscribe mpi_pool_bench [--quick]
//   --quick: tiny counts (a smoke run that checks it works; its figures mean nothing).
// Do not run it for figures while the machine is busy (compiling, other benchmarks).
#include <mpi.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <concur/mpi_pool.hpp>
#include <concur/multiprocessing/byte_buffer.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/process_pool.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int plus_one(int x) {
  return x + 1;
}
CONCUR_REGISTER(plus_one);

std::uint64_t size_of(const std::vector<std::uint8_t>& bytes) {
  return bytes.size();
}
CONCUR_REGISTER(size_of);

std::uint64_t size_of_buffer(concur::multiprocessing::ByteBuffer bytes) {
  return bytes.size();
}
CONCUR_REGISTER(size_of_buffer);

struct Counts {
  int tiny = 100'000;
  int round_trips = 2'000;
  int big_args = 8;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <class Pool>
double tiny_tasks_per_s(Pool& pool, int n) {
  std::vector<concur::Future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) futures.push_back(pool.submit(plus_one, i));
  long long sum = 0;
  for (auto& f : futures) sum += f.result();
  const double s = seconds_since(t0);
  if (sum != static_cast<long long>(n) * (n + 1) / 2) std::fprintf(stderr, "wrong sum\n");
  return n / s;
}

template <class Pool>
double round_trip_p50_us(Pool& pool, int n) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    (void)pool.submit(plus_one, i).result();
    us.push_back(seconds_since(t0) * 1e6);
  }
  std::nth_element(us.begin(), us.begin() + n / 2, us.end());
  return us[static_cast<std::size_t>(n / 2)];
}

template <class Pool>
double big_arg_mib_per_s(Pool& pool, int n) {
  const std::vector<std::uint8_t> big(64u << 20, 7);
  const auto t0 = Clock::now();
  std::vector<concur::Future<std::uint64_t>> futures;
  for (int i = 0; i < n; ++i) futures.push_back(pool.submit(size_of, big));
  for (auto& f : futures) {
    if (f.result() != big.size()) std::fprintf(stderr, "wrong size\n");
  }
  return 64.0 * n / seconds_since(t0);
}

template <class Pool>
double big_buffer_mib_per_s(Pool& pool, int n) {
  const auto big = std::make_shared<const std::vector<std::uint8_t>>(64u << 20, 7);
  const auto t0 = Clock::now();
  std::vector<concur::Future<std::uint64_t>> futures;
  for (int i = 0; i < n; ++i) {
    futures.push_back(pool.submit(size_of_buffer, concur::multiprocessing::ByteBuffer(big)));
  }
  for (auto& f : futures) {
    if (f.result() != big->size()) std::fprintf(stderr, "wrong size\n");
  }
  return 64.0 * n / seconds_since(t0);
}

template <class Pool>
void measure(const char* name, Pool& pool, const Counts& counts) {
  (void)tiny_tasks_per_s(pool, std::min(counts.tiny, 1000));  // warm up: workers started
  const double tiny = tiny_tasks_per_s(pool, counts.tiny);
  const double p50 = round_trip_p50_us(pool, counts.round_trips);
  const double big = big_arg_mib_per_s(pool, counts.big_args);
  const double cold = big_buffer_mib_per_s(pool, counts.big_args);
  const double warm = big_buffer_mib_per_s(pool, counts.big_args);
  std::printf(
      "%s tiny_tasks_per_s=%.0f round_trip_p50_us=%.1f big_arg_mib_per_s=%.0f "
      "big_buffer_cold_mib_per_s=%.0f big_buffer_mib_per_s=%.0f\n",
      name, tiny, p50, big, cold, warm);
  std::fflush(stdout);
}

// Every rank runs this before concur::mpi::main_guard() turns the workers into servers. Rank 0
// prints MiB/s from its first send to the last worker's answer.
void bare_mpi(int messages) {
  constexpr int kBytes = 64 << 20;
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size < 2) return;
  const int workers = size - 1;
  std::vector<std::uint8_t> buffer(kBytes, 7);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    const auto t0 = Clock::now();
    std::vector<MPI_Request> sends(static_cast<std::size_t>(messages));
    for (int i = 0; i < messages; ++i) {
      MPI_Isend(buffer.data(), kBytes, MPI_BYTE, 1 + i % workers, 0, MPI_COMM_WORLD,
                &sends[static_cast<std::size_t>(i)]);
    }
    MPI_Waitall(messages, sends.data(), MPI_STATUSES_IGNORE);
    std::uint64_t received = 0;
    for (int w = 1; w <= workers; ++w) {
      std::uint64_t bytes = 0;
      MPI_Recv(&bytes, 1, MPI_UINT64_T, w, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      received += bytes;
    }
    const double mib_per_s = 64.0 * messages / seconds_since(t0);
    if (received != static_cast<std::uint64_t>(messages) * kBytes) {
      std::fprintf(stderr, "bare_mpi: wrong byte count\n");
    }
    std::printf("bare_mpi send_mib_per_s=%.0f\n", mib_per_s);
    std::fflush(stdout);
  } else {
    std::uint64_t bytes = 0;
    for (int i = rank - 1; i < messages; i += workers) {
      MPI_Status status;
      MPI_Recv(buffer.data(), kBytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, &status);
      int count = 0;
      MPI_Get_count(&status, MPI_BYTE, &count);
      bytes += static_cast<std::uint64_t>(count);
    }
    MPI_Send(&bytes, 1, MPI_UINT64_T, 0, 1, MPI_COMM_WORLD);
  }
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);  // the process pool's workers stop here
  bool quick = false;
  CLI::App app{
      "concur::MpiPoolExecutor and ProcessPoolExecutor on the same tasks (under mpirun -n 3)"};
  app.add_flag("--quick", quick, "tiny counts: a smoke run that checks it works, not figures");
  CLI11_PARSE(app, argc, argv);
  const Counts counts = quick ? Counts{500, 50, 1} : Counts{};
  // The bare MPI floor runs on every rank before the worker ranks start serving the pool.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  bare_mpi(counts.big_args);
  concur::mpi::main_guard(argc, argv);  // the MPI worker ranks serve here
  {
    concur::MpiPoolExecutor pool;
    measure("concur_mpi", pool, counts);
  }
  {
    concur::ProcessPoolExecutor pool(2);
    measure("concur_process", pool, counts);
  }
  return 0;
}
