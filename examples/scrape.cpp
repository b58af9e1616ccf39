// examples/scrape: the tutorial's scraper in C++. Ten "URLs" whose fetch only waits (as a network
// request mostly does), fetched one after another, then by a pool of ten threads, then by ten
// coroutines on one thread (asyncio), with the results printed in input order and the wall times.
//
//   scrape [--sleep SECONDS]      (default 1, as in the tutorial)
#include <chrono>
#include <concur/asyncio.hpp>
#include <concur/thread_pool.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

namespace {

std::chrono::duration<double> g_latency{1.0};

// Stands in for a download: the thread waits, using no CPU, as it would on a socket.
std::string scrape(int url_id) {
  std::this_thread::sleep_for(g_latency);
  return "Data " + std::to_string(url_id) + " Downloaded";
}

namespace asyncio = concur::asyncio;

// The same download as a coroutine: it waits without holding the thread.
asyncio::Task<std::string> scrape_async(int url_id) {
  co_await asyncio::sleep(std::chrono::duration_cast<std::chrono::nanoseconds>(g_latency));
  co_return "Data " + std::to_string(url_id) + " Downloaded";
}

// gather() returns the results in argument order, as asyncio.gather does.
asyncio::Task<std::vector<std::string>> scrape_all() {
  std::vector<asyncio::Task<std::string>> fetches;
  for (int id = 0; id < 10; ++id) fetches.push_back(scrape_async(id));
  co_return co_await asyncio::gather(std::move(fetches));
}

void print(const char* how, const std::vector<std::string>& results, double seconds) {
  std::printf("%s: %.2f s\n", how, seconds);
  for (const std::string& r : results) std::printf("  %s\n", r.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--sleep") == 0 && i + 1 < argc) {
      g_latency = std::chrono::duration<double>(std::atof(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--sleep SECONDS]\n", argv[0]);
      return 2;
    }
  }
  const auto urls = std::views::iota(0, 10);
  using Clock = std::chrono::steady_clock;

  // One after another: ten waits in a row.
  auto t0 = Clock::now();
  std::vector<std::string> sequential;
  for (int id : urls) sequential.push_back(scrape(id));
  print("sequential", sequential, std::chrono::duration<double>(Clock::now() - t0).count());

  // Ten threads: the waits overlap. map() returns the results in input order.
  t0 = Clock::now();
  std::vector<std::string> threaded;
  {
    concur::ThreadPoolExecutor executor(10);
    for (std::string& page : executor.map(scrape, urls)) threaded.push_back(std::move(page));
  }
  print("10 threads", threaded, std::chrono::duration<double>(Clock::now() - t0).count());

  // Ten coroutines on this one thread: the waits overlap too.
  t0 = Clock::now();
  std::vector<std::string> coroutines = asyncio::run(scrape_all());
  print("10 coroutines, 1 thread", coroutines,
        std::chrono::duration<double>(Clock::now() - t0).count());
  return sequential == threaded && sequential == coroutines ? 0 : 1;
}
