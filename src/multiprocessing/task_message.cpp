// The call loop both pools' workers share: a task message in, a result message out.
#include <chrono>
#include <exception>
#include <string>
#include <typeinfo>

#include "concur/errors.hpp"
#include "concur/multiprocessing/registry.hpp"
#include "multiprocessing/shared_ring.hpp"
#include "multiprocessing/task_message.hpp"

namespace concur::multiprocessing::detail {

void check_answer(const ResultMessage& answer, std::size_t inputs) {
  if (answer.status == ResultMessage::kOk) {
    if (answer.results.size() != inputs) {
      throw ProtocolError("the answer to task " + std::to_string(answer.id) + " carries " +
                          std::to_string(answer.results.size()) + " result(s) for " +
                          std::to_string(inputs) + " call(s)");
    }
  } else if (answer.status == ResultMessage::kRaised) {
    if (!answer.results.empty() || !answer.shared.empty()) {
      throw ProtocolError("the answer to task " + std::to_string(answer.id) +
                          " reports an exception and carries results too");
    }
  } else {
    throw ProtocolError("the answer to task " + std::to_string(answer.id) + " has status " +
                        std::to_string(answer.status) + ", neither ok (0) nor raised (1)");
  }
}

std::vector<std::string_view> resolve_shared(const std::vector<std::string>& values,
                                             const std::vector<SharedSpan>& shared,
                                             const SharedRing* ring) {
  std::vector<std::string_view> views(values.begin(), values.end());
  if (shared.empty()) return views;
  if (!ring) throw ProtocolError("a message names shared-memory spans, and no ring was sent");
  std::size_t next = 0;  // spans come in increasing index order, each entry at most once
  for (const SharedSpan& span : shared) {
    if (span.index < next || span.index >= values.size() || !values[span.index].empty()) {
      throw ProtocolError("a shared-memory span stands for entry " + std::to_string(span.index) +
                          " of " + std::to_string(values.size()) +
                          ", which is out of order, out of range or not empty");
    }
    views[span.index] = ring->view(span.position, span.length);
    next = span.index + std::size_t{1};
  }
  return views;
}

ResultMessage run_task(TaskMessage&& task, pid_t pid, const SharedRing* ring) {
  ResultMessage result;
  result.id = task.id;
  result.pid = pid;
  const auto t0 = std::chrono::steady_clock::now();
  const Registration* reg = find_registration(task.function);
  if (!reg || reg->signature != task.signature) {
    result.status = ResultMessage::kRaised;
    result.error_type = "concur::multiprocessing::NotRegistered";
    result.error_message = reg ? "'" + task.function + "' has another signature in the worker (" +
                                     reg->signature + " vs " + task.signature + ")"
                               : "no function named '" + task.function +
                                     "' is registered in the worker; nothing was run";
    return result;
  }
  std::vector<std::string_view> args;
  try {
    args = resolve_shared(task.args, task.shared, ring);
  } catch (const ProtocolError& e) {
    result.status = ResultMessage::kRaised;
    result.error_type = "concur::ProtocolError";
    result.error_message = e.what();
    return result;
  }
  try {
    result.results.reserve(args.size());
    for (std::size_t i = 0; i < args.size(); ++i) {
      result.results.push_back(reg->invoke(args[i], &task.args[i]));
    }
  } catch (const std::exception& e) {
    result.status = ResultMessage::kRaised;
    result.results.clear();
    result.error_type = type_name(typeid(e));
    result.error_message = e.what();
  } catch (...) {
    result.status = ResultMessage::kRaised;
    result.results.clear();
    result.error_type = "unknown";
    result.error_message = "an exception not derived from std::exception";
  }
  result.busy_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  return result;
}

}  // namespace concur::multiprocessing::detail
