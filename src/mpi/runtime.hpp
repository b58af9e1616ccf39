// Internal to concur::mpi: the pool's communicator, its message tags, and what rank 0 remembers
// across pools (which ranks were lost). One per process, as MPI itself is.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "multiprocessing/task_message.hpp"

namespace concur::mpi::detail {

// Tags on the pool's communicator. Per sender, MPI delivers in order, so a *Head message is
// always followed by its payloads before anything else from the same rank.
enum Tag : int {
  kTasks = 1,          // rank 0 -> worker: cereal vector<TaskMessage> (small arguments inline)
  kTaskHead = 2,       // one TaskMessage whose args are empty, followed by one kTaskPayload each
  kTaskPayload = 3,    // one encoded argument tuple, raw
  kResults = 4,        // worker -> rank 0: cereal vector<ResultMessage>
  kResultHead = 5,     // one ResultMessage whose results are empty, followed by kResultPayloads
  kResultPayload = 6,  // one encoded result, raw
  kHeartbeat = 7,      // worker -> rank 0, empty: "alive, still working"
  kExit = 8,           // rank 0 -> worker, one byte: the program is ending; 1: finalise, 0: not
  kTaskBuffer = 9,     // one out-of-band ByteBuffer of the task, raw, in pieces (after payloads)
  kResultBuffer = 10,  // one out-of-band ByteBuffer of a result, the same way
};

// What kTaskHead carries: the task with its args left empty (one kTaskPayload follows for each),
// and the sizes of its out-of-band ByteBuffers (each follows as kTaskBuffer messages of at most
// kPieceMax bytes: MPI counts in int).
struct TaskHead {
  multiprocessing::detail::TaskMessage task;
  std::vector<std::uint64_t> buffers;
  template <class Archive>
  void serialize(Archive& a) {
    a(task, buffers);
  }
};
// What kResultHead carries: the answer with its results left empty, and its buffers' sizes, as
// TaskHead.
struct ResultHead {
  multiprocessing::detail::ResultMessage result;
  std::vector<std::uint64_t> buffers;
  template <class Archive>
  void serialize(Archive& a) {
    a(result, buffers);
  }
};
inline constexpr std::size_t kPieceMax = std::size_t{1} << 30;

// Calls f(offset, length) for each piece of a buffer of `size` bytes, in order, until f returns
// false; an empty buffer is still one (empty) piece, so that every buffer is a message. Returns
// whether every call returned true.
template <class F>
bool for_each_piece(std::size_t size, F f) {
  std::size_t at = 0;
  do {
    const std::size_t piece = size - at < kPieceMax ? size - at : kPieceMax;
    if (!f(at, piece)) return false;
    at += piece;
  } while (at < size);
  return true;
}

// An argument or result above this goes in a message of its own, not copied into a batch.
inline constexpr std::size_t kInlineLimit = 64 * 1024;
// How often a worker holding tasks says it is alive.
inline constexpr auto kHeartbeatInterval = std::chrono::milliseconds(100);

// The duplicate of MPI_COMM_WORLD the pool talks on (errors returned, not fatal). Throws
// concur::RuntimeError if main_guard() has not run.
MPI_Comm pool_comm();

// "MPI_Send: <MPI's error string>" when rc is an error, else empty.
std::string error_text(const char* call, int rc);

// Receives the next message of (source, tag) into `out`, sized by MPI_Probe/MPI_Get_count so
// that the bytes land in their final buffer. Returns the MPI error code.
int receive_bytes(MPI_Comm comm, int source, int tag, std::string& out, MPI_Status* status);

// Rank 0's bookkeeping: one pool at a time, and the ranks a pool found lost (never used again).
void claim_workers();  // throws concur::RuntimeError if a pool exists
void release_workers();
void mark_lost(int rank);
std::set<int> lost_ranks();

// Mode (b): starts n workers running this program (/proc/self/exe) with MPI_Comm_spawn and returns
// the intercommunicator to them (errors returned). Throws concur::RuntimeError naming what Open MPI
// needs when it refuses.
MPI_Comm spawn_workers(int n, bool oversubscribe);
// Ends a spawned pool's workers: kExit to each, then MPI_Comm_disconnect (which waits for every
// one of them, so not when one was lost: then they are told not to finalise, and left).
void release_spawned(MPI_Comm& inter, int n, bool any_lost);

// The worker's side: serve tasks until kExit (runs on every rank but 0). Returns whether to call
// MPI_Finalize (not once a rank was lost; see finalize_at_exit), false too if MPI failed.
bool serve(MPI_Comm comm);

// Pauses between empty polls: only yields for kSpin after the last message (a reply is usually
// microseconds away, and a round trip must not wait for a sleep), then sleeps 1, 2, 4 ... up to
// 1000 us, so that an idle rank leaves an oversubscribed machine's cores to the ranks that work.
class Backoff {
 public:
  static constexpr auto kSpin = std::chrono::microseconds(200);
  void reset() {
    last_activity_ = std::chrono::steady_clock::now();
    sleeps_ = 0;
  }
  // How long to pause after another empty poll (zero: just yield).
  std::chrono::microseconds next();

 private:
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  unsigned sleeps_ = 0;
};

}  // namespace concur::mpi::detail
