// examples/cpu_bound: the tutorial's CPU-bound workload (add up 0..n-1 in a plain loop, split in
// parts) on threads, processes or MPI ranks, chosen by a flag: the three executors share submit(),
// Future and as_completed(), so switching is one line.
//
//   cpu_bound --executor threads   [--n 400000000] [--parts 8] [--workers 2]
//   cpu_bound --executor processes ...
//   mpirun -n 3 cpu_bound --executor mpi ...     (rank 0 submits; ranks 1.. are the workers)
//
// In C++ threads run this in parallel already (there is no GIL); processes and ranks pay for
// starting workers and moving messages, and ranks can be on other machines.
#include <chrono>
#include <concur/futures.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/process_pool.hpp>
#include <concur/thread_pool.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#ifdef CONCUR_EXAMPLE_MPI
#include <concur/mpi_pool.hpp>
#endif

// The loop the tutorial times (Python's `for i in range(n): total = total + i`), kept a loop: the
// empty asm stops the compiler from replacing it with n(n-1)/2.
std::uint64_t count_range(std::uint64_t begin, std::uint64_t end) {
  std::uint64_t total = 0;
  for (std::uint64_t i = begin; i < end; ++i) {
    total += i;
    asm volatile("" : "+r"(total));
  }
  return total;
}
CONCUR_REGISTER(count_range);

namespace {

struct Options {
  std::string executor = "threads";
  std::uint64_t n = 400'000'000;
  std::uint64_t parts = 8;
  std::size_t workers = 2;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--executor") o.executor = argv[i + 1];
    if (flag == "--n") o.n = std::stoull(argv[i + 1]);
    if (flag == "--parts") o.parts = std::stoull(argv[i + 1]);
    if (flag == "--workers") o.workers = std::stoul(argv[i + 1]);
  }
  return o;
}

// The same code for every executor: submit the parts, add the results as they complete.
template <class Executor>
std::uint64_t run(Executor& pool, const Options& o) {
  std::vector<concur::Future<std::uint64_t>> parts;
  const std::uint64_t step = o.n / o.parts;
  for (std::uint64_t p = 0; p < o.parts; ++p) {
    const std::uint64_t end = p + 1 == o.parts ? o.n : (p + 1) * step;
    parts.push_back(pool.submit(count_range, p * step, end));
  }
  std::uint64_t total = 0;
  for (auto f : concur::as_completed(parts)) total += f.result();
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  const Options o = parse(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t total = 0;
  if (o.executor == "threads") {
    concur::ThreadPoolExecutor pool(o.workers);
    total = run(pool, o);
  } else if (o.executor == "processes") {
    concur::ProcessPoolExecutor pool(o.workers);
    total = run(pool, o);
  } else if (o.executor == "mpi") {
#ifdef CONCUR_EXAMPLE_MPI
    concur::mpi::main_guard(argc, argv);  // ranks 1.. serve here and exit
    concur::MpiPoolExecutor pool;
    total = run(pool, o);
#else
    std::fprintf(stderr, "cpu_bound: built without MPI (install libopenmpi-dev, reconfigure)\n");
    return 2;
#endif
  } else {
    std::fprintf(stderr, "cpu_bound: --executor must be threads, processes or mpi\n");
    return 2;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool right = total == o.n * (o.n - 1) / 2;  // wraps mod 2^64 on both sides alike
  std::printf("%s: sum of 0..%llu = %llu in %.3f s (%s)\n", o.executor.c_str(),
              static_cast<unsigned long long>(o.n - 1), static_cast<unsigned long long>(total), s,
              right ? "correct" : "WRONG");
  return right ? 0 : 1;
}
