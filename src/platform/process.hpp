// Internal: processes: starting this program again, forking, waiting, signalling, and counting
// this process's threads.
//
// Everything the launcher, the pools and the asyncio subprocess support ask of the OS about
// processes goes through these functions, so a port replaces this file's Linux implementation
// (process_linux.cpp) and nothing above it. POSIX ports keep most of it; what is Linux-only is
// marked. None of these throws: each reports failure by its result, and the caller (who knows
// what the user was doing) turns it into a concur error that names the fix.
//
// Exit codes follow Python's Process.exitcode: the code (>= 0) for a normal exit, -N for a
// process killed by signal N, and 255 when the status cannot be known.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace concur::platform {

// A waitpid() status as an exit code (see above).
int exit_code_from_status(int wait_status) noexcept;

// Reaps the child `pid` if it has ended and returns its exit code; nullopt while it runs or when
// it is not (or no longer) ours to reap.
std::optional<int> try_reap(pid_t pid) noexcept;

// Blocks until the child `pid` ends, reaps it and returns its exit code (255 if it cannot be
// waited for: not our child, or already reaped by someone else).
int reap(pid_t pid) noexcept;

// Whether a process with this pid exists (ours to signal or not). A reused pid looks alive.
bool process_exists(pid_t pid) noexcept;

// Sends `sig`; a process that has already ended is not an error.
void send_signal(pid_t pid, int sig) noexcept;

// A close-on-exec descriptor that becomes readable when `pid` ends: poll it with the program's
// other descriptors. -1 when the kernel has none (Linux before 5.3: a pidfd); callers then poll.
int open_exit_handle(pid_t pid) noexcept;

// fork(): the child returns 0, the parent the child's pid, -1 (errno set) if none was created.
pid_t fork_process() noexcept;

// Starts a new run of this program's own executable (Linux: /proc/self/exe, so a binary
// replaced on disk since still runs the same code) with `argv` and `envp` (both ending in
// nullptr). Descriptors without close-on-exec are inherited. Returns 0 and sets `pid`, or an
// errno value.
int spawn_this_program(char* const argv[], char* const envp[], pid_t& pid) noexcept;

// The arguments this process was started with (Linux: /proc/self/cmdline); never empty.
std::vector<std::string> this_program_arguments();

// This process's threads that are still running (Linux: /proc/self/task, without threads in the
// middle of exiting, which hold no lock). 0 if it cannot be told.
std::size_t running_thread_count();

// The path of this program's executable (Linux: /proc/self/exe); empty if it cannot be told.
std::string this_program_path();

// How many processes the out-of-memory killer has ended in this process's memory cgroup (which
// its children share), counted since the cgroup was made; nullopt where that is not known (no
// cgroup memory controller; another OS). Linux: memory.events (v2) or memory.oom_control (v1).
std::optional<long> oom_kills_in_this_cgroup();

// Runs `before` in the forking thread just before every fork(), then `in_parent` or `in_child`
// just after it, in every fork of this process from now on (pthread_atfork).
void on_every_fork(void (*before)(), void (*in_parent)(), void (*in_child)()) noexcept;

}  // namespace concur::platform
