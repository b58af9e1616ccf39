/* bench/peers/libuv_echo: the floor of echo_race, a TCP echo server in plain libuv C.
 *
 * Every read lands in one static 64 KiB buffer (the loop is single-threaded and each read is
 * written back before the next one starts), uv_try_write sends it at once, and only what the
 * socket did not take is copied into a uv_write request. So a connection costs a uv_tcp_t and
 * nothing else. There is no back-pressure: a client that sends without reading makes the write
 * queue grow; echo_client never has more than one message in flight per connection.
 *
 *   libuv_echo --port 0      prints "PORT <n>", echoes on 127.0.0.1:<n> until SIGTERM or SIGINT
 *
 * It raises its descriptor limits (soft and hard) to 131,072 where it may (raise_fd_limit).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

static char read_buffer[64 * 1024];
static uv_tcp_t server;
static uv_signal_t sigint_watcher;
static uv_signal_t sigterm_watcher;

/* One allocation holds the request and the bytes it still has to send. */
struct pending_write {
  uv_write_t req;
  char data[];
};

static void free_handle(uv_handle_t* handle) {
  free(handle);
}

static void close_connection(uv_stream_t* stream) {
  if (!uv_is_closing((uv_handle_t*)stream)) uv_close((uv_handle_t*)stream, free_handle);
}

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void on_written(uv_write_t* req, int status) {
  if (status < 0 && status != UV_ECANCELED) close_connection(req->handle);
  free(req);
}

static void echo(uv_stream_t* stream, char* data, size_t len) {
  uv_buf_t buf = uv_buf_init(data, (unsigned)len);
  int sent = uv_try_write(stream, &buf, 1);
  if (sent == UV_EAGAIN) sent = 0;
  if (sent < 0) {
    close_connection(stream);
    return;
  }
  if ((size_t)sent == len) return;
  /* libuv keeps writes in order: while this one is queued, uv_try_write returns UV_EAGAIN. */
  size_t rest = len - (size_t)sent;
  struct pending_write* pending = malloc(sizeof *pending + rest);
  if (pending == NULL) {
    close_connection(stream);
    return;
  }
  memcpy(pending->data, data + sent, rest);
  buf = uv_buf_init(pending->data, (unsigned)rest);
  if (uv_write(&pending->req, stream, &buf, 1, on_written) != 0) {
    free(pending);
    close_connection(stream);
  }
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    echo(stream, buf->base, (size_t)nread);
  } else if (nread < 0) {
    close_connection(stream); /* UV_EOF or an error */
  }
}

static void on_connection(uv_stream_t* listener, int status) {
  if (status < 0) {
    fprintf(stderr, "libuv_echo: accept: %s\n", uv_strerror(status));
    return;
  }
  uv_tcp_t* client = malloc(sizeof *client);
  if (client == NULL) return;
  uv_tcp_init(listener->loop, client);
  if (uv_accept(listener, (uv_stream_t*)client) != 0) {
    uv_close((uv_handle_t*)client, free_handle);
    return;
  }
  /* As asyncio and uvloop do by default: an echo must not wait for Nagle's algorithm. */
  uv_tcp_nodelay(client, 1);
  uv_read_start((uv_stream_t*)client, on_alloc, on_read);
}

static void close_any(uv_handle_t* handle, void* arg) {
  (void)arg;
  if (uv_is_closing(handle)) return;
  int is_static = handle == (uv_handle_t*)&server || handle == (uv_handle_t*)&sigint_watcher ||
                  handle == (uv_handle_t*)&sigterm_watcher;
  uv_close(handle, is_static ? NULL : free_handle);
}

/* Closing every handle lets uv_run return, so the process exits with code 0. */
static void on_signal(uv_signal_t* watcher, int signum) {
  (void)signum;
  uv_walk(watcher->loop, close_any, NULL);
}

static int parse_port(int argc, char** argv) {
  int port = -1;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char* end = NULL;
      long value = strtol(argv[++i], &end, 10);
      if (*end == '\0' && value >= 0 && value <= 65535) port = (int)value;
    } else {
      port = -1;
      break;
    }
  }
  if (port < 0) fprintf(stderr, "usage: libuv_echo --port N   (0: any free port)\n");
  return port;
}

/* A connection is a descriptor, and echo_race goes up to 50,000 of them: the soft and the hard
 * limit are raised to 131,072 (2^17, or fs.nr_open if lower), or to the hard limit if it is
 * higher. Raising the hard limit needs root (CAP_SYS_RESOURCE); without it the server takes the
 * hard limit and says how to raise it (echo_race checks each load against its own limit first). */
static void raise_fd_limit(void) {
  rlim_t wanted = 131072;
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  FILE* f = fopen("/proc/sys/fs/nr_open", "r");
  if (f != NULL) {
    unsigned long nr_open = 0;
    if (fscanf(f, "%lu", &nr_open) == 1 && nr_open < wanted) wanted = nr_open;
    fclose(f);
  }
  struct rlimit want = lim;
  if (want.rlim_max != RLIM_INFINITY && want.rlim_max < wanted) want.rlim_max = wanted;
  want.rlim_cur = want.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &want) == 0) return;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  fprintf(stderr,
          "libuv_echo: at most %lu descriptors (the hard limit, which only root may raise: "
          "ulimit -Hn %lu)\n",
          (unsigned long)lim.rlim_max, (unsigned long)wanted);
}

static int listen_on(uv_loop_t* loop, int port) {
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  int rc = uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t*)&server, SOMAXCONN, on_connection);
  if (rc != 0) {
    fprintf(stderr, "libuv_echo: cannot listen on 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
    return -1;
  }
  struct sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&server, (struct sockaddr*)&bound, &len);
  printf("PORT %d\n", ntohs(bound.sin_port));
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  int port = parse_port(argc, argv);
  if (port < 0) return 2;
  signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error code, not a death */
  raise_fd_limit();
  uv_loop_t* loop = uv_default_loop();
  if (listen_on(loop, port) != 0) return 1;
  uv_signal_init(loop, &sigint_watcher);
  uv_signal_start(&sigint_watcher, on_signal, SIGINT);
  uv_signal_init(loop, &sigterm_watcher);
  uv_signal_start(&sigterm_watcher, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
