// concur-lab-mpi: the MPI job of concur-lab's scale-out experiment (lab/experiments/scale_out.cpp),
// built only when CMake finds MPI (it links concur::mpi; concur-lab itself never needs MPI).
//
//   mpirun -n K+1 --oversubscribe --bind-to none concur-lab-mpi --work N --repeat P --tiny T
//          --round-trips R
//
// Rank 0 makes an MpiPoolExecutor over the K other ranks and prints one line of JSON; ranks 1..K
// serve its tasks (concur::mpi::main_guard) and print nothing. What rank 0 measures:
//   - the lab's CPU-bound loop (model::count_boxed, each share under its rank's own interpreter
//     lock, as cpu-bound-processes runs it), N steps split in K equal shares, one per rank, P
//     times after one short warm-up task per rank: each wall time, and how long each share ran
//     on its rank;
//   - R tiny tasks one at a time, submit(...).result(): the round trip of each (the "radio");
//   - T tiny tasks submitted at once, then all results waited for: the wall time.
// A wrong sum, or a rank that ran no share or two, ends the job with exit code 1 and the reason
// on stderr.
#include <algorithm>
#include <chrono>
#include <concur/gil.hpp>
#include <concur/mpi_pool.hpp>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "workload.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One rank's share, with that rank's own interpreter lock: its sum, its rank and how long it ran.
std::tuple<long, int, double> count_in_own_rank(long n) {
  const auto t0 = Clock::now();
  concur::InterpreterLock gil;
  concur::GilGuard hold(gil);
  const long sum = concur::lab::model::count_boxed(n, &gil);
  return {sum, concur::mpi::rank(), seconds_since(t0)};
}
CONCUR_REGISTER(count_in_own_rank);

// The tiny task: as little work as a task can have, so that its time is the radio's.
long tiny(long x) {
  return x + 1;
}
CONCUR_REGISTER(tiny);

[[noreturn]] void fail(const std::string& why) {
  throw std::runtime_error(why);
}

std::string json_list(const std::vector<double>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    char number[32];
    std::snprintf(number, sizeof number, "%s%.9g", i ? ", " : "", values[i]);
    out += number;
  }
  return out + "]";
}

// Rank 0's measurements; the pool ends before this returns (it must not outlive main).
void measure(long work, long repeat, long tiny_tasks, long round_trips) {
  concur::MpiPoolExecutor pool;
  const long ranks = static_cast<long>(pool.max_workers());
  const long share = work / ranks;
  {
    // One short task per rank first, so that each has run a task before the timing starts.
    std::vector<concur::Future<std::tuple<long, int, double>>> warm;
    for (long k = 0; k < ranks; ++k) warm.push_back(pool.submit(count_in_own_rank, share / 20));
    for (auto& f : warm) f.result();
  }
  std::vector<double> wall_s;
  std::vector<double> task_s;
  for (long r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    std::vector<concur::Future<std::tuple<long, int, double>>> parts;
    for (long k = 0; k < ranks; ++k) parts.push_back(pool.submit(count_in_own_rank, share));
    std::set<int> ran_on;
    for (auto& f : parts) {
      const auto [sum, rank, seconds] = f.result();
      if (sum != share * (share - 1) / 2) fail("a share's sum is wrong");
      ran_on.insert(rank);
      task_s.push_back(seconds);
    }
    wall_s.push_back(seconds_since(t0));
    if (static_cast<long>(ran_on.size()) != ranks) fail("a rank ran no share, another two");
  }

  std::vector<double> round_trip_s;
  for (long i = 0; i < round_trips; ++i) {
    const auto t0 = Clock::now();
    if (pool.submit(tiny, i).result() != i + 1) fail("a tiny task's result is wrong");
    round_trip_s.push_back(seconds_since(t0));
  }

  double tiny_s = 0;
  {
    const auto t0 = Clock::now();
    std::vector<concur::Future<long>> futures;
    futures.reserve(static_cast<std::size_t>(tiny_tasks));
    for (long i = 0; i < tiny_tasks; ++i) futures.push_back(pool.submit(tiny, i));
    for (long i = 0; i < tiny_tasks; ++i) {
      if (futures[static_cast<std::size_t>(i)].result() != i + 1) fail("a tiny result is wrong");
    }
    tiny_s = seconds_since(t0);
  }

  std::printf(
      "{\"ranks\": %ld, \"work\": %ld, \"wall_s\": %s, \"task_s\": %s, \"round_trip_s\": %s, "
      "\"tiny_tasks\": %ld, \"tiny_s\": %.9g}\n",
      ranks, share * ranks, json_list(wall_s).c_str(), json_list(task_s).c_str(),
      json_list(round_trip_s).c_str(), tiny_tasks, tiny_s);
}

}  // namespace

int main(int argc, char** argv) {
  concur::mpi::main_guard(argc, argv);  // ranks 1.. serve here and exit
  long work = 0;
  long repeat = 1;
  long tiny_tasks = 0;
  long round_trips = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long value = std::atol(argv[i + 1]);
    if (flag == "--work") work = value;
    if (flag == "--repeat") repeat = value;
    if (flag == "--tiny") tiny_tasks = value;
    if (flag == "--round-trips") round_trips = value;
  }
  if (work <= 0 || repeat <= 0 || tiny_tasks <= 0 || round_trips <= 0) {
    std::fprintf(
        stderr,
        "usage: mpirun -n K+1 concur-lab-mpi --work N [--repeat P] --tiny T --round-trips R\n");
    return 2;
  }
  try {
    measure(work, repeat, tiny_tasks, round_trips);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur-lab-mpi: %s\n", e.what());
    return 1;
  }
  return 0;
}
