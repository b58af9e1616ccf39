// Descriptor pairs on Linux.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "platform/descriptors.hpp"

namespace concur::platform {

bool stream_socket_pair(int fds[2]) noexcept {
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0;
}

bool pipe_pair(int fds[2], bool nonblocking) noexcept {
  return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)) == 0;
}

}  // namespace concur::platform
