// scale-out: do N separate kitchens, talking by radio, go N times faster?
//
// Claim (in our words): to make CPU-bound work N times faster, run it in N separate processes,
// each with its own lock, that send each other messages; past one machine those processes are
// the ranks of an MPI job, and the messages cross a network.
//
// Workload: the lab's CPU-bound loop (count_boxed, each share under its own rank's interpreter
// lock, as cpu-bound-processes runs it) split in K equal shares over K = 1, 2 and 4 worker ranks
// of concur's MpiPoolExecutor, one mpirun job per rank count (`mpirun -n K+1`: rank 0 hands out
// the shares, lab/scale_out_job.cpp); then, in the same job, the radio's cost: a tiny task's round
// trip one at a time, and the wall time per tiny task with thousands in flight. The full run's
// jobs run in rounds (1, 2, 4 ranks, then again), so that a slow spell of the machine falls on all
// of them alike; --quick starts one job per rank count that repeats the loop, to save the jobs'
// start-up. CPython does the same with mpi4py.futures.MPIPoolExecutor (`mpirun -n K+1 python3 -m
// mpi4py.futures`, lab/python/scale_out.py) when the interpreter can import it. This run's cores
// decide what can be judged: 4 ranks on 2 usable cores are oversubscribed, so their speed-up says
// nothing about the claim; their efficiency is shown, not judged. What the figures imply past one
// machine is docs/SCALING.md's model, not this experiment's.
//
// Verdict (scale_out.hpp): judged only where the no-lock control shows this run can compute in
// parallel, on CPython's figures when mpi4py.futures ran, else on concur's (and it says which),
// at the most ranks that have a usable core each: confirmed at kNearLinear efficiency with the
// round trip at most kSmallOverhead of a share, partly true from kSomeGain, refuted below. No MPI
// here (no mpirun, or concur-lab built without concur::mpi and no mpi4py): inconclusive, saying
// which.
#include "scale_out.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "cores.hpp"
#include "lab.hpp"
#include "progress.hpp"
#include "subprocess.hpp"
#include "svg.hpp"
#include "workload.hpp"

namespace concur::lab {
namespace scale_out {

std::vector<Threshold> thresholds() {
  return {{"near_linear", kNearLinear,
           "confirmed at this efficiency (speed-up per rank that has a core): \"4x faster\", less "
           "the cost of handing out the work"},
          {"some_gain", kSomeGain,
           "below this median speed-up the ranks did not run in parallel (the control's margin)"},
          {"small_overhead", kSmallOverhead,
           "confirmed only if one task's round trip is at most this share of a task: below the "
           "run-to-run spread, so the radio cannot show in the speed-up"},
          {"visible_share", kVisibleShare,
           "the verdict names the task length at which the round trip would be this share of the "
           "work"}};
}

namespace {

// "1 usable core", "2 usable cores".
std::string count_of(unsigned n, const std::string& thing) {
  return fmt::format("{} {}{}", n, thing, n == 1 ? "" : "s");
}

std::string percent(double share) {
  return share >= 0.01 ? fmt::format("{:.1f}%", share * 100) : fmt::format("{:.2g}%", share * 100);
}

// What the radio cost per task in run `r`, and the task length where it would be a tenth.
std::string radio_sentence(const RankRun& r) {
  const double trip = r.round_trip_s.median();
  return fmt::format(
      " The radio: one tiny task's round trip took {} (median), {} of one share's {} on its "
      "rank; with thousands in flight, {} per tiny task. The round trip would be {} of the work "
      "for tasks of {}.",
      format_seconds(trip), percent(Measurements::overhead_share(r)),
      format_seconds(r.task_s.median()), format_seconds(r.tiny_task_s.median()),
      percent(kVisibleShare), format_seconds(trip / kVisibleShare));
}

std::string beyond_cores(const Measurements& m) {
  std::string text;
  for (const RankRun& r : m.runs) {
    if (r.ranks <= static_cast<int>(m.control.usable_cores)) continue;
    text += fmt::format(
        " At {} ranks ({} processes with rank 0 on {}: oversubscribed) the loop ran {} as fast as "
        "on 1, efficiency {:.2f} against {}: shown, not judged.",
        r.ranks, r.ranks + 1, count_of(m.control.usable_cores, "usable core"),
        format_ratio(m.speedup(r)), m.efficiency(r),
        count_of(std::min<unsigned>(static_cast<unsigned>(r.ranks), m.control.usable_cores),
                 "core"));
  }
  return text;
}

}  // namespace

Judgement judge(const Measurements& m) {
  if (!m.unavailable.empty()) {
    return {Verdict::kInconclusive, "no MPI job could run here: " + m.unavailable};
  }
  if (!m.control.parallel_possible()) return inconclusive_without_parallelism(m.control);
  const RankRun* j = m.judged();
  if (j == nullptr || m.runs.empty() || m.runs.front().ranks != 1) {
    return {Verdict::kInconclusive,
            fmt::format("no run had both a 1-rank baseline and 2 or more ranks within the {}, "
                        "so no speed-up can be judged",
                        count_of(m.control.usable_cores, "usable core"))};
  }
  const RankRun& one = m.runs.front();
  const double speedup = m.speedup(*j);
  const double efficiency = m.efficiency(*j);
  const double share = Measurements::overhead_share(*j);
  const std::string numbers =
      fmt::format(
          "With {}, {} worker ranks ran the loop {} as fast as 1 (median; {} vs {}): efficiency "
          "{:.2f} on the {} this run may use.",
          m.from_cpython ? "mpi4py.futures (" + m.who + ")"
                         : "concur's MpiPoolExecutor (CPython was not measured)",
          j->ranks, format_ratio(speedup), j->wall_s.describe_seconds(),
          one.wall_s.describe_seconds(), efficiency, count_of(m.control.usable_cores, "core")) +
      radio_sentence(*j);
  const std::string beyond = beyond_cores(m);
  if (speedup < kSomeGain) {
    return {Verdict::kRefuted, numbers + " The ranks did not speed the loop up." + beyond};
  }
  if (efficiency >= kNearLinear && share <= kSmallOverhead) {
    return {Verdict::kConfirmed, numbers + beyond};
  }
  if (efficiency < kNearLinear && share <= kSmallOverhead) {
    // Where the time went instead: into the shares themselves (each ran slower than its part of
    // the 1-rank run: the ranks did not have a core each), or between them.
    const double slower =
        j->task_s.median() / (one.task_s.median() / static_cast<double>(j->ranks));
    const std::string where =
        slower >= kSomeGain
            ? fmt::format(
                  "each share took {} as long as its part of the 1-rank run: the ranks "
                  "did not have a core each",
                  format_ratio(slower))
            : fmt::format(
                  "each share took {} as long as its part of the 1-rank run, and the "
                  "wall time ({}) exceeded a share's ({}): the time went outside the "
                  "shares",
                  format_ratio(slower), format_seconds(j->wall_s.median()),
                  format_seconds(j->task_s.median()));
    return {Verdict::kPartlyTrue,
            numbers +
                fmt::format(" Faster, but short of one core per rank ({:.2f} < {:.2f}), and not "
                            "for the radio's cost: {}.",
                            efficiency, kNearLinear, where) +
                beyond};
  }
  return {Verdict::kPartlyTrue,
          numbers +
              fmt::format(" Faster, but the radio takes a visible share: the round trip is "
                          "{} of a task, above {}.",
                          percent(share), percent(kSmallOverhead)) +
              beyond};
}

}  // namespace scale_out

namespace {

using Clock = std::chrono::steady_clock;
using scale_out::Measurements;
using scale_out::RankRun;
using json = nlohmann::json;

constexpr int kRankCounts[] = {1, 2, 4};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The end of a failed job's stderr, on one line: what mpirun or the program said last.
std::string last_words(const std::string& err) {
  std::string flat;
  for (char c : err) {
    if (c == '\n' || c == '\t') c = ' ';
    if (c == ' ' && !flat.empty() && flat.back() == ' ') continue;
    if (c == '-' && !flat.empty() && flat.back() == '-') continue;  // Open MPI's rules
    flat += c;
  }
  while (!flat.empty() && (flat.back() == ' ' || flat.back() == '-')) flat.pop_back();
  return flat.size() > 400 ? "..." + flat.substr(flat.size() - 400) : flat;
}

struct Job {
  std::optional<json> result;
  std::string failure;  // when result is empty: the exit status and the last words
  std::string err;      // all it wrote to stderr
};

Job run_job(const std::vector<std::string>& argv) {
  const support::CommandResult r = support::run_command(argv, std::chrono::seconds(120));
  Job job;
  job.err = r.err;
  if (r.timed_out) {
    job.failure = "the job ran past 120 s and was stopped";
  } else if (r.exit_code != 0) {
    job.failure = fmt::format("exit {}: {}", r.exit_code, last_words(r.err));
  } else {
    try {
      job.result = json::parse(r.out);
    } catch (const std::exception& e) {
      job.failure = fmt::format("it printed something that is not JSON ({}): {}", e.what(),
                                r.out.substr(0, 200));
    }
  }
  return job;
}

// `mpirun -n K+1 ...`, as the repository's MPI tests run it, with binding off: Open MPI pins
// each rank to a core of its own when ranks <= cores, even outside this run's affinity mask (it
// escapes `taskset -c 0`); unbound, the ranks run where this run may run, as every other
// experiment's processes do.
std::vector<std::string> mpirun_argv(const std::string& mpirun, int ranks) {
  std::vector<std::string> argv{mpirun,      "-n",  std::to_string(ranks + 1), "--oversubscribe",
                                "--bind-to", "none"};
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  return argv;
}

// One side (concur or CPython): its rank counts' figures as the rounds fill them in.
struct Side {
  std::string who;
  std::string skipped;  // why this side did not run (or stopped after its first job)
  std::vector<RankRun> runs;
  long work = 0;
};

void add_job(Side& side, std::size_t index, const json& j, Report& report) {
  RankRun& run = side.runs[index];
  report.check(j.at("ranks").get<int>() == run.ranks, side.who + ": the job had the ranks asked");
  report.check(j.at("work").get<long>() == side.work, side.who + ": the job did all the work");
  for (const auto& v : j.at("wall_s")) run.wall_s.values.push_back(v.get<double>());
  for (const auto& v : j.at("task_s")) run.task_s.values.push_back(v.get<double>());
  Sample trips;
  for (const auto& v : j.at("round_trip_s")) trips.values.push_back(v.get<double>());
  run.round_trip_s.values.push_back(trips.median());
  run.tiny_task_s.values.push_back(j.at("tiny_s").get<double>() / j.at("tiny_tasks").get<double>());
}

// Runs one job of `side`; a job that fails before any figure of that side is in marks the side
// skipped (MPI cannot run it here); one that fails later, or reports a wrong answer, fails the
// experiment.
void run_side_job(Side& side, std::size_t index, const std::vector<std::string>& argv,
                  Report& report, const std::string& wrong_answer_marker) {
  if (!side.skipped.empty()) return;
  const Job job = run_job(argv);
  if (job.result) {
    add_job(side, index, *job.result, report);
    return;
  }
  // The program's own complaint, wherever it is among Open MPI's messages.
  if (const auto at = job.err.find(wrong_answer_marker); at != std::string::npos) {
    const auto line_start = job.err.rfind('\n', at);
    const auto begin = line_start == std::string::npos ? 0 : line_start + 1;
    report.check(false, side.who + "'s job found a wrong answer: " +
                            job.err.substr(begin, job.err.find('\n', at) - begin));
  }
  const bool first = std::all_of(side.runs.begin(), side.runs.end(),
                                 [](const RankRun& r) { return r.wall_s.values.empty(); });
  if (!first) throw std::runtime_error(side.who + "'s MPI job failed: " + job.failure);
  side.skipped = fmt::format("`mpirun -n {}` failed ({})", side.runs[index].ranks + 1, job.failure);
}

std::string ranks_label(int ranks, unsigned cores) {
  return ranks <= static_cast<int>(cores) ? std::to_string(ranks)
                                          : fmt::format("{} (oversubscribed)", ranks);
}

void run(const Options& options, Report& report) {
  progress::phase("concur and MPI");
  report.claim(
      "To make CPU-bound work N times faster, run it in N separate processes, each with its own "
      "lock, that send each other messages; past one machine those processes are the ranks of an "
      "MPI job, talking over the network.",
      "communicate via radio");
  const ParallelControl& control = parallel_control(options);
  report_control(report, control);
  const unsigned cores = control.usable_cores;
  // The full run starts one job per rank count and round, the rank counts interleaved, so that
  // a slow spell of the machine falls on all of them alike; --quick saves the jobs' start-up (a
  // fraction of a second each) with one job per rank count that repeats the loop.
  const int rounds = options.quick ? 1 : repetitions(options);
  const int repeat = options.quick ? repetitions(options) : 1;
  const double target = options.quick ? 0.2 : 0.6;  // seconds of the loop on 1 rank

  Side concur{"concur", "", {}, 0};
  Side cpython{"CPython", "", {}, 0};
  for (int k : kRankCounts) {
    RankRun run;
    run.ranks = k;
    concur.runs.push_back(run);
    cpython.runs.push_back(run);
  }

  const std::optional<std::string> mpirun = support::find_program("mpirun")
                                                ? support::find_program("mpirun")
                                                : support::find_program("mpiexec");
  const std::string job_program =
      (std::filesystem::path(self_path()).parent_path() / "concur-lab-mpi").string();
  if (!mpirun) {
    concur.skipped = cpython.skipped =
        "no mpirun or mpiexec on PATH (Debian: apt-get install openmpi-bin)";
  } else if (access(job_program.c_str(), X_OK) != 0) {
    concur.skipped =
        "concur-lab was built without MPI: no concur-lab-mpi beside it (Debian: apt-get install "
        "libopenmpi-dev openmpi-bin, then configure and build again)";
  }
  if (concur.skipped.empty()) {
    long work = 200'000;
    const auto t0 = Clock::now();
    model::count_boxed(work, nullptr);
    work = std::max<long>(
        4000, static_cast<long>(static_cast<double>(work) * target / seconds_since(t0)));
    concur.work = work / 4 * 4;  // shares of equal length on 1, 2 and 4 ranks
  }

  std::optional<support::Python> python;
  if (mpirun) python = cpython_for(options, report);
  if (!python) {
    if (cpython.skipped.empty()) cpython.skipped = "no CPython to run (see the note)";
  } else if (!python->has_module("mpi4py.futures")) {
    cpython.skipped =
        fmt::format("{} cannot import mpi4py.futures (Debian: apt-get install python3-mpi4py)",
                    python->interpreter());
  } else {
    const json c = python->run_json("scale_out.py", {"--calibrate", fmt::format("{}", target)},
                                    std::chrono::seconds(60));
    cpython.who = fmt::format("CPython {}, mpi4py {}", c.at("version").get<std::string>(),
                              c.at("mpi4py").get<std::string>());
    cpython.work = c.at("work").get<long>() / 4 * 4;
  }

  const long concur_trips = options.quick ? 200 : 1000;
  const long concur_tiny = options.quick ? 20'000 : 50'000;
  const long python_trips = options.quick ? 100 : 200;
  const long python_tiny = options.quick ? 500 : 1000;
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < std::size(kRankCounts); ++i) {
      const int k = kRankCounts[i];
      if (concur.skipped.empty()) {
        progress::phase(fmt::format("concur's MpiPoolExecutor, {} rank{}", k, k == 1 ? "" : "s"));
        if (rounds > 1) progress::repetition(round + 1, rounds);
        std::vector<std::string> argv = mpirun_argv(*mpirun, k);
        argv.insert(argv.end(), {job_program, "--work", std::to_string(concur.work), "--repeat",
                                 std::to_string(repeat), "--tiny", std::to_string(concur_tiny),
                                 "--round-trips", std::to_string(concur_trips)});
        run_side_job(concur, i, argv, report, "concur-lab-mpi:");
      }
      if (cpython.skipped.empty()) {
        progress::phase(fmt::format("mpi4py.futures, {} rank{}", k, k == 1 ? "" : "s"));
        if (rounds > 1) progress::repetition(round + 1, rounds);
        std::vector<std::string> argv = mpirun_argv(*mpirun, k);
        argv.insert(argv.end(),
                    {python->interpreter(), "-m", "mpi4py.futures",
                     support::Python::find_script("scale_out.py"), "--work",
                     std::to_string(cpython.work), "--repeat", std::to_string(repeat), "--tiny",
                     std::to_string(python_tiny), "--round-trips", std::to_string(python_trips)});
        run_side_job(cpython, i, argv, report, "AssertionError");
      }
    }
  }

  Table table{fmt::format("The CPU-bound loop split over worker ranks, one share each, {} "
                          "(medians of {} runs: {}; range in brackets)",
                          scale_out::count_of(cores, "usable core"), rounds * repeat,
                          rounds > 1 ? "one mpirun job per rank count and round, interleaved"
                                     : "one mpirun job per rank count, repeating the loop"),
              {"who", "worker ranks", "steps", "wall time", "speed-up", "efficiency",
               "one share on its rank"},
              {}};
  Table radio{
      "The radio: what a task costs on its way through the pool (medians of each job's "
      "figure)",
      {"who", "worker ranks", "tiny task round trip", "per tiny task, thousands in flight",
       "tiny tasks per second"},
      {}};
  std::vector<svg::Bar> speedup_bars;
  std::vector<svg::Bar> radio_bars;
  int kind = 0;
  for (Side* side : {&concur, &cpython}) {
    if (!side->skipped.empty()) {
      table.rows.push_back({side == &concur ? "concur" : "CPython mpi4py.futures",
                            "skipped: " + side->skipped, "-", "-", "-", "-", "-"});
      report.note((side == &concur ? "concur's side skipped: " : "mpi4py.futures skipped: ") +
                  side->skipped);
      continue;
    }
    Measurements m{control, "", side == &cpython, side->who, side->runs};
    const std::string name = side == &concur ? "concur" : "mpi4py";
    for (const RankRun& r : side->runs) {
      table.rows.push_back({side->who, ranks_label(r.ranks, cores), std::to_string(side->work),
                            r.wall_s.describe_seconds(), format_ratio(m.speedup(r)),
                            fmt::format("{:.2f}", m.efficiency(r)), r.task_s.describe_seconds()});
      radio.rows.push_back({side->who, ranks_label(r.ranks, cores),
                            format_seconds(r.round_trip_s.median()),
                            format_seconds(r.tiny_task_s.median()),
                            fmt::format("{:.0f}", 1 / r.tiny_task_s.median())});
      report.measured(fmt::format("{}_speedup_{}_ranks", name, r.ranks), m.speedup(r), "x");
      report.measured(fmt::format("{}_efficiency_{}_ranks", name, r.ranks), m.efficiency(r), "");
      speedup_bars.push_back(
          {fmt::format("{}, {} rank{}{}", name, r.ranks, r.ranks == 1 ? "" : "s",
                       r.ranks > static_cast<int>(cores) ? " (oversubscribed)" : ""),
           m.speedup(r), kind});
    }
    const RankRun& within = m.judged() ? *m.judged() : side->runs.front();
    report.measured(name + "_round_trip_us", within.round_trip_s.median() * 1e6, "us");
    report.measured(name + "_tiny_task_us", within.tiny_task_s.median() * 1e6, "us");
    radio_bars.push_back(
        {name + ", tiny task round trip", within.round_trip_s.median() * 1e6, kind});
    radio_bars.push_back({name + ", per tiny task, thousands in flight",
                          within.tiny_task_s.median() * 1e6, kind + 1});
    kind += 2;
  }
  report.table(std::move(table));
  if (!radio.rows.empty()) report.table(std::move(radio));

  Measurements subject{control, "", false, "concur", concur.runs};
  if (cpython.skipped.empty()) {
    subject = {control, "", true, cpython.who, cpython.runs};
  } else if (!concur.skipped.empty()) {
    subject.unavailable = concur.skipped == cpython.skipped ? concur.skipped
                                                            : "concur's side: " + concur.skipped +
                                                                  "; CPython's: " + cpython.skipped;
  }
  if (subject.unavailable.empty()) {
    report.figure({"scale-out.svg",
                   "Speed-up of the loop on 1, 2 and 4 worker ranks over 1 rank of the same "
                   "pool (medians): longer is faster. The line marks the usable cores, the most "
                   "any number of ranks can give here.",
                   svg::bars("CPU-bound loop over MPI ranks: speed-up", "x", speedup_bars,
                             static_cast<double>(cores), "usable cores")});
    report.figure({"scale-out-radio.svg",
                   "What one tiny task costs through each pool (medians), at the most ranks "
                   "with a core each: shorter is cheaper.",
                   svg::bars("The radio: cost per tiny task", "us", radio_bars)});
    report.note(fmt::format(
        "Each job: `{} -n K+1 --oversubscribe --bind-to none{} ...`, K = 1, 2 or 4 worker ranks "
        "plus rank 0, which hands out the shares and otherwise waits. More worker ranks than the "
        "{} share them (oversubscribed): their speed-up is not judged. The ranks talk through Open "
        "MPI's "
        "shared memory on one machine; a network between machines adds its latency to every "
        "message: docs/SCALING.md models throughput up to 1,000 nodes from these costs.",
        *mpirun, geteuid() == 0 ? " --allow-run-as-root" : "",
        scale_out::count_of(cores, "usable core")));
  } else {
    // No rank ran: the chart shows what this run could measure, the control alone.
    report.figure(
        {"scale-out.svg",
         "No MPI job could run here (see the verdict): the no-lock control alone, the speed-up "
         "the ranks would have been held against. The line marks the usable cores.",
         svg::bars("No-lock control (no MPI here)", "x",
                   {{"1 thread", 1.0, 0},
                    {fmt::format("{} threads", control.threads), control.speedup(), 1}},
                   static_cast<double>(cores), "usable cores")});
  }
  report.note(load_note());
  for (const Threshold& t : scale_out::thresholds()) report.threshold(t);
  report.verdict(scale_out::judge(subject),
                 subject.from_cpython ? Source::kCPython : Source::kConcurModel);
}

const bool registered = register_experiment(
    {"scale-out", "CPU-bound loop over 1, 2, 4 MPI ranks, and the per-task cost of the radio", run,
     Chapter::kCpuBound, 35});

}  // namespace
}  // namespace concur::lab
