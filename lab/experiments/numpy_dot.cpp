// numpy-dot: does a native matrix multiply release the lock and use every core?
//
// Claim (in our words): a large NumPy matrix multiply runs in native code that lets go of the
// interpreter lock, so it computes on all the cores at once even inside a locked interpreter.
//
// Workload: square matrices of doubles multiplied by a real BLAS (OpenBLAS's cblas_dgemm, the
// library NumPy uses on Debian when the alternatives point at it).
//   - concur: `threads` threads each run one multiply while holding an InterpreterLock around it
//     (as native code that never releases the GIL), then releasing it (GilRelease, as
//     Py_BEGIN_ALLOW_THREADS in NumPy), against the same multiplies one after another on one
//     thread; OpenBLAS is held to one thread of its own meanwhile, so any gain comes from our
//     threads. Then one multiply with OpenBLAS at its default thread count, and its CPU time over
//     its wall time: how many cores it really kept busy.
//   - CPython (lab/python/numpy_dot.py): the same with numpy.dot and threading, the BLAS held to
//     one thread by OPENBLAS_NUM_THREADS & co. for the threads part; then one numpy.dot at the
//     BLAS's default. It reports which BLAS numpy loaded and its threads (threadpoolctl).
// OpenBLAS is loaded with dlopen here, on first use, so that no other process of concur-lab (the
// c10k servers, say) carries OpenBLAS's own threads.
//
// Verdict (numpy_dot.hpp): judged on CPython when it and numpy run, else on concur's model (and
// the verdict says so); only where the control shows this run can compute in parallel.
#include "numpy_dot.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concur/gil.hpp>
#include <random>
#include <thread>
#include <vector>

#include "cores.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace numpy_dot {

std::vector<Threshold> thresholds() {
  return {{"near_control", kNearControl,
           "released: the threads reach this share of the no-lock control's speed-up "
           "(\"parallel processing speeds\")"},
          {"some_overlap", kSomeOverlap,
           "below this speed-up the threads did not overlap at all (the control's own bar)"},
          {"all_cores_share", kAllCoresShare,
           "\"across all ... cores\": one multiply keeps this share of the usable cores busy"},
          {"starved_below_cores", kStarvedBelowCores,
           "a running multiply keeps a core busy; below half a core it was starved: nothing "
           "judged"}};
}

Judgement judge(const Measurements& m) {
  if (!m.control.parallel_possible()) return inconclusive_without_parallelism(m.control);
  if (m.one_multiply_cores < kStarvedBelowCores) {
    return {Verdict::kInconclusive,
            fmt::format("one multiply got only {:.2f} cores' worth of CPU time over its wall time "
                        "(below {:.1f}): other programs starved it, so these figures say nothing "
                        "about the multiply; run it on a quieter machine",
                        m.one_multiply_cores, kStarvedBelowCores)};
  }
  const double speedup = m.threads_speedup();
  const double bar = kNearControl * m.control.speedup();
  const double cores = m.control.usable_cores;
  const bool released = speedup >= bar;
  const bool overlapped = speedup >= kSomeOverlap;
  const bool all_cores = m.one_multiply_cores >= kAllCoresShare * cores;
  const std::string who =
      m.from_cpython ? "In CPython" : "In concur's model (CPython not measured)";
  std::string text = fmt::format(
      "{} ({}), {} threads each multiplying at once finished {} as fast as one thread doing the "
      "same multiplies ({} needed, {} of the no-lock control's {}); one multiply alone kept {:.2f} "
      "of the {} usable cores busy ({:.2f} needed).",
      who, m.blas.empty() ? "BLAS unknown" : m.blas, m.threads, format_ratio(speedup),
      format_ratio(bar), kNearControl, format_ratio(m.control.speedup()), m.one_multiply_cores,
      m.control.usable_cores, kAllCoresShare * cores);
  const std::string lock = released ? " The multiply releases the lock: threads ran it in parallel."
                           : overlapped ? " The threads overlapped only in part."
                                        : " The threads did not overlap: the lock stayed held.";
  const std::string spread =
      all_cores ? " One multiply used all the cores by itself."
                : " One multiply did not use all the cores: this BLAS ran it on fewer threads.";
  text += lock + spread;
  if (released && all_cores) return {Verdict::kConfirmed, text};
  if (released || overlapped || all_cores) return {Verdict::kPartlyTrue, text};
  return {Verdict::kRefuted, text};
}

}  // namespace numpy_dot

namespace {

using Clock = std::chrono::steady_clock;

// OpenBLAS, loaded on first use (see the top of this file).
struct OpenBlas {
  using Dgemm = void (*)(int, int, int, int, int, int, double, const double*, int, const double*,
                         int, double, double*, int);
  Dgemm dgemm = nullptr;
  void (*set_num_threads)(int) = nullptr;
  int (*get_num_threads)() = nullptr;
  char* (*get_config)() = nullptr;
  std::string error;
  int default_threads = 1;

  static const OpenBlas& get() {
    static const OpenBlas blas = load();
    return blas;
  }

 private:
  static OpenBlas load() {
    OpenBlas b;
    void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      b.error = fmt::format("OpenBLAS could not be loaded ({}); install libopenblas0", dlerror());
      return b;
    }
    b.dgemm = reinterpret_cast<Dgemm>(dlsym(lib, "cblas_dgemm"));
    b.set_num_threads = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
    b.get_num_threads = reinterpret_cast<int (*)()>(dlsym(lib, "openblas_get_num_threads"));
    b.get_config = reinterpret_cast<char* (*)()>(dlsym(lib, "openblas_get_config"));
    if (!b.dgemm || !b.set_num_threads || !b.get_num_threads) {
      b.error = "libopenblas.so.0 lacks cblas_dgemm or openblas_set_num_threads";
      return b;
    }
    b.default_threads = b.get_num_threads();
    return b;
  }
};

constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;

struct Matrices {
  int n;
  std::vector<double> a, b;
  explicit Matrices(int size) : n(size), a(static_cast<std::size_t>(size) * size), b(a.size()) {
    std::mt19937 gen(42);
    std::uniform_real_distribution<double> u(-1, 1);
    for (double& x : a) x = u(gen);
    for (double& x : b) x = u(gen);
  }
  // One product into `c`, checked at one element against the plain sum.
  void multiply(const OpenBlas& blas, std::vector<double>& c, Report& report) const {
    c.assign(a.size(), 0.0);
    blas.dgemm(kRowMajor, kNoTrans, kNoTrans, n, n, n, 1.0, a.data(), n, b.data(), n, 0.0, c.data(),
               n);
    double expect = 0;
    for (int k = 0; k < n; ++k)
      expect += a[static_cast<std::size_t>(k)] * b[static_cast<std::size_t>(k) * n];
    report.check(std::abs(c[0] - expect) < 1e-9 * n, "dgemm's first element");
  }
};

double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// `threads` multiplies: on one thread, or one per thread holding or releasing `gil`.
double run_threads(const OpenBlas& blas, const Matrices& m, int threads, bool spread, bool release,
                   InterpreterLock& gil, Report& report) {
  std::vector<std::vector<double>> out(static_cast<std::size_t>(threads));
  const auto t0 = Clock::now();
  if (!spread) {
    for (auto& c : out) m.multiply(blas, c, report);
  } else {
    std::vector<std::thread> pool;
    for (auto& c : out) {
      pool.emplace_back([&] {
        GilGuard hold(gil);
        if (release) {
          GilRelease native(gil);
          m.multiply(blas, c, report);
        } else {
          m.multiply(blas, c, report);
        }
      });
    }
    for (auto& t : pool) t.join();
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Python {
  bool ran = false;
  numpy_dot::Measurements m;
  std::string version;
};

// CPython's side; `ran` false (with a note) when CPython or numpy cannot run here.
Python cpython_side(const Options& options, Report& report, int size, int threads, int reps,
                    const ParallelControl& control) {
  Python out;
  auto python = cpython_for(options, report);
  if (!python) return out;
  if (!python->has_module("numpy")) {
    report.note("CPython " + python->version() +
                " has no numpy (Debian: python3-numpy), so concur's model stands in.");
    return out;
  }
  const std::vector<std::string> common{"--size",    std::to_string(size),
                                        "--threads", std::to_string(threads),
                                        "--repeat",  std::to_string(reps)};
  progress::phase("CPython " + python->version() + ": numpy.dot on 1 and more threads");
  auto args = common;
  args.insert(args.end(), {"--mode", "threads"});
  const auto t = python->run_json("numpy_dot.py", args, std::chrono::seconds(600));
  progress::phase("CPython " + python->version() + ": the cores of one numpy.dot");
  args = common;
  args.insert(args.end(), {"--mode", "one"});
  const auto one = python->run_json("numpy_dot.py", args, std::chrono::seconds(600));
  out.ran = true;
  out.version = t.at("version").get<std::string>();
  out.m.control = control;
  out.m.from_cpython = true;
  out.m.threads = threads;
  out.m.blas = one.at("blas").get<std::string>();
  for (const auto& v : t.at("one_thread_s")) out.m.one_thread_s.values.push_back(v.get<double>());
  for (const auto& v : t.at("many_threads_s")) {
    out.m.many_threads_s.values.push_back(v.get<double>());
  }
  std::vector<double> cores;
  for (const auto& r : one.at("one_multiply")) {
    cores.push_back(r.at("cpu_s").get<double>() / r.at("wall_s").get<double>());
  }
  std::sort(cores.begin(), cores.end());
  out.m.one_multiply_cores = cores[cores.size() / 2];
  report.note(fmt::format("CPython {} with numpy {}: {} (threads part: {}).", out.version,
                          one.at("numpy").get<std::string>(), out.m.blas,
                          t.at("blas").get<std::string>()));
  return out;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "A large NumPy matrix multiply runs in native code that lets go of the interpreter lock, "
      "so it computes on all the cores at once, even inside a locked interpreter.",
      "NumPy manually releases the Python GIL");
  for (const Threshold& t : numpy_dot::thresholds()) report.threshold(t);
  const ParallelControl& control = parallel_control(options);
  report_control(report, control);
  const OpenBlas& blas = OpenBlas::get();
  const int size = options.quick ? 800 : 1200;
  const int threads = control.threads;
  const int reps = repetitions(options);

  numpy_dot::Measurements concur_m;
  concur_m.control = control;
  concur_m.threads = threads;
  Table table{fmt::format("{} multiplies of {}x{} doubles: one after another on one thread, or one "
                          "per thread at once (medians of {} interleaved runs)",
                          threads, size, size, reps),
              {"who", "1 thread", fmt::format("{} threads", threads), "speed-up",
               "one multiply: cores busy"},
              {}};
  std::vector<svg::Bar> bars;
  if (!blas.error.empty()) {
    report.note("concur's side was skipped: " + blas.error);
  } else {
    const Matrices mats(size);
    InterpreterLock gil;
    blas.set_num_threads(1);
    const auto runs = interleaved(
        reps, {[&] { return run_threads(blas, mats, threads, false, false, gil, report); },
               [&] { return run_threads(blas, mats, threads, true, false, gil, report); },
               [&] { return run_threads(blas, mats, threads, true, true, gil, report); }});
    blas.set_num_threads(blas.default_threads);
    Sample cores;
    std::vector<double> c;
    for (int r = 0; r < reps; ++r) {
      const double cpu0 = process_cpu_s();
      const auto t0 = Clock::now();
      mats.multiply(blas, c, report);
      const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
      cores.values.push_back((process_cpu_s() - cpu0) / wall);
    }
    concur_m.blas = fmt::format("OpenBLAS ({}), {} threads by default",
                                blas.get_config ? blas.get_config() : "?", blas.default_threads);
    concur_m.one_thread_s = runs[0];
    concur_m.many_threads_s = runs[2];
    concur_m.one_multiply_cores = cores.median();
    const double held = runs[0].median() / runs[1].median();
    table.rows.push_back({"concur, InterpreterLock held around dgemm", runs[0].describe_seconds(),
                          runs[1].describe_seconds(), format_ratio(held), "-"});
    table.rows.push_back({"concur, released (GilRelease) around dgemm", runs[0].describe_seconds(),
                          runs[2].describe_seconds(), format_ratio(concur_m.threads_speedup()),
                          fmt::format("{:.2f}", concur_m.one_multiply_cores)});
    report.measured("concur_held_speedup", held, "x");
    report.measured("concur_released_speedup", concur_m.threads_speedup(), "x");
    report.measured("concur_one_multiply_cores", concur_m.one_multiply_cores, "cores");
    bars.push_back({"concur, lock held", held, 1});
    bars.push_back({"concur, lock released", concur_m.threads_speedup(), 2});
    report.note("concur's BLAS: " + concur_m.blas + ".");
  }

  const Python py = cpython_side(options, report, size, threads, reps, control);
  if (py.ran) {
    table.rows.push_back(
        {"CPython " + py.version + ", numpy.dot in threads", py.m.one_thread_s.describe_seconds(),
         py.m.many_threads_s.describe_seconds(), format_ratio(py.m.threads_speedup()),
         fmt::format("{:.2f}", py.m.one_multiply_cores)});
    report.measured("cpython_threads_speedup", py.m.threads_speedup(), "x");
    report.measured("cpython_one_multiply_cores", py.m.one_multiply_cores, "cores");
    bars.push_back({"CPython numpy.dot", py.m.threads_speedup(), 3});
  }
  report.table(std::move(table));
  if (!bars.empty()) {
    bars.insert(bars.begin(), {"no-lock control", control.speedup(), 0});
    report.figure({"numpy-dot.svg",
                   fmt::format("Speed-up of {} threads multiplying at once over one thread doing "
                               "the same multiplies (higher is better; {} usable cores).",
                               threads, control.usable_cores),
                   svg::bars("Matrix multiplies from several threads", "x", bars)});
  }
  if (py.ran) {
    report.verdict(numpy_dot::judge(py.m), Source::kCPython);
  } else if (blas.error.empty()) {
    report.verdict(numpy_dot::judge(concur_m), Source::kConcurModel);
  } else {
    report.verdict(Verdict::kInconclusive,
                   "neither CPython with numpy nor OpenBLAS could run here: " + blas.error,
                   Source::kConcurModel);
  }
}

const bool registered = register_experiment(
    {"numpy-dot", "BLAS matrix multiply: lock held vs released, and one multiply's cores", run,
     Chapter::kNativeKernels, 40});

}  // namespace
}  // namespace concur::lab
