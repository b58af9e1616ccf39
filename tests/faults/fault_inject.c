// fault_inject: an LD_PRELOAD library that makes one system call of one process fail, as SQLite's
// and libuv's fault-injection tests do, to check that concur turns every failure into a clear
// error and leaks nothing (tests/faults/fault_injection_test.cpp drives it).
//
//   CONCUR_FAULT=NAME:N:ACTION   the N-th call of NAME (fork, posix_spawn, socketpair, pipe2,
//                                write, send, sendmsg, read, recv, recvmsg, poll, shm_open,
//                                ftruncate, mmap, memfd_create, epoll_ctl, and libuv's uv_* calls
//                                that concur's asyncio makes and that can fail: see the end of
//                                this file) in this process does ACTION instead: an errno name
//                                (EMFILE, EAGAIN, ENOMEM, ENOSPC, EINTR, EPIPE), which a uv_*
//                                call returns as libuv does (UV_E* = -errno), or "short" (write,
//                                send, sendmsg, read, recv, recvmsg: move at most half the
//                                bytes). read and write fail only on sockets and pipes.
//   CONCUR_FAULT_FIRED=PATH      created when the fault fires, so the driver knows N was reached.
//
// Only the process that loaded the library first is affected: children it forks, and programs it
// starts (which load it again), see CONCUR_FAULT_PID and leave their calls alone.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#if CONCUR_FAULT_UV
#include <uv.h>
#endif

static char fault_name[32];
static long fault_at = 0;
static int fault_errno = 0;
static int fault_short = 0;
static pid_t owner = 0;
static atomic_long calls = 0;
static atomic_int fired = 0;

static int errno_named(const char* name) {
  static const struct {
    const char* name;
    int value;
  } known[] = {{"EMFILE", EMFILE},
               {"EAGAIN", EAGAIN},
               {"ENOMEM", ENOMEM},
               {"ENOSPC", ENOSPC},
               {"EINTR", EINTR},
               {"EPIPE", EPIPE},
               {"EIO", EIO},
               {"ENFILE", ENFILE},
               {"EINVAL", EINVAL},
               {"EADDRINUSE", EADDRINUSE},
               {"ECONNREFUSED", ECONNREFUSED},
               {"ENOTCONN", ENOTCONN}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i) {
    if (strcmp(known[i].name, name) == 0) return known[i].value;
  }
  return -1;
}

__attribute__((constructor)) static void fault_setup(void) {
  const char* owner_text = getenv("CONCUR_FAULT_PID");
  if (owner_text) return;  // a program started by the faulted one: leave it alone
  char pid_text[32];
  snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());
  setenv("CONCUR_FAULT_PID", pid_text, 1);
  const char* spec = getenv("CONCUR_FAULT");
  if (!spec) return;
  char action[32];
  if (sscanf(spec, "%31[^:]:%ld:%31s", fault_name, &fault_at, action) != 3 || fault_at < 1) {
    fprintf(stderr, "fault_inject: CONCUR_FAULT must be NAME:N:ACTION, not '%s'\n", spec);
    _exit(97);
  }
  if (strcmp(action, "short") == 0) {
    fault_short = 1;
  } else if ((fault_errno = errno_named(action)) < 0) {
    fprintf(stderr, "fault_inject: unknown action '%s'\n", action);
    _exit(97);
  }
  owner = getpid();
}

// True when this call of `name` is the one to fail.
static int should_fail(const char* name) {
  if (owner == 0 || getpid() != owner || strcmp(name, fault_name) != 0) return 0;
  if (atomic_fetch_add(&calls, 1) + 1 != fault_at) return 0;
  if (atomic_exchange(&fired, 1) == 0) {
    const char* path = getenv("CONCUR_FAULT_FIRED");
    if (path) {
      int saved = errno;
      int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
      if (fd >= 0) syscall(SYS_close, fd);
      errno = saved;
    }
  }
  return 1;
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))
#define FAIL_WITH(value) \
  do {                   \
    errno = fault_errno; \
    return value;        \
  } while (0)

static size_t half(size_t n) {
  return n > 1 ? n / 2 : n;
}

// read() and write() fail only on sockets and pipes, where a short count, EINTR or EPIPE really
// happens; on an eventfd (a wake-up counter) a short count is impossible (the kernel refuses it).
static int is_stream(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

pid_t fork(void) {
  if (should_fail("fork") && !fault_short) FAIL_WITH(-1);
  return REAL(fork)();
}

int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  if (should_fail("posix_spawn") && !fault_short) return fault_errno;
  return REAL(posix_spawn)(pid, path, actions, attr, argv, envp);
}

int socketpair(int domain, int type, int protocol, int sv[2]) {
  if (should_fail("socketpair") && !fault_short) FAIL_WITH(-1);
  return REAL(socketpair)(domain, type, protocol, sv);
}

int pipe2(int fds[2], int flags) {
  if (should_fail("pipe2") && !fault_short) FAIL_WITH(-1);
  return REAL(pipe2)(fds, flags);
}

ssize_t write(int fd, const void* buf, size_t n) {
  if (is_stream(fd) && should_fail("write")) {
    if (fault_short) return REAL(write)(fd, buf, half(n));
    FAIL_WITH(-1);
  }
  return REAL(write)(fd, buf, n);
}

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (should_fail("send")) {
    if (fault_short) return REAL(send)(fd, buf, half(n), flags);
    FAIL_WITH(-1);
  }
  return REAL(send)(fd, buf, n, flags);
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  if (should_fail("sendmsg")) {
    if (!fault_short) FAIL_WITH(-1);
    if (msg->msg_iovlen >= 1 && msg->msg_iov[0].iov_len > 1) {
      struct msghdr shorter = *msg;
      struct iovec first = msg->msg_iov[0];
      first.iov_len = half(first.iov_len);
      shorter.msg_iov = &first;
      shorter.msg_iovlen = 1;
      return REAL(sendmsg)(fd, &shorter, flags);
    }
  }
  return REAL(sendmsg)(fd, msg, flags);
}

ssize_t read(int fd, void* buf, size_t n) {
  if (is_stream(fd) && should_fail("read")) {
    if (fault_short) return REAL(read)(fd, buf, half(n));
    FAIL_WITH(-1);
  }
  return REAL(read)(fd, buf, n);
}

ssize_t recv(int fd, void* buf, size_t n, int flags) {
  if (should_fail("recv")) {
    if (fault_short) return REAL(recv)(fd, buf, half(n), flags);
    FAIL_WITH(-1);
  }
  return REAL(recv)(fd, buf, n, flags);
}

ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  if (should_fail("recvmsg")) {
    if (!fault_short) FAIL_WITH(-1);
    if (msg->msg_iovlen >= 1 && msg->msg_iov[0].iov_len > 1) {
      struct iovec* iov = msg->msg_iov;
      size_t saved_len = iov[0].iov_len, saved_count = msg->msg_iovlen;
      iov[0].iov_len = half(saved_len);
      msg->msg_iovlen = 1;
      ssize_t n = REAL(recvmsg)(fd, msg, flags);
      iov[0].iov_len = saved_len;
      msg->msg_iovlen = saved_count;
      return n;
    }
  }
  return REAL(recvmsg)(fd, msg, flags);
}

int poll(struct pollfd* fds, nfds_t n, int timeout) {
  if (should_fail("poll") && !fault_short) FAIL_WITH(-1);
  return REAL(poll)(fds, n, timeout);
}

int shm_open(const char* name, int flags, mode_t mode) {
  if (should_fail("shm_open") && !fault_short) FAIL_WITH(-1);
  return REAL(shm_open)(name, flags, mode);
}

int ftruncate(int fd, off_t length) {
  if (should_fail("ftruncate") && !fault_short) FAIL_WITH(-1);
  return REAL(ftruncate)(fd, length);
}

void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  if (should_fail("mmap") && !fault_short) FAIL_WITH(MAP_FAILED);
  return REAL(mmap)(addr, length, prot, flags, fd, offset);
}

int memfd_create(const char* name, unsigned int flags) {
  if (should_fail("memfd_create") && !fault_short) FAIL_WITH(-1);
  return REAL(memfd_create)(name, flags);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  if (should_fail("epoll_ctl") && !fault_short) FAIL_WITH(-1);
  return REAL(epoll_ctl)(epfd, op, fd, event);
}

#if CONCUR_FAULT_UV
// libuv: the calls concur's asyncio makes that can fail. Its calls into libuv go through the
// dynamic linker, so a preloaded definition takes them; libuv's own system calls are also faulted
// through the libc wrappers above (write, read, ...).
// Only concur's calls are failed, not libuv's calls to its own functions (uv_loop_init makes
// several): failing those tests libuv, whose answer to some is abort().
static int called_from_libuv(const void* return_address) {
  Dl_info info;
  return dladdr(return_address, &info) != 0 && info.dli_fname != NULL &&
         strstr(info.dli_fname, "libuv") != NULL;
}

#define UV_FAULT(name)                                                                         \
  do {                                                                                         \
    if (!called_from_libuv(__builtin_return_address(0)) && should_fail(#name) && !fault_short) \
      return -fault_errno;                                                                     \
  } while (0)

int uv_loop_init(uv_loop_t* loop) {
  UV_FAULT(uv_loop_init);
  return REAL(uv_loop_init)(loop);
}

int uv_async_init(uv_loop_t* loop, uv_async_t* handle, uv_async_cb cb) {
  UV_FAULT(uv_async_init);
  return REAL(uv_async_init)(loop, handle, cb);
}

int uv_tcp_init_ex(uv_loop_t* loop, uv_tcp_t* handle, unsigned int flags) {
  // Only where it can fail: with an address family it makes a socket. (uv_tcp_init calls it with
  // AF_UNSPEC, often as a tail call that the check for libuv's own calls cannot see.)
  if ((flags & 0xff) != AF_UNSPEC) UV_FAULT(uv_tcp_init_ex);
  return REAL(uv_tcp_init_ex)(loop, handle, flags);
}

int uv_tcp_bind(uv_tcp_t* handle, const struct sockaddr* addr, unsigned int flags) {
  UV_FAULT(uv_tcp_bind);
  return REAL(uv_tcp_bind)(handle, addr, flags);
}

int uv_listen(uv_stream_t* stream, int backlog, uv_connection_cb cb) {
  UV_FAULT(uv_listen);
  return REAL(uv_listen)(stream, backlog, cb);
}

int uv_accept(uv_stream_t* server, uv_stream_t* client) {
  // As libuv's own failure (uv__stream_open failing): the connection it had taken is closed;
  // failing before that would leave libuv holding it, which a real failure never does.
  if (!called_from_libuv(__builtin_return_address(0)) && should_fail("uv_accept") && !fault_short) {
    if (server->accepted_fd >= 0) close(server->accepted_fd);
    server->accepted_fd = -1;
    return -fault_errno;
  }
  return REAL(uv_accept)(server, client);
}

int uv_tcp_connect(uv_connect_t* req, uv_tcp_t* handle, const struct sockaddr* addr,
                   uv_connect_cb cb) {
  UV_FAULT(uv_tcp_connect);
  return REAL(uv_tcp_connect)(req, handle, addr, cb);
}

int uv_read_start(uv_stream_t* stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb) {
  UV_FAULT(uv_read_start);
  return REAL(uv_read_start)(stream, alloc_cb, read_cb);
}

int uv_write(uv_write_t* req, uv_stream_t* handle, const uv_buf_t bufs[], unsigned int nbufs,
             uv_write_cb cb) {
  UV_FAULT(uv_write);
  return REAL(uv_write)(req, handle, bufs, nbufs, cb);
}

int uv_try_write(uv_stream_t* handle, const uv_buf_t bufs[], unsigned int nbufs) {
  UV_FAULT(uv_try_write);
  return REAL(uv_try_write)(handle, bufs, nbufs);
}

int uv_shutdown(uv_shutdown_t* req, uv_stream_t* handle, uv_shutdown_cb cb) {
  UV_FAULT(uv_shutdown);
  return REAL(uv_shutdown)(req, handle, cb);
}

int uv_pipe(uv_file fds[2], int read_flags, int write_flags) {
  UV_FAULT(uv_pipe);
  return REAL(uv_pipe)(fds, read_flags, write_flags);
}

int uv_pipe_open(uv_pipe_t* handle, uv_file file) {
  UV_FAULT(uv_pipe_open);
  return REAL(uv_pipe_open)(handle, file);
}

int uv_spawn(uv_loop_t* loop, uv_process_t* handle, const uv_process_options_t* options) {
  // As libuv's own failure: it initialises the handle (which must then be closed) before it can
  // fail, so the real call is made, with a program that cannot run.
  if (!called_from_libuv(__builtin_return_address(0)) && should_fail("uv_spawn") && !fault_short) {
    uv_process_options_t doomed = *options;
    char* const argv[] = {(char*)"/nonexistent/concur-fault", NULL};
    doomed.file = argv[0];
    doomed.args = (char**)argv;
    int rc = REAL(uv_spawn)(loop, handle, &doomed);
    return rc < 0 ? -fault_errno : rc;
  }
  return REAL(uv_spawn)(loop, handle, options);
}
#endif  // CONCUR_FAULT_UV
