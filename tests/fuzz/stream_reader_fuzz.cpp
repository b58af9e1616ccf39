// Fuzz target: StreamReader's read / readexactly / readuntil / readline over a real TCP connection
// on 127.0.0.1, fed the bytes in random chunkings with random limits and a random sequence of
// reads. Besides "no crash, no read past a buffer, no hang" (libFuzzer's -timeout), it checks the
// one property every read kind promises: the bytes handed out, in order -- values, and the
// partial() of an IncompleteReadError -- are exactly the bytes sent, nothing lost, duplicated or
// reordered; a LimitOverrunError of readuntil leaves the data buffered (as Python). Only
// readline's overrun discards the overlong line (Python's rule), so the comparison ends there.
//
// Input: [limit][number of reads][reads...][chunking seed][payload...]
//   a read byte: low 3 bits choose the kind, the rest its size or separator.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "concur/asyncio.hpp"
#include "concur/errors.hpp"

namespace asyncio = concur::asyncio;
using asyncio::Task;

namespace {

struct Read {
  enum Kind : std::uint8_t { kRead, kExactly, kUntil, kLine };
  Kind kind;
  std::size_t n;    // read / readexactly
  std::string sep;  // readuntil
};

struct Script {
  std::size_t limit = 1;
  std::vector<Read> reads;
  std::vector<std::string> chunks;  // the payload as the sender writes it
  std::string payload;
};

Script parse(std::string_view in) {
  Script s;
  auto take = [&]() -> std::uint8_t {
    if (in.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    return b;
  };
  // Small limits reach the overrun and back-pressure paths with small inputs.
  s.limit = 1 + take() % 96;
  static const char* const kSeparators[] = {"\n", "\r\n", "ab", "xyz", "\n\n"};
  const std::size_t reads = take() % 12;
  for (std::size_t i = 0; i < reads; ++i) {
    const std::uint8_t b = take();
    const std::size_t arg = b >> 3;
    switch (b & 7) {
      case 0:
      case 1:
        s.reads.push_back({Read::kRead, arg + 1, {}});
        break;
      case 2:
      case 3:
        s.reads.push_back({Read::kExactly, arg * 7, {}});  // up to 217: past 2 x small limits
        break;
      case 4:
      case 5:
        s.reads.push_back({Read::kUntil, 0, kSeparators[arg % 5]});
        break;
      default:
        s.reads.push_back({Read::kLine, 0, {}});
    }
  }
  const std::uint8_t seed = take();
  s.payload = std::string(in);
  std::size_t step = 1 + seed % 29;
  for (std::size_t at = 0; at < s.payload.size();) {
    const std::size_t len = std::min(step, s.payload.size() - at);
    s.chunks.emplace_back(s.payload.substr(at, len));
    at += len;
    step = 1 + (step * 7 + seed) % 41;
  }
  return s;
}

struct Outcome {
  std::string received;    // every byte the reads handed out, in order
  bool discarded = false;  // readline dropped an overlong line
  bool finished = false;
};

Task<void> run_reads(const Script& script, asyncio::StreamReader reader, Outcome& out) {
  for (const Read& r : script.reads) {
    try {
      switch (r.kind) {
        case Read::kRead:
          out.received += co_await reader.read(static_cast<long>(r.n));
          break;
        case Read::kExactly:
          out.received += co_await reader.readexactly(r.n);
          break;
        case Read::kUntil: {
          std::string got = co_await reader.readuntil(r.sep);
          if (got.size() < r.sep.size() ||
              got.compare(got.size() - r.sep.size(), r.sep.size(), r.sep) != 0) {
            std::fprintf(stderr, "readuntil returned data not ending with its separator\n");
            std::abort();
          }
          out.received += got;
          break;
        }
        case Read::kLine:
          out.received += co_await reader.readline();
          break;
      }
    } catch (const concur::IncompleteReadError& e) {
      out.received += e.partial();
    } catch (const concur::LimitOverrunError&) {
      if (r.kind == Read::kLine) out.discarded = true;
    }
  }
  out.received += co_await reader.read();  // the rest, to EOF
  if (!reader.at_eof()) {
    std::fprintf(stderr, "read() to EOF returned but at_eof() is false\n");
    std::abort();
  }
  out.finished = true;
}

Task<void> session(const Script& script, Outcome& out) {
  asyncio::Event done;
  asyncio::ServerOptions options;
  options.limit = script.limit;
  asyncio::ClientHandler handler = [&](asyncio::StreamReader reader,
                                       asyncio::StreamWriter writer) -> Task<void> {
    co_await run_reads(script, std::move(reader), out);
    writer.close();
    done.set();
  };
  asyncio::Server server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  for (const std::string& chunk : script.chunks) {
    writer.write(chunk);
    co_await writer.drain();
    co_await asyncio::sleep(std::chrono::nanoseconds(0));  // let the server read this chunk alone
  }
  writer.write_eof();
  co_await done.wait();
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;  // the reads' paths are all reached by small inputs
  const Script script = parse({reinterpret_cast<const char*>(data), size});
  Outcome out;
  asyncio::run(session(script, out), {.handle_sigint = false});
  if (!out.finished) {
    std::fprintf(stderr, "the reads did not finish\n");
    std::abort();
  }
  if (!out.discarded && out.received != script.payload) {
    std::fprintf(stderr, "bytes handed out (%zu) differ from the bytes sent (%zu)\n",
                 out.received.size(), script.payload.size());
    std::abort();
  }
  if (out.discarded && out.received.size() > script.payload.size()) {
    std::fprintf(stderr, "more bytes handed out than sent\n");
    std::abort();
  }
  return 0;
}
