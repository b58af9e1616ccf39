// concur/base/source_location.hpp: concur::base::source_location, the place in the source a
// task was created or a callback scheduled (what debug mode and the task reports print).
//
// It is std::source_location where the standard library provides it. Clang 14 with libstdc++ 12
// does not (libstdc++'s needs __builtin_source_location, which Clang has from version 15); there
// it is a class with the same members, filled from the __builtin_FILE / __builtin_LINE /
// __builtin_FUNCTION that both compilers have, so that every compiler concur supports builds the
// asyncio layer (and the Clang thread-safety check covers it).
#pragma once

#include <cstdint>
#include <source_location>

namespace concur::base {

#if defined(__cpp_lib_source_location)
using source_location = std::source_location;
#else
class source_location {
 public:
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           const char* function = __builtin_FUNCTION(),
                                           std::uint_least32_t line = __builtin_LINE()) noexcept {
    source_location where;
    where.file_ = file;
    where.function_ = function;
    where.line_ = line;
    return where;
  }
  constexpr source_location() noexcept = default;
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return 0; }  // not known here
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
};
#endif

}  // namespace concur::base
