// concur/asyncio/streams.hpp: TCP streams, Python's asyncio.open_connection / start_server with
// StreamReader and StreamWriter, on libuv.
//
//   auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
//   writer.write("ping\n");  co_await writer.drain();
//   std::string line = co_await reader.readline();
//   writer.close();  co_await writer.wait_closed();
//
//   Server server = co_await asyncio::start_server(handle_client, "127.0.0.1", 0);
//   // handle_client(StreamReader, StreamWriter) -> Task<void> runs as a task per connection
//   co_await server.serve_forever();
//
// Reading: the connection reads continuously into the reader's buffer (from one shared buffer per
// thread, copied out at once), and stops reading while more than 2 x limit bytes wait unread
// (back-pressure onto the peer through TCP), resuming below limit, or whenever a read waits for
// more than is buffered (read() to EOF, readexactly(n) beyond 2 x limit). limit defaults to 64 KiB.
//   read(n)          up to n bytes as soon as any are there; read() (n = -1) everything up to EOF;
//                    "" at EOF.
//   readexactly(n)   n bytes, or IncompleteReadError (partial(): what came) at EOF.
//   readuntil(sep)   up to and including sep; IncompleteReadError at EOF; LimitOverrunError when
//                    sep does not start within the first limit bytes (as Python: consumed() is
//                    where it starts, or len + 1 - len(sep) when it is not there; the data stays
//                    buffered).
//   readline()       readuntil("\n"), but the partial line at EOF is returned, and on
//                    LimitOverrunError the overlong line is discarded first (as Python).
//   read_into(buf)   up to buf.size() bytes into the caller's buffer as soon as any are there;
//                    the result is how many (0 at EOF or for an empty buf) -- Python's readinto
//                    (loop.sock_recv_into, BufferedProtocol). The zero-copy read: while it waits
//                    with nothing buffered, the socket is read straight into buf (no shared
//                    buffer, no std::string, no allocation); bytes already buffered are copied.
//                    buf must stay valid until the read completes (await it at once); if the read
//                    is cancelled, the bytes it had received stay buffered for the next read.
// One read at a time: a second concurrent read on the same reader is a RuntimeError. A connection
// error is thrown by the next read (ConnectionResetError...), after the bytes that came before it.
//
// Writing: write() never waits: it sends at once what the socket takes (uv_try_write) and queues
// the rest (coalescing queued writes into one). drain() waits while more than 64 KiB are queued,
// until 16 KiB or less are; it throws the connection's error if it failed. close() sends what is
// queued, then closes; wait_closed() waits for that. write_eof() half-closes after the queue.
// abort() closes at once with a reset (RST), dropping the queue.
//
// TLS (concur/asyncio/ssl.hpp): open_connection(host, port, options) with options.ssl a client
// context, and start_server(handler, host, port, options) with options.ssl a server context,
// speak TLS over the connection, with OpenSSL. open_connection returns once the handshake is done
// and the server's certificate verified (else it throws SSLCertVerificationError / SSLError,
// errors.hpp); a server runs its handler only for a client whose handshake succeeded (one that
// fails is closed and the handler never sees it). Reads and writes are plaintext, as for TCP, with
// these differences (as Python's asyncio over SSL):
//   close()      sends close_notify after what is queued, then closes; it does not wait for the
//                peer's (Python waits up to ssl_shutdown_timeout).
//   abort()      closes at once, no close_notify.
//   write_eof()  NotImplementedError: TLS has no half-close (can_write_eof() is false).
//   EOF          the peer's close_notify, or its socket closing without one (an abrupt close,
//                Python's asyncio: EOF too, no error), is EOF: read() returns "". Python then
//                closes the connection itself; concur leaves that to close(), and writes still go
//                out until then (TLS 1.3 allows it).
//   read_into()  reads the socket into concur's buffer and decrypts into the caller's (no
//                zero-copy read, the bytes on the wire are not the caller's).
// StreamWriter::start_tls() upgrades a plain connection (STARTTLS); tls_info() tells what the
// handshake settled.
// A TLS record that fails its check (a forged or corrupt record) fails the connection with
// SSLError. Renegotiation is refused. A handshake not done within ssl_handshake_timeout (60 s by
// default, as Python) aborts the connection: open_connection throws ConnectionAbortedError, a
// server closes the client unseen.
//
// Handles: StreamReader and StreamWriter are reference-counted handles to one connection; the
// connection closes when the last handle of both kinds is gone. Every awaitable here is
// cancellable (CancelledError) and leaves the connection usable.
// Thread safety: none; the loop's thread.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/detail/wait.hpp"
#include "concur/asyncio/ssl.hpp"
#include "concur/asyncio/task.hpp"

namespace concur::asyncio {

namespace detail {
struct StreamState;
struct ServerState;
struct ReadOpAccess;
void release_reader(StreamState* s) noexcept;
void release_writer(StreamState* s) noexcept;
WaitList& drain_waiters(StreamState* s) noexcept;
WaitList& close_waiters(StreamState* s) noexcept;
}  // namespace detail

// A socket address: numeric host ("127.0.0.1", "::1") and port.
struct SocketAddress {
  std::string host;
  std::uint16_t port = 0;
  int family = 0;  // AF_INET or AF_INET6
  std::string to_string() const;
};

inline constexpr std::size_t kDefaultStreamLimit = 64 * 1024;

class StreamReader {
 public:
  StreamReader() = default;
  StreamReader(const StreamReader& other) noexcept : s_(other.s_) { add(); }
  StreamReader(StreamReader&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
  StreamReader& operator=(StreamReader other) noexcept {
    std::swap(s_, other.s_);
    return *this;
  }
  ~StreamReader() {
    if (s_) detail::release_reader(s_);
  }

  // The awaitable of every read (see the header comment for each kind). Only co_await it.
  class [[nodiscard]] ReadOp : public detail::Suspension {
   public:
    ReadOp(const ReadOp&) = delete;
    ReadOp& operator=(const ReadOp&) = delete;
    ~ReadOp();
    bool await_ready();
    bool await_suspend(std::coroutine_handle<> h);
    std::string await_resume();

   private:
    // The state lives in the awaitable itself, so a read allocates nothing; it is private,
    // reached by the reader and by the connection's callbacks (detail::ReadOpAccess) only.
    friend class StreamReader;
    friend struct detail::ReadOpAccess;
    enum Kind : std::uint8_t { kRead, kReadAll, kExactly, kUntil, kLine, kInto };
    ReadOp(detail::StreamState* state, Kind k, std::size_t count, std::string separator,
           char* into = nullptr);
    // Whether the buffer now satisfies this read; a readuntil remembers how far it searched.
    bool satisfied();
    // read_into's result: bytes placed in `into`.
    std::size_t resume_into();

    detail::StreamState* s;
    Kind kind;
    std::size_t n;
    std::string sep;
    std::string result;       // filled straight from the socket when the buffer was empty
    std::size_t scanned = 0;  // how far readuntil has searched for sep
    char* into = nullptr;     // read_into's buffer (n bytes); `scanned` then counts bytes placed
    bool filled = false;
  };

  // read_into's awaitable: a read whose result is a count of bytes. Only co_await it.
  class [[nodiscard]] ReadIntoOp {
   public:
    bool await_ready() { return op_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) { return op_.await_suspend(h); }
    std::size_t await_resume() { return op_.resume_into(); }

   private:
    friend class StreamReader;
    ReadIntoOp(detail::StreamState* state, char* into, std::size_t n)
        : op_(state, ReadOp::kInto, n, {}, into) {}
    ReadOp op_;
  };

  ReadOp read(long n = -1);
  ReadOp readexactly(std::size_t n);
  ReadOp readuntil(std::string separator = "\n");
  ReadOp readline();
  ReadIntoOp read_into(std::span<char> buffer);
  // True once EOF was received and the buffer is empty.
  bool at_eof() const;
  // Bytes received and not read yet.
  std::size_t buffered() const;
  std::size_t limit() const;
  bool valid() const { return s_ != nullptr; }

  // A new handle to a connection (library-internal: connections come from open_connection(),
  // start_server() and subprocesses).
  explicit StreamReader(detail::StreamState* s) noexcept : s_(s) { add(); }

 private:
  void add() noexcept;
  detail::StreamState* state(const char* who) const;
  detail::StreamState* s_ = nullptr;
};

// What a TLS handshake settled (StreamWriter::tls_info()).
struct TlsInfo {
  std::string version;       // "TLSv1.3": Python's SSLObject.version()
  std::string cipher;        // "TLS_AES_256_GCM_SHA384": SSLObject.cipher()[0]
  std::string peer_subject;  // the peer certificate's subject ("CN=localhost"); "" without one
};

// StreamWriter::start_tls()'s options (Python's keyword arguments).
struct StartTlsOptions {
  // A client's name for the server (SNI and the name check); required when the context checks
  // names (Python's ValueError otherwise).
  std::string server_hostname{};
  std::chrono::milliseconds ssl_handshake_timeout = std::chrono::seconds(60);
};

class StreamWriter {
 public:
  StreamWriter() = default;
  StreamWriter(const StreamWriter& other) noexcept : s_(other.s_) { add(); }
  StreamWriter(StreamWriter&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
  StreamWriter& operator=(StreamWriter other) noexcept {
    std::swap(s_, other.s_);
    return *this;
  }
  ~StreamWriter() {
    if (s_) detail::release_writer(s_);
  }

  // Sends or queues data (see the header comment). RuntimeError after close() or write_eof().
  // After the connection failed, data is dropped; drain() reports the failure.
  void write(std::string_view data);
  // The same, taking the string: what the socket does not take at once is queued without a copy.
  void write(std::string&& data);
  void write(const char* data) { write(std::string_view(data)); }
  void write(const std::string& data) { write(std::string_view(data)); }
  void writelines(const std::vector<std::string>& lines) {
    for (const std::string& l : lines) write(l);
  }
  struct [[nodiscard]] DrainOp : detail::ListWait {
    detail::StreamState* s;
    explicit DrainOp(detail::StreamState* state)
        : ListWait(detail::drain_waiters(state)), s(state) {}
    bool await_ready();
    void await_resume();
  };
  // Waits for the queue to go down (see the header comment).
  DrainOp drain();
  // Bytes queued and not yet taken by the socket.
  std::size_t write_buffer_size() const;
  // The high and low water marks of drain() (Python's set_write_buffer_limits).
  void set_write_buffer_limits(std::size_t high, std::size_t low);
  // False for TLS (write_eof() then throws NotImplementedError).
  bool can_write_eof() const;
  void write_eof();
  void close();
  // Closes at once: queued data is dropped and a TCP peer sees a reset.
  void abort();
  bool is_closing() const;
  struct [[nodiscard]] ClosedOp : detail::ListWait {
    detail::StreamState* s;
    explicit ClosedOp(detail::StreamState* state)
        : ListWait(detail::close_waiters(state)), s(state) {}
    bool await_ready();
    void await_resume();
  };
  // Waits until the connection is closed (after close(), abort() or the peer's reset).
  ClosedOp wait_closed();

  // Python's get_extra_info("peername") / ("sockname").
  SocketAddress peername() const;
  SocketAddress sockname() const;
  // The TLS session's version, cipher and peer's subject once its handshake is done (Python's
  // get_extra_info("ssl_object") / ("peercert")); std::nullopt for plain TCP or a pipe.
  std::optional<TlsInfo> tls_info() const;

  // Python's StreamWriter.start_tls() (3.11): upgrades this plain TCP connection to TLS in place,
  // for a STARTTLS exchange. A client context shakes hands as the client, a server context as
  // the server, whichever end accepted the connection. Returns once the handshake is done (its
  // failures as open_connection's; the connection is then closed). What was written before goes
  // out first, in plain; bytes read before stay in the reader's buffer as they came (as Python).
  // RuntimeError: already TLS, a pipe, closing, or a write before the handshake is done (await
  // start_tls() first). Build the options in a variable (GCC 12, see open_connection; for that
  // reason too the options are an overload, not a defaulted argument).
  Task<void> start_tls(SSLContext context);
  Task<void> start_tls(SSLContext context, StartTlsOptions options);
  bool valid() const { return s_ != nullptr; }

  // A new handle to a connection (library-internal, as StreamReader's).
  explicit StreamWriter(detail::StreamState* s) noexcept : s_(s) { add(); }

 private:
  void add() noexcept;
  detail::StreamState* state(const char* who) const;
  detail::StreamState* s_ = nullptr;
};

struct StreamPair {
  StreamReader reader;
  StreamWriter writer;
};

// Connects to host:port (a name is resolved through libuv's getaddrinfo; each address is tried in
// turn). Errors: ConnectionRefusedError, OSError (name not found, unreachable...);
// std::invalid_argument for limit 0 (Python's ValueError), before anything is resolved.
Task<StreamPair> open_connection(std::string host, std::uint16_t port,
                                 std::size_t limit = kDefaultStreamLimit);

// (The `{}` initializers let a designated initializer leave a member out without GCC's
// -Wmissing-field-initializers.)
struct ConnectionOptions {
  std::size_t limit = kDefaultStreamLimit;
  // TLS when set (ssl.hpp; a client context): returns once the handshake is done.
  SSLContext ssl{};
  // The name sent to the server (SNI) and checked against its certificate; "" means host (as
  // Python). An IP address is checked against the certificate's IP entries and not sent.
  std::string server_hostname{};
  // How long the TLS handshake may take (from the TCP connection); > 0.
  std::chrono::milliseconds ssl_handshake_timeout = std::chrono::seconds(60);
};
// The same with options. GCC 12 miscompiles a braced ConnectionOptions{...} written inside the
// co_await expression (it holds a std::string: see the README): build it in a variable first.
Task<StreamPair> open_connection(std::string host, std::uint16_t port, ConnectionOptions options);

using ClientHandler = std::function<Task<void>(StreamReader, StreamWriter)>;

struct ServerOptions {
  std::size_t limit = kDefaultStreamLimit;  // > 0: start_server() refuses 0 (std::invalid_argument)
  int backlog = 511;
  bool reuse_port = false;
  // TLS when set (ssl.hpp; a server context with its certificate loaded).
  SSLContext ssl{};
  // How long a client's TLS handshake may take (from its accept); > 0.
  std::chrono::milliseconds ssl_handshake_timeout = std::chrono::seconds(60);
};

// A listening server (Python's asyncio.Server). A reference-counted handle: the listening sockets
// close when close() is called or the last handle goes; connections already accepted go on.
class Server {
 public:
  Server() = default;
  Server(const Server&) noexcept;
  Server(Server&&) noexcept;
  Server& operator=(Server) noexcept;
  ~Server();

  // Stops listening (idempotent). Connections in progress are not closed (Python 3.12).
  void close();
  // Python 3.13's close_clients(): closes every connection this server accepted that is still
  // open, each as StreamWriter::close() (what is queued is sent first). Neither stops listening
  // (close() does) nor waits: wait_closed() returns once they are gone (and the server closed).
  void close_clients();
  // Python 3.13's abort_clients(): the same, but as StreamWriter::abort(): at once, queued data
  // dropped, a TCP peer sees a reset.
  void abort_clients();
  bool is_serving() const;
  // Waits until the server is closed and every connection it accepted is closed.
  Task<void> wait_closed();
  // Waits until close() (or a cancellation of the waiting task, which also closes the server).
  Task<void> serve_forever();
  // The addresses it listens on; port() of the first (the one chosen for port 0).
  std::vector<SocketAddress> sockets() const;
  std::uint16_t port() const;
  // Connections accepted and still open.
  std::size_t active_connections() const;

  explicit Server(detail::ServerState* s) noexcept : s_(s) {}

 private:
  detail::ServerState* s_ = nullptr;
};

// Listens on host:port ("" or "0.0.0.0"/"::" for every interface; port 0 picks a free one) and
// runs handler(reader, writer) as a task for each connection. OSError when the address cannot be
// bound (e.g. in use).
Task<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options = {});

// Resolves host:port through libuv (getaddrinfo on libuv's thread pool, not blocking the loop).
Task<std::vector<SocketAddress>> getaddrinfo(std::string host, std::uint16_t port,
                                             bool passive = false);

}  // namespace concur::asyncio
