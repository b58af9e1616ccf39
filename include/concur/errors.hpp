// concur/errors.hpp: the exceptions concur throws, named as Python names them.
//
// clang-format off
//   concur                  Python                                       thrown when
//   CancelledError          asyncio / concurrent.futures CancelledError  a cancelled future or task
//   TimeoutError            TimeoutError                                 a timeout passes first
//   InvalidStateError       concurrent.futures.InvalidStateError         set twice; not done yet
//   RuntimeError            RuntimeError                                 submit() after shutdown()
//   NotImplementedError     NotImplementedError                          write_eof() on a TLS stream
//   AssertionError          AssertionError                               start() twice, join() unstarted
//   ValueError              ValueError                                   a bounded semaphore over-released
//   BrokenExecutor          concurrent.futures.BrokenExecutor            the pool can run no more
//   BrokenThreadPool        concurrent.futures.thread.BrokenThreadPool   a worker initializer failed
//   BrokenProcessPool       concurrent.futures.process.BrokenProcessPool a worker process died
//   WorkerDied              (none: Python's pool always breaks)          one worker died, pool lives on
//   BrokenMpiPool           mpi4py.futures' BrokenExecutor               an MPI worker rank was lost
//   BrokenPromise           (C++'s std::future_errc::broken_promise)     a Promise died unfulfilled
//   RemoteError             (the remote exception, pickled)              a task in a process threw
//   EOFError                EOFError                                     the peer closed
//   TypeError               TypeError                                    a message of another type
//   ProtocolError           (pickle.UnpicklingError)                     bytes that are no message
//   OSError                 OSError                                      a system call failed
//   FileNotFoundError       FileNotFoundError                            no such name (shm unlink)
//   ConnectionError         ConnectionError (and its subclasses below)   a connection failed
//   ConnectionResetError    ConnectionResetError                         the peer reset it
//   ConnectionRefusedError  ConnectionRefusedError                       nobody listens there
//   BrokenPipeError         BrokenPipeError                              writing after the peer left
//   ConnectionAbortedError  ConnectionAbortedError                       a TLS handshake took too long
//   SSLError                ssl.SSLError                                 a TLS handshake or record failed
//   SSLCertVerificationError ssl.SSLCertVerificationError                the peer's certificate refused
//   IncompleteReadError     asyncio.IncompleteReadError                  EOF before enough bytes
//   LimitOverrunError       asyncio.LimitOverrunError                    a line longer than the limit
//   QueueEmpty, QueueFull   asyncio.QueueEmpty, asyncio.QueueFull        get/put_nowait could not
//   ExceptionGroup          ExceptionGroup                               TaskGroup children failed
//   KeyboardInterrupt       KeyboardInterrupt                            SIGINT stopped asyncio::run
// clang-format on
//
// A task's own exception is never wrapped: result() rethrows it as its own type.
// Every message names the call that failed, the rule it broke and what to do instead.
#pragma once

#include <cerrno>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

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

// A call in the wrong order (Python's multiprocessing asserts these). A std::logic_error: a bug in
// the calling program, not a condition to handle.
// An operation the object cannot do (TLS streams: write_eof(), TLS has no half-close). A
// RuntimeError, as Python's.
class NotImplementedError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

class AssertionError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

class ValueError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
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

// A process pool's worker died while it held the future's task, and the pool, made with
// on_worker_death = replace (concur/process_pool.hpp), went on without it. What ended it:
// a signal (signal() > 0), or an exit code (exit_code(), when signal() is 0); oom_killed() says
// whether the out-of-memory killer of the pool's cgroup acted meanwhile (nullopt: not known).
// A BrokenProcessPool, so code written for Python's behaviour still catches it.
class WorkerDied : public BrokenProcessPool {
 public:
  WorkerDied(const std::string& what, int pid, int signal, int exit_code,
             std::optional<bool> oom_killed)
      : BrokenProcessPool(what),
        pid_(pid),
        signal_(signal),
        exit_code_(exit_code),
        oom_killed_(oom_killed) {}
  int pid() const noexcept { return pid_; }
  int signal() const noexcept { return signal_; }
  int exit_code() const noexcept { return exit_code_; }
  std::optional<bool> oom_killed() const noexcept { return oom_killed_; }

 private:
  int pid_;
  int signal_;
  int exit_code_;
  std::optional<bool> oom_killed_;
};

// concur::MpiPoolExecutor (concur/mpi_pool.hpp) lost a worker rank (its heartbeat stopped, or
// MPI reported an error); mpi4py.futures raises a plain BrokenExecutor there.
class BrokenMpiPool : public BrokenExecutor {
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

// A system call failed; code() is the errno value (std::generic_category()).
class OSError : public std::system_error {
 public:
  OSError(int errno_value, const std::string& what)
      : std::system_error(errno_value, std::generic_category(), what) {}
};

// ENOENT: the name (of a shared memory segment, say) does not exist.
class FileNotFoundError : public OSError {
 public:
  using OSError::OSError;
};
class ConnectionError : public OSError {
 public:
  using OSError::OSError;
};
// ESRCH: no such process.
class ProcessLookupError : public OSError {
 public:
  using OSError::OSError;
};
// EPERM, EACCES: the operation is not permitted to this user.
class PermissionError : public OSError {
 public:
  using OSError::OSError;
};

class ConnectionResetError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

class ConnectionRefusedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

class BrokenPipeError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

class ConnectionAbortedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

// TLS failed (concur/asyncio/ssl.hpp): an OSError, as Python's. code() is EPROTO (Python's errno
// is OpenSSL's SSL_ERROR_* number, which is no errno); what() carries OpenSSL's reason.
class SSLError : public OSError {
 public:
  explicit SSLError(const std::string& what) : OSError(EPROTO, what) {}
};

// The peer's certificate did not verify. verify_code() is OpenSSL's X509_V_ERR_* value,
// verify_message() the failing check, as Python's attributes of those names.
class SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(long verify_code, std::string verify_message, const std::string& what)
      : SSLError(what), verify_code_(verify_code), verify_message_(std::move(verify_message)) {}
  long verify_code() const noexcept { return verify_code_; }
  const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  long verify_code_;
  std::string verify_message_;
};

// The stream ended before `expected` bytes (or a separator) arrived; partial() holds what did.
class IncompleteReadError : public EOFError {
 public:
  IncompleteReadError(std::string partial, std::size_t expected, const std::string& what)
      : EOFError(what), partial_(std::move(partial)), expected_(expected) {}
  const std::string& partial() const noexcept { return partial_; }
  std::size_t expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::size_t expected_;
};

// No separator within the stream's limit; consumed() bytes are still buffered, unread.
class LimitOverrunError : public std::runtime_error {
 public:
  LimitOverrunError(const std::string& what, std::size_t consumed)
      : std::runtime_error(what), consumed_(consumed) {}
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

class QueueEmpty : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Several tasks of a TaskGroup failed: exceptions() holds each (rethrow one to inspect it).
class ExceptionGroup : public std::runtime_error {
 public:
  ExceptionGroup(const std::string& what, std::vector<std::exception_ptr> exceptions)
      : std::runtime_error(what), exceptions_(std::move(exceptions)) {}
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::vector<std::exception_ptr> exceptions_;
};

// asyncio::run() was interrupted by SIGINT (Ctrl-C): the main task was cancelled and cleaned up.
class KeyboardInterrupt : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace concur
