// Fuzz target: what a pool's parent does with a worker's answer (the process pool's on_result,
// the MPI pool's): decode the ResultMessage, check it against the task it answers
// (check_answer: a known status, one result per call), then decode each result as the future's
// type, as ProcessPoolExecutor's complete_one / complete_chunk do. Whatever the bytes, the
// outcome is values or a ProtocolError -- never a crash, a read past the buffer, an allocation the
// bytes ask for, or a kOk answer whose result count differs from the calls sent (a map chunk that
// comes back short would silently lose values). Results named by shared-memory spans are looked
// up in a ring as the process pool does (resolve_shared): a span outside it, for an entry that does
// not exist or is not empty, or out of order, is a ProtocolError too, never a read outside the
// ring.
//
// Input: [calls in the task][type of the results][ResultMessage bytes...]
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/serialization.hpp"
#include "multiprocessing/shared_ring.hpp"
#include "multiprocessing/task_message.hpp"

namespace mp = concur::multiprocessing;
namespace mpd = concur::multiprocessing::detail;

namespace {

// A worker's ring of results as the pool maps it: 64 KiB of encoded values and garbage.
const mpd::SharedRing& ring() {
  static const auto r = [] {
    auto made = mpd::SharedRing::create(64 * 1024);
    const auto p = made->allocate(made->capacity());
    for (std::uint64_t i = 0; i < made->capacity(); ++i) {
      made->data(*p)[i] = static_cast<char>(i % 7 == 0 ? 0 : i * 31);
    }
    return made;
  }();
  return *r;
}

template <class T>
void decode_all(const std::vector<std::string_view>& results) {
  for (const std::string_view r : results) {
    try {
      (void)mp::deserialize<T>(r);
    } catch (const concur::ProtocolError&) {
      // The future fails with it; the next result is still decoded (a chunk's futures are one).
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t calls = 1 + data[0] % 8;
  const int type = data[1] % 5;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  mpd::ResultMessage answer;
  std::vector<std::string_view> results;
  try {
    answer = mp::deserialize<mpd::ResultMessage>(bytes);
    mpd::check_answer(answer, calls);
    results = mpd::resolve_shared(answer.results, answer.shared, &ring());
  } catch (const concur::ProtocolError&) {
    return 0;  // the pool breaks with "a worker sent a corrupt message"
  }
  if (answer.status == mpd::ResultMessage::kOk && answer.results.size() != calls) {
    std::fprintf(stderr, "check_answer let through %zu results for %zu calls\n",
                 answer.results.size(), calls);
    std::abort();
  }
  if (answer.status != mpd::ResultMessage::kOk && answer.status != mpd::ResultMessage::kRaised) {
    std::fprintf(stderr, "check_answer let through status %d\n", answer.status);
    std::abort();
  }
  switch (type) {
    case 0:
      decode_all<std::int64_t>(results);
      break;
    case 1:
      decode_all<std::string>(results);
      break;
    case 2:
      decode_all<std::vector<double>>(results);
      break;
    case 3:
      decode_all<std::map<std::string, std::optional<std::int32_t>>>(results);
      break;
    default:
      decode_all<std::pair<std::vector<std::string>, bool>>(results);
  }
  return 0;
}
