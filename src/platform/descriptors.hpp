// Internal: pairs of connected descriptors, close-on-exec from birth.
//
// Born close-on-exec (not set afterwards) so that a child spawned by another thread in between
// never inherits them. Linux: socketpair/pipe2 with the CLOEXEC flags; a port without those
// flags (macOS) sets FD_CLOEXEC under the spawn lock instead.
#pragma once

namespace concur::platform {

// A connected, bidirectional byte stream (AF_UNIX, SOCK_STREAM; it can carry descriptors).
// Returns false, errno set, if none could be made.
[[nodiscard]] bool stream_socket_pair(int fds[2]) noexcept;

// A one-way pipe: fds[0] reads, fds[1] writes. Returns false, errno set, if none could be made.
[[nodiscard]] bool pipe_pair(int fds[2], bool nonblocking = false) noexcept;

}  // namespace concur::platform
