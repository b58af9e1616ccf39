// Linux: process_vm_readv(2), /proc/PID/maps and /proc/PID/task/TID/syscall.
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "platform/remote_process.hpp"

namespace concur::platform {

long read_process_memory(pid_t pid, std::uintptr_t address, void* out, std::size_t n) noexcept {
  iovec local{out, n};
  iovec remote{reinterpret_cast<void*>(address), n};
  const ssize_t got = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (got < 0 && (errno == EFAULT || errno == EIO)) return 0;  // not mapped: a stale pointer
  return static_cast<long>(got);
}

std::vector<MemoryRegion> writable_file_regions(pid_t pid, int* error) {
  std::vector<MemoryRegion> regions;
  *error = 0;
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  if (!maps) {
    *error = errno != 0 ? errno : EIO;
    return regions;
  }
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode >> path;
    if (perms.size() < 2 || perms[0] != 'r' || perms[1] != 'w' || path.empty() || path[0] == '[') {
      continue;
    }
    const std::size_t dash = range.find('-');
    regions.push_back({std::stoull(range.substr(0, dash), nullptr, 16),
                       std::stoull(range.substr(dash + 1), nullptr, 16)});
  }
  return regions;
}

namespace {

const char* syscall_name(long nr) {
#if defined(__x86_64__)
  switch (nr) {
    case 0:
      return "read";
    case 1:
      return "write";
    case 7:
      return "poll";
    case 23:
      return "select";
    case 35:
      return "nanosleep";
    case 43:
      return "accept";
    case 44:
      return "sendto";
    case 45:
      return "recvfrom";
    case 61:
      return "wait4";
    case 202:
      return "futex";
    case 230:
      return "clock_nanosleep";
    case 232:
      return "epoll_wait";
    case 247:
      return "waitid";
    case 271:
      return "ppoll";
    case 281:
      return "epoll_pwait";
    case 288:
      return "accept4";
    case 441:
      return "epoll_pwait2";
  }
#elif defined(__aarch64__)
  switch (nr) {
    case 22:
      return "epoll_pwait";
    case 63:
      return "read";
    case 64:
      return "write";
    case 98:
      return "futex";
    case 101:
      return "nanosleep";
    case 115:
      return "clock_nanosleep";
    case 441:
      return "epoll_pwait2";
  }
#endif
  return nullptr;
}

}  // namespace

std::string thread_activity(pid_t pid, int tid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall");
  if (!in) return errno == ENOENT ? "gone" : "unknown";
  std::string first;
  in >> first;
  if (first == "running") return "running";
  char* end = nullptr;
  const long nr = std::strtol(first.c_str(), &end, 10);
  if (first.empty() || *end != '\0' || nr < 0) return "unknown";
  const char* name = syscall_name(nr);
  const std::string call = name != nullptr ? name : "system call " + std::to_string(nr);
  if (call == "epoll_wait" || call == "epoll_pwait" || call == "epoll_pwait2") return "polling";
  return "in " + call;
}

int current_thread_id() noexcept {
  return static_cast<int>(::syscall(SYS_gettid));
}

}  // namespace concur::platform
