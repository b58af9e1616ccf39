// support/markup.hpp: text made safe inside SVG or HTML, shared by the lab's pictures and report
// and the benchmarks' charts.
#pragma once

#include <string>
#include <string_view>

namespace concur::support {

// `text` with <, >, & and " replaced by their entities: safe in element text and in
// double-quoted attribute values.
inline std::string escape_markup(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace concur::support
