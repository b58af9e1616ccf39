// concur/errors.hpp: the exceptions concur throws, named as Python names them.
//
// | concur                     | Python                                         | thrown when |
// |----------------------------|------------------------------------------------|-----------------------------|
// | CancelledError             | concurrent.futures.CancelledError              | result() of a
// cancelled one | | TimeoutError               | TimeoutError                                   | a
// timeout passes first      | | InvalidStateError          | concurrent.futures.InvalidStateError
// | set twice; empty handle     | | RuntimeError               | RuntimeError | submit() after
// shutdown()   | | BrokenExecutor             | concurrent.futures.BrokenExecutor              |
// the pool can run no more    | | BrokenThreadPool           |
// concurrent.futures.thread.BrokenThreadPool     | a worker initializer failed | |
// BrokenProcessPool          | concurrent.futures.process.BrokenProcessPool   | a worker process
// died       | | BrokenPromise              | (none: C++'s std::future_errc::broken_promise) | a
// Promise died unfulfilled  |
//
// A task's own exception is never wrapped: result() rethrows it as its own type.
// Every message names the call that failed, the rule it broke and what to do instead.
#pragma once

#include <stdexcept>
#include <string>

namespace concur {

class CancelledError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InvalidStateError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BrokenExecutor : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BrokenThreadPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

class BrokenProcessPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

class BrokenPromise : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A task that ran in another process threw. Carries what crossed the boundary: the exception's
// type name, its message, and the pid of the process where it was thrown.
class RemoteError : public std::runtime_error {
 public:
  RemoteError(std::string type_name, std::string message, int pid)
      : std::runtime_error(type_name + " in process " + std::to_string(pid) + ": " + message),
        type_name_(std::move(type_name)),
        message_(std::move(message)),
        pid_(pid) {}
  const std::string& type_name() const noexcept { return type_name_; }
  const std::string& message() const noexcept { return message_; }
  int pid() const noexcept { return pid_; }

 private:
  std::string type_name_;
  std::string message_;
  int pid_;
};

class EOFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TypeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bytes from another process that are not a valid message: a bad header, a frame larger than
// allowed, or a payload that does not decode as the type it claims. The channel is closed.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace concur
