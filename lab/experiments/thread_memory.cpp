// thread-memory: how much memory does a thread take, and a coroutine task?
//
// Claim (in our words): threads are light: each costs only kilobytes of RAM.
//
// Workload: in a fresh child process each (a forked concur-lab, or a CPython), read VmRSS and
// VmSize from /proc/self/status, start many of one kind of unit, wait until every one is parked
// (blocked on a condition variable or an event, as an I/O thread waiting for the network), read
// them again, and divide the growth by the count:
//   - C++ std::thread (glibc's default stack), concur asyncio tasks awaiting an Event;
//   - CPython threading.Thread waiting on a threading.Event, CPython asyncio tasks awaiting an
//     asyncio.Event (lab/python/thread_memory.py).
// The kernel's own memory per thread (its task structure and kernel stack, about 10-20 KiB) is in
// no process's RSS and is not counted: said in a note.
//
// Verdict (thread_memory.hpp): on CPython's thread (the tutorial's subject), else on the C++
// thread as concur's stand-in; every row's resident and virtual figures are also placed on the
// same kilobytes/megabytes scale in the table.
#include "thread_memory.hpp"

#include <fmt/format.h>
#include <link.h>

#include <atomic>
#include <chrono>
#include <concur/asyncio.hpp>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "lab.hpp"
#include "procfs.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace thread_memory {

std::string scale_of(double kib) {
  if (kib < 1024) return "kilobytes";
  if (kib < 1024.0 * 1024) return "megabytes";
  return "gigabytes";
}

std::vector<Threshold> thresholds() {
  return {{"kilobytes_below_kib", kKilobytesBelowKiB,
           "\"Kilobytes of RAM\": a resident figure in kilobytes is below one mebibyte"},
          {"few_megabytes_kib", kFewMegabytesKiB,
           "up to a few mebibytes per thread it is about a megabyte (partly true); beyond, "
           "megabytes (refuted)"}};
}

Judgement judge(const Measurements& m) {
  const PerUnit& t = m.thread;
  const std::string who =
      m.from_cpython ? t.who : t.who + " (concur's stand-in: CPython not measured)";
  if (t.count <= 0 || t.rss_kib <= 0) {
    return {Verdict::kInconclusive,
            fmt::format("{}: no resident growth could be measured with {} of them, so nothing is "
                        "judged",
                        who, t.count)};
  }
  const std::string text = fmt::format(
      "Each {} kept {:.1f} KiB resident ({}), measured with {} parked at once; each also "
      "reserved {:.0f} KiB of address space ({}, virtual: not RAM until touched).",
      who, t.rss_kib, scale_of(t.rss_kib), t.count, t.vsize_kib, scale_of(t.vsize_kib));
  if (t.rss_kib < kKilobytesBelowKiB) return {Verdict::kConfirmed, text};
  if (t.rss_kib < kFewMegabytesKiB) {
    return {Verdict::kPartlyTrue, text + " That is about a megabyte, not kilobytes."};
  }
  return {Verdict::kRefuted, text + " That is megabytes of RAM per thread."};
}

}  // namespace thread_memory

namespace {

using thread_memory::PerUnit;

struct Snapshot {
  long rss_kib = 0;
  long vsize_kib = 0;
};
Snapshot snapshot() {
  return {procfs::status_field(0, "VmRSS"), procfs::status_field(0, "VmSize")};
}
std::string growth(const Snapshot& a, const Snapshot& b) {
  return fmt::format("{} {}", b.rss_kib - a.rss_kib, b.vsize_kib - a.vsize_kib);
}

// In a forked child: `count` std::threads parked on a condition variable.
std::string parked_threads(int count) {
  try {
    std::mutex mutex;
    std::condition_variable cv;
    bool go = false;
    std::atomic<int> parked{0};
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(count));
    const Snapshot before = snapshot();
    for (int k = 0; k < count; ++k) {
      threads.emplace_back([&] {
        std::unique_lock lock(mutex);
        parked.fetch_add(1);
        cv.wait(lock, [&] { return go; });
      });
    }
    while (parked.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const Snapshot after = snapshot();
    {
      std::lock_guard lock(mutex);
      go = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    return growth(before, after);
  } catch (const std::exception& e) {
    return std::string("error ") + e.what();
  }
}

asyncio::Task<void> parked_task(asyncio::Event* event) {
  co_await event->wait();
}

asyncio::Task<std::string> parked_tasks_main(int count) {
  asyncio::Event event;
  std::vector<asyncio::Task<void>> tasks;
  tasks.reserve(static_cast<std::size_t>(count));
  const Snapshot before = snapshot();
  for (int k = 0; k < count; ++k) tasks.push_back(asyncio::create_task(parked_task(&event)));
  co_await asyncio::sleep(std::chrono::nanoseconds(0));  // every task runs up to its wait
  const Snapshot after = snapshot();
  event.set();
  co_await asyncio::gather(std::move(tasks));
  co_return growth(before, after);
}

// In a forked child: `count` concur asyncio tasks awaiting one Event.
std::string parked_tasks(int count) {
  try {
    return asyncio::run(parked_tasks_main(count));
  } catch (const std::exception& e) {
    return std::string("error ") + e.what();
  }
}

// The static thread-local storage every thread of this program gets (PT_TLS of each loaded
// object): glibc zeroes it when a thread starts, so it is resident from the first instant.
double static_tls_kib() {
  std::size_t bytes = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          if (info->dlpi_phdr[i].p_type == PT_TLS) {
            *static_cast<std::size_t*>(data) += info->dlpi_phdr[i].p_memsz;
          }
        }
        return 0;
      },
      &bytes);
  return static_cast<double>(bytes) / 1024;
}

PerUnit from_child(const std::string& who, int count, const std::function<std::string()>& body,
                   Report& report) {
  const procfs::ChildResult r = procfs::run_in_child(body, std::chrono::seconds(60));
  if (!r.output) throw CheckFailed(who + ": the measuring child did not finish");
  if (r.output->rfind("error", 0) == 0) throw CheckFailed(who + ": " + *r.output);
  std::istringstream in(*r.output);
  double rss = 0, vsize = 0;
  in >> rss >> vsize;
  report.check(static_cast<bool>(in), who + ": the child's figures");
  return {who, count, rss / count, vsize / count};
}

PerUnit from_python(const support::Python& python, const std::string& what, int count,
                    const std::string& who) {
  progress::phase(who);
  const auto j =
      python.run_json("thread_memory.py", {"--what", what, "--count", std::to_string(count)},
                      std::chrono::seconds(120));
  return {who, count, j.at("rss_kib").get<double>() / count,
          j.at("vsize_kib").get<double>() / count};
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim("Threads are light: each one costs only kilobytes of RAM.", "Kilobytes of RAM");
  for (const Threshold& t : thread_memory::thresholds()) report.threshold(t);
  const int threads = options.quick ? 200 : 1000;
  const int tasks = options.quick ? 2000 : 10000;

  std::vector<PerUnit> rows;
  rows.push_back(from_child(
      "C++ std::thread", threads, [&] { return parked_threads(threads); }, report));
  rows.push_back(from_child(
      "concur asyncio task", tasks, [&] { return parked_tasks(tasks); }, report));
  thread_memory::Measurements m{false, rows[0]};
  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const std::string v = "CPython " + python->version();
    rows.push_back(from_python(*python, "threads", threads, v + " thread"));
    rows.push_back(from_python(*python, "tasks", tasks, v + " asyncio task"));
    m = {true, rows[2]};
  }
  Table table{
      "Memory added per unit while all of them are alive and parked (growth of the "
      "process's VmRSS and VmSize, divided by the count)",
      {"unit", "count", "resident per unit", "scale", "virtual per unit", "scale"},
      {}};
  std::vector<svg::Bar> bars;
  int kind = 0;
  for (const PerUnit& r : rows) {
    table.rows.push_back({r.who, std::to_string(r.count), fmt::format("{:.2f} KiB", r.rss_kib),
                          thread_memory::scale_of(r.rss_kib),
                          fmt::format("{:.1f} KiB", r.vsize_kib),
                          thread_memory::scale_of(r.vsize_kib)});
    bars.push_back({r.who + ", resident", std::max(r.rss_kib, 0.01), kind});
    bars.push_back({r.who + ", virtual", std::max(r.vsize_kib, 0.01), kind});
    ++kind;
  }
  for (const PerUnit& r : rows) {
    std::string key = r.who;
    for (char& c : key)
      c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    report.measured(key + "_rss_kib", r.rss_kib, "KiB");
    report.measured(key + "_vsize_kib", r.vsize_kib, "KiB");
  }
  report.table(std::move(table));
  report.figure({"thread-memory.svg",
                 "Memory per thread or task, resident (RAM) and virtual (address space); log "
                 "scale where they span orders of magnitude.",
                 svg::bars("Memory per parked thread or task", "KiB", bars)});
  report.note(
      "The kernel keeps its own structures for each thread (task structure, kernel stack: about "
      "10-20 KiB on x86-64) outside any process's RSS; they are not in these figures.");
  report.note(fmt::format(
      "Each thread of concur-lab (the C++ row) also gets {:.1f} KiB of static thread-local "
      "storage, zeroed when it starts, so resident at once: part of its figure.",
      static_tls_kib()));
  report.verdict(thread_memory::judge(m), m.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"thread-memory", "memory per thread and per asyncio task, resident and virtual", run,
     Chapter::kThreadsForIo, 15});

}  // namespace
}  // namespace concur::lab
