// Fuzz target: what a child process does with the call it is sent (a spawned Process's target,
// src/multiprocessing/launcher.cpp's run_call): decode the Call, look its name up in this
// program's registry, check the signature, decode the arguments, run it. Whatever the bytes --
// an unknown name, a known name with another signature, truncated or hostile arguments -- only a
// registered function ever runs, and only with arguments that decoded as its parameter types.
// (run_call reports each refusal on stderr, as a child does: tests/fuzz/run.sh closes it with
// -close_fd_mask=2; libFuzzer's own reports still print.)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "concur/errors.hpp"
#include "concur/multiprocessing/registry.hpp"
#include "multiprocessing/launcher.hpp"

namespace mp = concur::multiprocessing;

#include "fuzz_functions.hpp"  // the functions this program registers

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  mp::Call call;
  try {
    call = mp::deserialize<mp::Call>(bytes);
  } catch (const concur::ProtocolError&) {
    return 0;
  }
  (void)mp::detail::run_call("fuzz", std::move(call));
  return 0;
}
