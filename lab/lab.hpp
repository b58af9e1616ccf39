// lab/lab.hpp: what an experiment of concur-lab is, and the report it fills in.
//
// One experiment, one pair of files, as pyperformance keeps one benchmark per folder:
// lab/experiments/<name>.hpp holds its measurements, its thresholds (each with its reason) and its
// judge, a pure function of the measurements that unit tests reach branch by branch
// (tests/unit/lab_judges/); lab/experiments/<name>.cpp opens with the tutorial's claim in our own
// words, then its workload: it measures, checks that its own answers are right (a wrong answer
// fails the run loudly instead of yielding a verdict), and hands the figures to the judge.
// Nothing in a verdict is written in advance: the text that explains it is built from the figures.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "python.hpp"

namespace concur::lab {

enum class Verdict { kConfirmed, kPartlyTrue, kRefuted, kInconclusive };
const char* to_string(Verdict v);

// Where the figures behind a verdict came from (the rules of evidence: lab/evidence.hpp).
enum class Source {
  kCPython,      // a claim about Python, judged on CPython's measurements
  kConcurModel,  // a claim about Python, but CPython could not run: concur's model stood in
  kNative,       // a claim about the OS, C++ or the machine: no Python in it
};
const char* to_string(Source s);  // "CPython", "concur's model (CPython not measured)", "native"

// A number a verdict is judged against, declared beside the judge.
struct Threshold {
  std::string name;    // "near_linear"
  double value = 0;    // 0.7
  std::string reason;  // one line: why this number, from the claim's words or first principles
};

// What a judge returns: a pure function of measurements, so tests can reach every branch.
struct Judgement {
  Verdict verdict = Verdict::kInconclusive;
  std::string because;  // composed from the measured figures, never fixed text
};

// The tutorial's story, in its order: the report shows the experiments chapter by chapter.
enum class Chapter {
  kKitchen = 1,    // cores, threads and the one knife: CPU-bound threads vs C++
  kThreadsForIo,   // threads for waiting: sleep and I/O release the lock; threads are light
  kWhyTheLock,     // reference counts and the race the lock prevents
  kCpuBound,       // CPU-bound work: processes, their memory, fork and spawn
  kNativeKernels,  // the NumPy loophole: native code that releases the lock
  kMainGuard,      // the main guard and re-importing children
  kCoroutines,     // asyncio: one thread, cooperative switches, many sockets
};
const char* to_string(Chapter c);  // a title for the chapter

struct Options {
  bool quick = false;  // each experiment in a few seconds, smaller workloads
  std::string python = support::kDefaultPython;  // the CPython every verdict about Python uses
  std::vector<std::string> more_pythons;  // further interpreters shown beside it (--python again)
  std::string out_dir = "lab-report";     // where pictures and report.html go
};

// Thrown by Report::check(): the experiment measured something impossible, so no verdict.
class CheckFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct Figure {
  std::string file_name;  // written under Options::out_dir
  std::string caption;
  std::string svg;
};

// A file for the reader to open elsewhere (a Perfetto trace, say), written under Options::out_dir.
struct Attachment {
  std::string file_name;
  std::string what;
  std::string content;
};

class Report {
 public:
  // The tutorial's claim in our words, and the few words of it we quote.
  void claim(std::string in_our_words, std::string quoted) {
    claim_ = std::move(in_our_words);
    quote_ = std::move(quoted);
  }
  // A headline figure (goes to the JSON report and the summary).
  void measured(const std::string& name, double value, const std::string& unit);
  void table(Table t) { tables_.push_back(std::move(t)); }
  void figure(Figure f) { figures_.push_back(std::move(f)); }
  void attach(Attachment a) { attachments_.push_back(std::move(a)); }
  void note(std::string text) { notes_.push_back(std::move(text)); }
  // Fails the experiment (CheckFailed) unless `ok`: for answers that must be right.
  void check(bool ok, const std::string& what);
  // A threshold the verdict is judged against, with its reason (lab/evidence.hpp).
  void threshold(const Threshold& t);
  // The verdict, and which runtime's figures it came from.
  void verdict(Verdict v, std::string because, Source source);
  void verdict(const Judgement& j, Source source);

  const std::string& claim() const { return claim_; }
  const std::string& quote() const { return quote_; }
  const std::vector<Table>& tables() const { return tables_; }
  const std::vector<Figure>& figures() const { return figures_; }
  const std::vector<Attachment>& attachments() const { return attachments_; }
  const std::vector<std::string>& notes() const { return notes_; }
  std::optional<Verdict> verdict() const { return verdict_; }
  const std::string& because() const { return because_; }
  const std::optional<Source>& source() const { return source_; }
  const std::vector<Threshold>& thresholds() const { return thresholds_; }
  const std::map<std::string, std::pair<double, std::string>>& figures_measured() const {
    return measured_;
  }

 private:
  std::string claim_;
  std::string quote_;
  std::map<std::string, std::pair<double, std::string>> measured_;
  std::vector<Table> tables_;
  std::vector<Figure> figures_;
  std::vector<Attachment> attachments_;
  std::vector<std::string> notes_;
  std::optional<Verdict> verdict_;
  std::string because_;
  std::optional<Source> source_;
  std::vector<Threshold> thresholds_;
};

struct Experiment {
  std::string name;     // "io-bound-threads"
  std::string summary;  // one line for `concur-lab list`
  std::function<void(const Options&, Report&)> run;
  Chapter chapter = Chapter::kKitchen;  // where the report tells it
  double expected_seconds = 30;         // full run; announced before it starts (--quick: /5)
};

// Experiments register themselves from their own file:
//   static const bool registered = concur::lab::register_experiment({...});
bool register_experiment(Experiment e);
const std::vector<Experiment>& experiments();

// The CPython an experiment compares with, or nullopt (with a note in the report) if unusable.
std::optional<support::Python> cpython_for(const Options& options, Report& report);

// `concur-lab __unguarded_demo MARKS` runs main() without main_guard() and starts a spawned
// child, appending one line to MARKS per run of main(): the fork-bomb hazard, contained.
inline constexpr const char* kUnguardedDemo = "__unguarded_demo";
int run_unguarded_demo(const std::string& marks_file);

// `concur-lab __c10k server-asyncio|server-threads|client ...` runs one of the c10k experiment's
// helper processes (an echo server, or the client that opens the connections); see
// lab/experiments/c10k.cpp.
inline constexpr const char* kC10kHelper = "__c10k";
int run_c10k_helper(int argc, char** argv);

// Where this program is (to run it again as a helper).
std::string self_path();

// Resident and proportional memory of a process, from /proc/<pid>/smaps_rollup.
struct MemoryUse {
  double rss_mib = 0;
  double pss_mib = 0;
  double private_mib = 0;  // private clean + private dirty: pages no other process shares
};
MemoryUse memory_of(int pid);

// The machine's load average over the last minute (/proc/loadavg), NaN if unknown; and a note
// saying it, for experiments whose figures other work on the machine slows down.
double load_average();
std::string load_note();

// "1.23 s", "456 ms", "7.8 us": a duration for people.
std::string format_seconds(double seconds);
std::string format_ratio(double x);  // "9.8x"

}  // namespace concur::lab
