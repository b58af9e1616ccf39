#include "concur/multiprocessing/serialization.hpp"

#include <cxxabi.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <system_error>

#include "concur/errors.hpp"

namespace concur::multiprocessing::detail {

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  return status == 0 && demangled ? std::string(demangled.get()) : std::string(type.name());
}

namespace {
thread_local FdOutbox* tl_outbox = nullptr;
thread_local FdInbox* tl_inbox = nullptr;
}  // namespace

FdOutbox::FdOutbox() : previous_(tl_outbox) {
  tl_outbox = this;
}

FdOutbox::~FdOutbox() {
  tl_outbox = previous_;
  for (int fd : fds_) close(fd);
}

std::uint32_t FdOutbox::add(int fd) {
  const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) {
    throw OSError(errno,
                  "concur::multiprocessing: a descriptor in the arguments could not be "
                  "duplicated (out of descriptors? close some, or raise `ulimit -n`)");
  }
  fds_.push_back(copy);
  return static_cast<std::uint32_t>(fds_.size() - 1);
}

FdOutbox* FdOutbox::current() {
  return tl_outbox;
}

FdInbox::FdInbox(std::vector<int> fds) : fds_(std::move(fds)), previous_(tl_inbox) {
  tl_inbox = this;
}

FdInbox::~FdInbox() {
  tl_inbox = previous_;
  for (int fd : fds_) {
    if (fd >= 0) close(fd);
  }
}

int FdInbox::take(std::uint32_t index) {
  if (index >= fds_.size() || fds_[index] < 0) {
    throw ProtocolError(
        "concur::multiprocessing: a message refers to a descriptor it did not carry");
  }
  const int fd = fds_[index];
  fds_[index] = -1;
  return fd;
}

FdInbox* FdInbox::current() {
  return tl_inbox;
}

std::uint32_t export_fd(int fd, const char* what) {
  FdOutbox* outbox = FdOutbox::current();
  if (!outbox) {
    throw TypeError(std::string("concur::multiprocessing: a ") + what +
                    " can be sent only to another process (as an argument of a Process or a "
                    "task, or through a Connection), not serialised to bytes on its own");
  }
  return outbox->add(fd);
}

int import_fd(std::uint32_t index, const char* what) {
  FdInbox* inbox = FdInbox::current();
  if (!inbox) {
    throw TypeError(std::string("concur::multiprocessing: a ") + what +
                    " can be received only from another process");
  }
  return inbox->take(index);
}

}  // namespace concur::multiprocessing::detail
