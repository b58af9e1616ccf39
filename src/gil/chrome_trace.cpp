// InterpreterLock::chrome_trace_json(): the recorded timeline in the Chrome trace event format,
// which ui.perfetto.dev and chrome://tracing open: one track per thread, a "holds the lock" slice
// for each hold and a "waits" slice for each wait.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "concur/gil.hpp"

namespace concur {
namespace {

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string InterpreterLock::chrome_trace_json() const {
  const GilStats s = stats();
  const std::vector<GilSpan> spans = timeline();
  const std::int64_t origin = spans.empty() ? 0 : spans.front().start_ns;
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  bool first = true;
  auto add = [&](const std::string& event) {
    if (!first) out += ",\n";
    out += event;
    first = false;
  };
  add(R"({"name":"process_name","ph":"M","pid":1,"args":{"name":"InterpreterLock"}})");
  for (const GilThreadStats& t : s.threads) {
    add("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" + std::to_string(t.thread) +
        ",\"args\":{\"name\":" + json_string(t.name) + "}}");
  }
  char buf[256];
  for (const GilSpan& span : spans) {
    std::snprintf(buf, sizeof buf,
                  "{\"name\":\"%s\",\"cat\":\"gil\",\"ph\":\"X\",\"pid\":1,\"tid\":%" PRIu64
                  ",\"ts\":%.3f,\"dur\":%.3f}",
                  span.kind == GilSpan::holding ? "holds the lock" : "waits", span.thread,
                  static_cast<double>(span.start_ns - origin) / 1e3,
                  static_cast<double>(span.end_ns - span.start_ns) / 1e3);
    add(buf);
  }
  out += "\n]}\n";
  return out;
}

}  // namespace concur
