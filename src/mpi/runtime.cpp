// concur::mpi::main_guard and the per-process MPI state behind MpiPoolExecutor.
#include "mpi/runtime.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "concur/base/mutex.hpp"
#include "concur/errors.hpp"
#include "concur/mpi_pool.hpp"
#include "platform/process.hpp"

namespace concur::mpi {

namespace detail {
namespace {

struct Runtime {
  base::Mutex mu;
  MPI_Comm comm = MPI_COMM_NULL;  // comm, rank and size: set once, at MPI's start
  int rank = 0;
  int size = 0;
  bool pool_exists CONCUR_GUARDED_BY(mu) = false;
  std::set<int> lost CONCUR_GUARDED_BY(mu);
};

Runtime& runtime() {
  static Runtime* r = new Runtime();  // never destroyed: used from exit handlers
  return *r;
}

// Rank 0 at exit: release every worker (a lost one too: if it lives after all, it must not wait
// for tasks forever) and finalise. Once a rank is lost, no rank calls MPI_Finalize: Open MPI
// 4.1's finalize waits in a fence for every rank, the dead one included, and sometimes forever
// (seen here under --enable-recovery); mpirun --enable-recovery accepts ranks that exit without
// it. The kExit message's one byte tells the workers which way it is.
void finalize_at_exit() {
  Runtime& r = runtime();
  const bool finalize = lost_ranks().empty();
  const char how = finalize ? 1 : 0;
  std::vector<MPI_Request> requests(static_cast<std::size_t>(std::max(0, r.size - 1)),
                                    MPI_REQUEST_NULL);
  for (int worker = 1; worker < r.size; ++worker) {
    MPI_Isend(&how, 1, MPI_BYTE, worker, kExit, r.comm,
              &requests[static_cast<std::size_t>(worker - 1)]);
  }
  if (finalize) {
    MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
    MPI_Comm_free(&r.comm);
    MPI_Finalize();
    return;
  }
  // A send to a dead rank may never complete: give the live ones a moment, then leave.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  int done = 0;
  while (!done && std::chrono::steady_clock::now() < give_up) {
    MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

MPI_Comm pool_comm() {
  Runtime& r = runtime();
  if (r.comm == MPI_COMM_NULL) {
    throw RuntimeError(
        "concur::MpiPoolExecutor: MPI is not initialised for the pool; call "
        "concur::mpi::main_guard(argc, argv) as the first line of main()");
  }
  return r.comm;
}

std::string error_text(const char* call, int rc) {
  if (rc == MPI_SUCCESS) return {};
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  return std::string(call) + ": " + std::string(text, static_cast<std::size_t>(length));
}

int receive_bytes(MPI_Comm comm, int source, int tag, std::string& out, MPI_Status* status) {
  MPI_Status probed;
  int rc = MPI_Probe(source, tag, comm, &probed);
  if (rc != MPI_SUCCESS) return rc;
  int count = 0;
  MPI_Get_count(&probed, MPI_BYTE, &count);
  out.resize(static_cast<std::size_t>(count));
  rc = MPI_Recv(out.data(), count, MPI_BYTE, probed.MPI_SOURCE, probed.MPI_TAG, comm,
                status ? status : MPI_STATUS_IGNORE);
  return rc;
}

MPI_Comm spawn_workers(int n, bool oversubscribe) {
  std::string exe = platform::this_program_path();
  if (exe.empty()) {
    throw RuntimeError("concur::MpiPoolExecutor: cannot find this program's path to spawn workers");
  }
  MPI_Info info = MPI_INFO_NULL;
  if (oversubscribe) {
    MPI_Info_create(&info);
    MPI_Info_set(info, "map_by", "slot:OVERSUBSCRIBE");  // more workers than free cores is fine
  }
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  MPI_Comm inter = MPI_COMM_NULL;
  std::vector<int> errors(static_cast<std::size_t>(n), MPI_SUCCESS);
  const int rc =
      MPI_Comm_spawn(exe.data(), MPI_ARGV_NULL, n, info, 0, MPI_COMM_SELF, &inter, errors.data());
  if (info != MPI_INFO_NULL) MPI_Info_free(&info);
  if (rc != MPI_SUCCESS) {
    throw RuntimeError(
        "concur::MpiPoolExecutor: MPI_Comm_spawn could not start " + std::to_string(n) +
        " workers (" + error_text("MPI_Comm_spawn", rc) +
        "); Open MPI needs its mpirun/orted installed (openmpi-bin), as root "
        "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, and free slots or "
        "spawn_oversubscribe; or start the program with `mpiexec -n N` instead");
  }
  MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
  return inter;
}

void release_spawned(MPI_Comm& inter, int n, bool any_lost) {
  const char how = any_lost ? 0 : 1;
  std::vector<MPI_Request> requests(static_cast<std::size_t>(n), MPI_REQUEST_NULL);
  for (int worker = 0; worker < n; ++worker) {
    MPI_Isend(&how, 1, MPI_BYTE, worker, kExit, inter, &requests[static_cast<std::size_t>(worker)]);
  }
  if (!any_lost) {
    MPI_Waitall(n, requests.data(), MPI_STATUSES_IGNORE);
    MPI_Comm_disconnect(&inter);
    return;
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  int done = 0;
  while (!done && std::chrono::steady_clock::now() < give_up) {
    MPI_Testall(n, requests.data(), &done, MPI_STATUSES_IGNORE);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void claim_workers() {
  Runtime& r = runtime();
  base::MutexLock lock(r.mu);
  if (r.pool_exists) {
    throw RuntimeError(
        "concur::MpiPoolExecutor: another MpiPoolExecutor exists in this program and owns the "
        "worker ranks; destroy (or shut down and destroy) it before making a new one");
  }
  r.pool_exists = true;
}

void release_workers() {
  Runtime& r = runtime();
  base::MutexLock lock(r.mu);
  r.pool_exists = false;
}

void mark_lost(int rank) {
  Runtime& r = runtime();
  base::MutexLock lock(r.mu);
  r.lost.insert(rank);
}

std::set<int> lost_ranks() {
  Runtime& r = runtime();
  base::MutexLock lock(r.mu);
  return r.lost;
}

std::chrono::microseconds Backoff::next() {
  if (std::chrono::steady_clock::now() - last_activity_ < kSpin)
    return std::chrono::microseconds(0);
  const unsigned shift = std::min(sleeps_++, 10u);
  return std::chrono::microseconds(std::min(1u << shift, 1000u));
}

}  // namespace detail

void main_guard(int& argc, char**& argv) {
  detail::Runtime& r = detail::runtime();
  if (r.comm != MPI_COMM_NULL) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = 0;
  if (!initialized) {
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    throw RuntimeError(
        "concur::mpi::main_guard(): this MPI library gives only thread level " +
        std::to_string(provided) +
        " and the pool needs MPI_THREAD_SERIALIZED (its own thread calls MPI); use an MPI built "
        "with thread support (Open MPI 4 is)");
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &r.comm);
  MPI_Comm_set_errhandler(r.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(r.comm, &r.rank);
  MPI_Comm_size(r.comm, &r.size);
  MPI_Comm parent = MPI_COMM_NULL;
  MPI_Comm_get_parent(&parent);
  if (parent != MPI_COMM_NULL) {  // mode (b): a worker a pool spawned
    MPI_Comm_set_errhandler(parent, MPI_ERRORS_RETURN);
    if (detail::serve(parent)) {
      MPI_Comm_disconnect(&parent);
      MPI_Comm_free(&r.comm);
      MPI_Finalize();
    }
    std::exit(0);
  }
  if (r.rank != 0) {
    if (detail::serve(r.comm)) {
      MPI_Comm_free(&r.comm);
      MPI_Finalize();
    }
    std::exit(0);
  }
  std::atexit(detail::finalize_at_exit);
}

int rank() {
  return detail::runtime().rank;
}

int size() {
  return detail::runtime().size;
}

}  // namespace concur::mpi
