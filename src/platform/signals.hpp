// Internal: the signal handling concur needs, in one place.
//
// Linux/POSIX (signals_linux.cpp); a port without signals (Windows) gives SIGPIPE and SIGCHLD
// nothing to do and has no forkserver. Thread safety: the forkserver's functions are for that
// single-threaded process only.
#pragma once

#include <sys/types.h>

#include <functional>

namespace concur::platform {

// A write to a closed socket raises SIGPIPE, which kills the program by default; asyncio
// programs expect EPIPE instead, as Python arranges at startup. Ignores SIGPIPE unless the
// program installed a handler or ignored it itself (its choice stands).
void ignore_sigpipe_unless_handled() noexcept;

// The calling thread's SIGINT (Ctrl-C) blocked, or unblocked. Blocked rather than ignored: a
// forked child inherits the mask, so a SIGINT sent to it before it unblocks waits instead of
// being lost.
void block_interrupts() noexcept;
void unblock_interrupts() noexcept;

// For the forkserver, a single-threaded process that forks children on request: a descriptor
// that becomes readable whenever a child ends (SIGCHLD, through a pipe). -1 if it could not be
// set up. Once per process.
int watch_child_exits() noexcept;

// Empties that descriptor and reaps every ended child, calling on_exit(pid, wait_status) for
// each (the status as waitpid gives it; see exit_code_from_status).
void reap_ended_children(const std::function<void(pid_t, int)>& on_exit);

// In a child just forked by the forkserver: SIGCHLD and SIGINT back to their defaults, SIGINT
// unblocked, and the exit watch's descriptors closed.
void reset_signals_in_forked_child() noexcept;

}  // namespace concur::platform
