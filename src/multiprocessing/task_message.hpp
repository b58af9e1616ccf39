// Internal to concur: what a pool sends a worker and what comes back, shared by every transport
// (the process pool's socket frames, the MPI pool's messages), so that a task is the same bytes
// whichever pool carries it: the registered name, its signature, and cereal-encoded arguments.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace concur::multiprocessing::detail {

class SharedRing;

// An encoded argument tuple or result that travels in a shared-memory ring (shared_ring.hpp)
// instead of in the message: `length` bytes at ring position `position`, standing for entry
// `index` of the message's args or results (left empty there).
struct SharedSpan {
  std::uint32_t index = 0;
  std::uint64_t position = 0;
  std::uint64_t length = 0;
  std::uint64_t end() const { return position + length; }
  template <class Archive>
  void serialize(Archive& a) {
    a(index, position, length);
  }
};

// One message of work: `args` holds one encoded argument tuple per call (a map chunk has many).
struct TaskMessage {
  std::uint64_t id = 0;
  std::string function;
  std::string signature;
  std::vector<std::string> args;
  std::vector<SharedSpan> shared;  // in increasing index order
  template <class Archive>
  void serialize(Archive& a) {
    a(id, function, signature, args, shared);
  }
};

// Its answer: one encoded result per call, or the exception the first failing call threw.
struct ResultMessage {
  enum : std::uint8_t { kOk = 0, kRaised = 1 };
  std::uint64_t id = 0;
  std::uint8_t status = kOk;
  std::vector<std::string> results;
  std::string error_type;
  std::string error_message;
  std::int32_t pid = 0;
  std::uint64_t busy_ns = 0;
  std::vector<SharedSpan> shared;  // in increasing index order
  template <class Archive>
  void serialize(Archive& a) {
    a(id, status, results, error_type, error_message, pid, busy_ns, shared);
  }
};

// The encoded values of `values` (a message's args or results) with the entries named by `shared`
// read from `ring` instead (no copy: the views point into the ring). Throws ProtocolError if a span
// names no entry, an entry that is not empty, or bytes outside the ring, or if there are spans and
// no ring.
std::vector<std::string_view> resolve_shared(const std::vector<std::string>& values,
                                             const std::vector<SharedSpan>& shared,
                                             const SharedRing* ring);

// The checks a pool makes on an answer before it touches a future (the bytes come from another
// process): a known status, and for kOk exactly one result per call the task carried (`inputs`),
// so that a map chunk can never come back short and silently lose values; for kRaised none.
// Throws ProtocolError naming what is wrong; the pool then breaks, as for any corrupt message.
void check_answer(const ResultMessage& answer, std::size_t inputs);

// Runs every call of `task` with the function registered under its name, in this process. A name
// that is unknown here, or registered with another signature, runs nothing and answers kRaised;
// so does a task whose shared spans do not resolve in `ring` (the ring its arguments came in).
ResultMessage run_task(TaskMessage&& task, pid_t pid, const SharedRing* ring = nullptr);

}  // namespace concur::multiprocessing::detail
