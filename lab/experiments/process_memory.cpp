// process-memory: does handing a big array to child processes copy it into each one?
//
// Claim (in our words): multiprocessing copies the whole (gigabyte) array into every new process,
// so RAM use multiplies with the number of processes.
//
// Workload: an array of `mib` MiB of doubles (1024; 64 with --quick) given to kChildren children
// four ways: fork, the children only reading it; fork, the children writing one value per page;
// spawn, the array passed as an argument (encoded and sent, so each child decodes its own copy);
// and a SharedArray passed to spawned children (the same memory mapped in each). Each child
// touches all of it, says so, and waits while the parent reads its memory from
// /proc/<pid>/smaps_rollup: Rss (pages mapped), Pss (shared pages divided among their sharers)
// and private (pages no other process has). CPython does the same with fork (a numpy array, and
// a list of Python floats, whose reference counts are written when read), spawn (pickling) and
// multiprocessing.shared_memory.
//
// "Copied" below is a child's private memory over the array size. Verdict (process_memory.hpp),
// on CPython's rows when CPython with numpy ran (else concur's, and the verdict says so): refuted
// when not even a spawned child given the array copies kCopied of it; confirmed when even a forked
// child that only reads it does; partly true otherwise (the claim holds for spawn, and for fork
// only for what is written). The array shrinks, with a note, when memory is short.
#include <fmt/format.h>
#include <unistd.h>

#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/queue.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/multiprocessing/synchronize.hpp>
#include <fstream>
#include <map>
#include <numeric>
#include <vector>

#include "lab.hpp"
#include "process_memory.hpp"
#include "progress.hpp"
#include "stats.hpp"
#include "svg.hpp"

namespace mp = concur::multiprocessing;

namespace {

void sum_copy_and_wait(std::vector<double> data, mp::Queue<double> ready, mp::Event done) {
  ready.put(std::accumulate(data.begin(), data.end(), 0.0));
  done.wait(std::chrono::minutes(5));
}
CONCUR_REGISTER(sum_copy_and_wait);

void sum_shared_and_wait(mp::SharedArray<double> data, mp::Queue<double> ready, mp::Event done) {
  ready.put(std::accumulate(data.begin(), data.end(), 0.0));
  done.wait(std::chrono::minutes(5));
}
CONCUR_REGISTER(sum_shared_and_wait);

}  // namespace

namespace concur::lab {
namespace process_memory {

std::vector<Threshold> thresholds() {
  return {{"not_copied", kNotCopied,
           "under a fifth of the array private to a child: it did not copy the array"},
          {"copied", kCopied, "four fifths or more private to a child: it holds its own copy"}};
}

Judgement judge(const Measurements& m) {
  std::string numbers = fmt::format(
      "In {}, a forked child that only read the array holds {} of it privately; a spawned child "
      "given it as an argument holds {}.",
      m.from_cpython ? "CPython (a numpy array)" : "concur (CPython with numpy was not measured)",
      format_ratio(m.fork_read), format_ratio(m.spawn_argument));
  if (!std::isnan(m.fork_objects)) {
    numbers += fmt::format(
        " A forked child reading the same amount of data as a list of Python floats holds {} of "
        "it{}.",
        format_ratio(m.fork_objects),
        m.fork_objects >= kCopied ? ": reading a Python object writes its reference count, and "
                                    "the written pages are copied"
                                  : "");
  }
  if (m.spawn_argument < kCopied) {
    return {Verdict::kRefuted, numbers + " Not even the spawned child holds its own copy."};
  }
  if (m.fork_read >= kCopied) {
    return {Verdict::kConfirmed, numbers + " Even the forked reader holds its own copy."};
  }
  if (m.fork_read < kNotCopied) {
    return {Verdict::kPartlyTrue,
            numbers + " Spawning copies; fork shares the pages until they are written."};
  }
  return {Verdict::kPartlyTrue,
          numbers + " Spawning copies; the forked reader copied part of the array."};
}

}  // namespace process_memory

namespace {

constexpr int kChildren = 2;

// MemAvailable from /proc/meminfo, in MiB; 0 if unknown.
double available_mib() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib / 1024;
  }
  return 0;
}
constexpr std::size_t kPage = 4096;

struct Row {
  std::string how;
  std::vector<MemoryUse> children;
};

// The next child's sum; fails at once, instead of after minutes, when a child has died without
// sending it.
double wait_ready(mp::Queue<double>& ready, std::vector<mp::Process>& children,
                  const std::string& how) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  for (;;) {
    try {
      return ready.get(std::chrono::milliseconds(200));
    } catch (const mp::Empty&) {
      for (auto& c : children) {
        if (!c.is_alive() && c.exitcode() != 0) {
          throw CheckFailed(
              fmt::format("{}: a child exited with code {} before it had read the "
                          "array (see its message on stderr)",
                          how, c.exitcode().value_or(-1)));
        }
      }
      if (std::chrono::steady_clock::now() > give_up) {
        throw CheckFailed(how + ": no child reported its sum within 5 minutes");
      }
    }
  }
}

// Starts the children, waits until each has touched the data, measures them, lets them exit.
Row measure(const std::string& how, std::vector<mp::Process> children, mp::Queue<double>& ready,
            mp::Event& done, double expected_sum, Report& report) {
  for (auto& c : children) c.start();
  try {
    for (std::size_t i = 0; i < children.size(); ++i) {
      report.check(wait_ready(ready, children, how) == expected_sum, how + ": the child's sum");
    }
  } catch (...) {
    done.set();  // the children still waiting may exit, so that their destructors' join() returns
    throw;
  }
  Row row{how, {}};
  for (auto& c : children) row.children.push_back(memory_of(c.pid()));
  done.set();
  for (auto& c : children) {
    c.join();
    report.check(c.exitcode() == 0, how + ": the child exited normally");
  }
  return row;
}

double median_private(const Row& row) {
  std::vector<double> v;
  for (const MemoryUse& m : row.children) v.push_back(m.private_mib);
  return support::median_of(v);
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "Starting a process copies the whole (gigabyte) array into the new process, so memory use "
      "multiplies with the number of processes.",
      "It copies the entire massive gigabyte array");
  std::size_t mib = options.quick ? 64 : 1024;
  // At the peak, the parent's array and each spawned child's copy are resident at once (and
  // CPython's run after it): keep that within half of the memory available.
  const double available = available_mib();
  if (available > 0 && static_cast<double>(mib * (kChildren + 2)) > available / 2) {
    const std::size_t fit = static_cast<std::size_t>(available / 2 / (kChildren + 2));
    std::size_t smaller = 16;
    while (smaller * 2 <= fit) smaller *= 2;
    report.note(
        fmt::format("Only {:.0f} MiB of memory is available: the array is {} MiB instead "
                    "of {} MiB.",
                    available, smaller, mib));
    mib = smaller;
  }
  const std::size_t count = mib * 1024 * 1024 / sizeof(double);
  std::vector<Row> rows;

  {  // fork, reading
    std::vector<double> array(count, 1.0);
    mp::Queue<double> ready;
    mp::Event done;
    std::vector<mp::Process> children;
    for (int i = 0; i < kChildren; ++i) {
      children.emplace_back(mp::ProcessOptions{.start_method = mp::StartMethod::fork},
                            [&array, ready, done]() mutable {
                              ready.put(std::accumulate(array.begin(), array.end(), 0.0));
                              done.wait(std::chrono::minutes(5));
                            });
    }
    rows.push_back(measure("fork, children read the array", std::move(children), ready, done,
                           static_cast<double>(count), report));
  }
  {  // fork, writing one value per page
    std::vector<double> array(count, 1.0);
    mp::Queue<double> ready;
    mp::Event done;
    std::vector<mp::Process> children;
    for (int i = 0; i < kChildren; ++i) {
      children.emplace_back(mp::ProcessOptions{.start_method = mp::StartMethod::fork},
                            [&array, ready, done]() mutable {
                              for (std::size_t k = 0; k < array.size();
                                   k += kPage / sizeof(double)) {
                                array[k] = 1.0;  // the same value: only the write matters
                              }
                              ready.put(std::accumulate(array.begin(), array.end(), 0.0));
                              done.wait(std::chrono::minutes(5));
                            });
    }
    rows.push_back(measure("fork, children write to every page", std::move(children), ready, done,
                           static_cast<double>(count), report));
  }
  {  // spawn, the array encoded as an argument
    mp::Queue<double> ready;
    mp::Event done;
    std::vector<mp::Process> children;
    {
      const std::vector<double> array(count, 1.0);
      for (int i = 0; i < kChildren; ++i) {
        children.emplace_back(mp::ProcessOptions{.start_method = mp::StartMethod::spawn},
                              sum_copy_and_wait, array, ready, done);
      }
    }
    rows.push_back(measure("spawn, the array passed as an argument", std::move(children), ready,
                           done, static_cast<double>(count), report));
  }
  {  // spawn, a SharedArray
    mp::SharedArray<double> shared(count);
    std::fill(shared.begin(), shared.end(), 1.0);
    mp::Queue<double> ready;
    mp::Event done;
    std::vector<mp::Process> children;
    for (int i = 0; i < kChildren; ++i) {
      children.emplace_back(mp::ProcessOptions{.start_method = mp::StartMethod::spawn},
                            sum_shared_and_wait, shared, ready, done);
    }
    rows.push_back(measure("spawn, a SharedArray", std::move(children), ready, done,
                           static_cast<double>(count), report));
  }

  Table table{fmt::format("{} MiB of doubles handed to {} children (memory of each child, MiB)",
                          mib, kChildren),
              {"who", "how", "Rss", "Pss", "private", "copied"},
              {}};
  std::vector<svg::Bar> bars;
  auto add_row = [&](const std::string& who, const Row& row, int kind) {
    const double copied = median_private(row) / static_cast<double>(mib);
    std::vector<double> rss;
    std::vector<double> pss;
    for (const MemoryUse& m : row.children) {
      rss.push_back(m.rss_mib);
      pss.push_back(m.pss_mib);
    }
    table.rows.push_back({who, row.how, fmt::format("{:.0f}", support::median_of(rss)),
                          fmt::format("{:.0f}", support::median_of(pss)),
                          fmt::format("{:.0f}", median_private(row)), format_ratio(copied)});
    bars.push_back({who + ": " + row.how, median_private(row), kind});
    return copied;
  };
  const double fork_read = add_row("concur", rows[0], 0);
  add_row("concur", rows[1], 1);
  const double spawn_copy = add_row("concur", rows[2], 2);
  add_row("concur", rows[3], 3);
  report.measured("fork_read_copied", fork_read, "x");
  report.measured("spawn_copied", spawn_copy, "x");
  process_memory::Measurements m{false, fork_read, spawn_copy};

  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j = python->run_json("process_memory.py", {"--mib", std::to_string(mib)},
                                    std::chrono::seconds(900));
    std::map<std::string, double> copied;
    for (const auto& [how, children] : j.at("rows").items()) {
      Row row{how, {}};
      for (const auto& c : children) {
        row.children.push_back({c.at("rss_mib").get<double>(), c.at("pss_mib").get<double>(),
                                c.at("private_mib").get<double>()});
      }
      copied[how] = add_row("CPython " + j.at("version").get<std::string>(), row, 4);
    }
    // The names are lab/python/process_memory.py's; the numpy rows are missing without numpy.
    if (copied.count("fork, a numpy array") && copied.count("spawn, the numpy array pickled")) {
      m = {true, copied["fork, a numpy array"], copied["spawn, the numpy array pickled"]};
    }
    if (copied.count("fork, a list of Python floats")) {
      m.fork_objects = copied["fork, a list of Python floats"];
      report.measured("cpython_fork_list_copied", m.fork_objects, "x");
    }
    for (const auto& n : j.at("notes")) report.note("CPython: " + n.get<std::string>());
  }
  report.table(std::move(table));
  report.figure({"process-memory.svg",
                 "Private memory of one child (pages it does not share with anyone): what was "
                 "actually copied.",
                 svg::bars(fmt::format("What a child copies of a {} MiB array", mib), "MiB", bars,
                           static_cast<double>(mib), "the whole array")});

  for (const Threshold& t : process_memory::thresholds()) report.threshold(t);
  report.verdict(process_memory::judge(m),
                 m.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"process-memory", "a big array given to children: fork (CoW), spawn (copy), SharedArray", run,
     Chapter::kCpuBound, 60});

}  // namespace
}  // namespace concur::lab
