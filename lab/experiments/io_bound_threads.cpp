// io-bound-threads: the tutorial's web scraper.
//
// Claim (in our words): ten threads that each wait a second for a download finish together in
// about one second instead of ten, because a thread that waits lets the others run (in CPython,
// it releases the interpreter lock while it sleeps).
//
// Workload: kUrls fetches that each wait `latency` (1 s as in the tutorial; 0.1 s with --quick),
// first one after another, then through a ThreadPoolExecutor of kUrls workers with map(); the same
// in CPython with time.sleep and concurrent.futures.ThreadPoolExecutor. Every result is checked.
//
// Verdict (io_bound_threads.hpp): on CPython's run (the tutorial's subject; concur's threads when
// CPython cannot run, and the verdict says so): confirmed when the threaded run takes at most
// kNearOneWait x latency while the sequential one takes at least kNearAllWaits x kUrls x latency;
// partly true when threads still help by at least kSomeHelp x; refuted otherwise. Waiting threads
// need no second core, so this claim is judged on any number of cores.
#include <fmt/format.h>

#include <chrono>
#include <concur/thread_pool.hpp>
#include <mutex>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

#include "io_bound_threads.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace io_bound_threads {

std::vector<Threshold> thresholds() {
  return {{"near_one_wait", kNearOneWait,
           "\"1 second instead of 10\": the threaded run within half a wait of one wait"},
          {"near_all_waits", kNearAllWaits,
           "the sequential run must have waited every wait (timer rounding allowed)"},
          {"some_help", kSomeHelp, "below a 2x gain the waits did not overlap usefully"}};
}

Judgement judge(const Measurements& m) {
  const double speedup = m.sequential_s / m.threaded_s;
  const std::string numbers = fmt::format(
      "In {}, {} waits of {} took {} one after another and {} with {} threads ({} faster, "
      "{} of a single wait).",
      m.from_cpython ? "CPython" : "concur's threads (CPython was not measured)", m.waits,
      format_seconds(m.latency_s), format_seconds(m.sequential_s), format_seconds(m.threaded_s),
      m.waits, format_ratio(speedup), format_ratio(m.threaded_s / m.latency_s));
  if (m.threaded_s <= kNearOneWait * m.latency_s &&
      m.sequential_s >= kNearAllWaits * m.waits * m.latency_s) {
    return {Verdict::kConfirmed, numbers + " Waiting threads do overlap."};
  }
  if (speedup >= kSomeHelp) {
    return {Verdict::kPartlyTrue,
            numbers + " Threads help, but the threaded run is not close to one wait."};
  }
  return {Verdict::kRefuted, numbers + " The waits did not overlap."};
}

}  // namespace io_bound_threads

namespace {

constexpr int kUrls = 10;

using Clock = std::chrono::steady_clock;

struct Run {
  double wall = 0;
  std::vector<svg::Span> spans;  // one per fetch, by url id
  bool results_ok = false;
};

Run scrape_all(std::chrono::duration<double> latency, bool threaded) {
  std::mutex mu;
  Run run;
  run.spans.resize(kUrls);
  const auto t0 = Clock::now();
  auto scrape = [&](int url_id) {
    const double start = std::chrono::duration<double>(Clock::now() - t0).count();
    std::this_thread::sleep_for(latency);
    const double end = std::chrono::duration<double>(Clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(mu);
    run.spans[static_cast<std::size_t>(url_id)] = {start, end, threaded ? 1 : 0};
    return "Data " + std::to_string(url_id) + " Downloaded";
  };
  std::vector<std::string> results;
  if (threaded) {
    ThreadPoolExecutor executor(kUrls);
    for (std::string& page : executor.map(scrape, std::views::iota(0, kUrls))) {
      results.push_back(std::move(page));
    }
  } else {
    for (int id = 0; id < kUrls; ++id) results.push_back(scrape(id));
  }
  run.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  run.results_ok = results.size() == kUrls;
  for (int id = 0; id < kUrls && run.results_ok; ++id) {
    run.results_ok =
        results[static_cast<std::size_t>(id)] == "Data " + std::to_string(id) + " Downloaded";
  }
  return run;
}

std::vector<svg::Lane> lanes_of(const std::string& who, const std::vector<svg::Span>& sequential,
                                const std::vector<svg::Span>& threaded) {
  std::vector<svg::Lane> lanes;
  lanes.push_back({who + " sequential", sequential});
  for (std::size_t i = 0; i < threaded.size(); ++i) {
    lanes.push_back({who + " thread " + std::to_string(i), {threaded[i]}});
  }
  return lanes;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "Ten threads that each wait about a second for a download finish together in about one "
      "second instead of ten, because a waiting thread lets the others run (CPython releases "
      "its interpreter lock while a thread sleeps or waits on I/O).",
      "the script finishes in 1 second instead of 10");
  const double latency = options.quick ? 0.1 : 1.0;
  const auto wait = std::chrono::duration<double>(latency);

  const Run cpp_seq = scrape_all(wait, false);
  const Run cpp_thr = scrape_all(wait, true);
  report.check(cpp_seq.results_ok && cpp_thr.results_ok,
               "concur's scraper returned every page, in input order");

  Table table{"Ten fetches that each wait " + format_seconds(latency),
              {"who", "one after another", "10 threads", "speed-up", "threaded / one wait"},
              {}};
  table.rows.push_back({"concur (C++ threads)", format_seconds(cpp_seq.wall),
                        format_seconds(cpp_thr.wall), format_ratio(cpp_seq.wall / cpp_thr.wall),
                        format_ratio(cpp_thr.wall / latency)});
  report.measured("concur_sequential_s", cpp_seq.wall, "s");
  report.measured("concur_threaded_s", cpp_thr.wall, "s");
  report.figure({"io-bound-threads-concur.svg",
                 "Each bar is one fetch waiting; in the threaded run all ten wait at once.",
                 svg::timeline("concur: ten fetches, one after another vs ten threads",
                               lanes_of("C++", cpp_seq.spans, cpp_thr.spans),
                               {{0, "waiting (sequential)"}, {1, "waiting (threaded)"}})});

  double seq = cpp_seq.wall;
  double thr = cpp_thr.wall;
  std::string subject = "concur";
  bool from_cpython = false;
  if (auto python = cpython_for(options, report)) {
    progress::phase("CPython " + python->version());
    const auto j =
        python->run_json("io_bound_threads.py",
                         {"--sleep", std::to_string(latency), "--count", std::to_string(kUrls)},
                         std::chrono::seconds(120));
    report.check(j.at("results_ok").get<bool>(), "CPython's scraper returned every page in order");
    seq = j.at("sequential_s").get<double>();
    thr = j.at("threaded_s").get<double>();
    subject = "CPython " + python->version();
    from_cpython = true;
    table.rows.push_back({subject, format_seconds(seq), format_seconds(thr),
                          format_ratio(seq / thr), format_ratio(thr / latency)});
    report.measured("cpython_sequential_s", seq, "s");
    report.measured("cpython_threaded_s", thr, "s");
    auto spans_of = [&](const char* key) {
      std::vector<svg::Span> spans(kUrls);
      for (const auto& s : j.at("spans").at(key)) {
        spans[s.at(0).get<std::size_t>()] = {s.at(1).get<double>(), s.at(2).get<double>(),
                                             std::string(key) == "threaded" ? 1 : 0};
      }
      return spans;
    };
    report.figure({"io-bound-threads-cpython.svg",
                   "The same in CPython: the sleeps overlap although only one thread at a time "
                   "may run Python code.",
                   svg::timeline("CPython: ten fetches, one after another vs ten threads",
                                 lanes_of("Python", spans_of("sequential"), spans_of("threaded")),
                                 {{0, "waiting (sequential)"}, {1, "waiting (threaded)"}})});
  }
  report.table(std::move(table));

  std::vector<svg::Bar> bars{{"concur, one after another", cpp_seq.wall, 0},
                             {"concur, 10 threads", cpp_thr.wall, 1}};
  if (from_cpython) {
    bars.push_back({subject + ", one after another", seq, 3});
    bars.push_back({subject + ", 10 threads", thr, 4});
  }
  report.figure(
      {"io-bound-threads.svg", "Wall time of ten waits; the line marks a single wait.",
       svg::bars("Ten fetches: one after another vs ten threads", "s", bars, latency, "one wait")});
  for (const Threshold& t : io_bound_threads::thresholds()) report.threshold(t);
  const io_bound_threads::Measurements m{from_cpython, kUrls, latency, seq, thr};
  report.verdict(io_bound_threads::judge(m),
                 from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"io-bound-threads", "the scraper: 10 waiting fetches, sequential vs 10 threads", run,
     Chapter::kThreadsForIo, 25});

}  // namespace
}  // namespace concur::lab
