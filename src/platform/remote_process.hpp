// Internal: looking at another process without stopping it, as a debugger does (concur-ps:
// src/asyncio/inspect.cpp). Every call needs the kernel's ptrace access to the target (the same
// user; where Yama's ptrace_scope is 1, root or CAP_SYS_PTRACE) and fails with EPERM/EACCES
// otherwise, ESRCH when it is gone. Linux: process_vm_readv(2) and /proc/PID; a port uses its
// debugger interface (mach_vm_read on macOS).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace concur::platform {

// Copies n bytes at `address` in process `pid` into `out`. Returns n; fewer (or 0) when part of
// the range is not mapped there (the caller read a stale pointer); -1 with errno set when the
// process cannot be read at all (EPERM, ESRCH).
long read_process_memory(pid_t pid, std::uintptr_t address, void* out, std::size_t n) noexcept;

// The writable regions of `pid` that are backed by a file: the data of its program and of its
// shared libraries. Throws nothing: *error is 0, or the errno of a map that cannot be read.
struct MemoryRegion {
  std::uintptr_t start = 0;
  std::uintptr_t end = 0;
};
std::vector<MemoryRegion> writable_file_regions(pid_t pid, int* error);

// What thread `tid` of `pid` is doing by the kernel's account: "running", "polling" (in the
// event loop's wait for I/O: epoll_wait and kin), "in <syscall name>" (or "in system call N"),
// "gone" (no such thread), or "unknown".
std::string thread_activity(pid_t pid, int tid);

// The kernel's id for the calling thread (gettid).
int current_thread_id() noexcept;

}  // namespace concur::platform
