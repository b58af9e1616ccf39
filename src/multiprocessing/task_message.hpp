// Internal to concur: what a pool sends a worker and what comes back, shared by every transport
// (the process pool's socket frames, the MPI pool's messages), so that a task is the same bytes
// whichever pool carries it: the registered name, its signature, and cereal-encoded arguments.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace concur::multiprocessing::detail {

// One message of work: `args` holds one encoded argument tuple per call (a map chunk has many).
struct TaskMessage {
  std::uint64_t id = 0;
  std::string function;
  std::string signature;
  std::vector<std::string> args;
  template <class Archive>
  void serialize(Archive& a) {
    a(id, function, signature, args);
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
  template <class Archive>
  void serialize(Archive& a) {
    a(id, status, results, error_type, error_message, pid, busy_ns);
  }
};

// The checks a pool makes on an answer before it touches a future (the bytes come from another
// process): a known status, and for kOk exactly one result per call the task carried (`inputs`),
// so that a map chunk can never come back short and silently lose values; for kRaised none.
// Throws ProtocolError naming what is wrong; the pool then breaks, as for any corrupt message.
void check_answer(const ResultMessage& answer, std::size_t inputs);

// Runs every call of `task` with the function registered under its name, in this process. A name
// that is unknown here, or registered with another signature, runs nothing and answers kRaised.
ResultMessage run_task(TaskMessage&& task, pid_t pid);

}  // namespace concur::multiprocessing::detail
