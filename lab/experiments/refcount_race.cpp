// refcount-race: why does CPython have a GIL at all?
//
// Claim (in our words): reference counts are plain integers; if two threads change one at the
// same moment an update is lost, the count ends too low, the object is freed while a thread still
// uses it, and the process crashes. The GIL prevents that by letting one thread run at a time,
// which costs all CPU parallelism.
//
// Workload: threads (at least 2, one per core) each take a reference to one of kObjects shared
// objects (all threads the same one at a time), use it, and drop it, `rounds` times, with the
// counts kept four ways (lab/model/objects.hpp): plain with no lock, plain under concur's
// InterpreterLock, atomic, and biased (PEP 703, the free-threaded CPython's scheme). Freed objects
// are poisoned, so a use after free is counted instead of crashing. Each object starts with one
// reference held by the experiment, so every count should end at exactly 1 and nothing should be
// freed. The unlocked run is repeated (up to kMaxAttempts) until it frees an object in use, since a
// collision of two cores is a matter of luck. Then the race again with both threads pinned to one
// CPU (sched_setaffinity): no two cores, yet the scheduler can preempt a thread between the load
// and the store of a plain count, and the other thread's updates in between are lost when it
// resumes. Then the cost of one incref+decref pair in each mode, on one thread.
//
// These are concur's model objects, not CPython's: the verdict says "concur's model". (A plain
// count is a separate load and store here, as in CPython 3.12+'s Py_INCREF, which skips immortal
// objects; a single x86 `add` to memory cannot be split by preemption, only by a second core.)
//
// Verdict (refcount_race.hpp): refuted when the lock, atomic or biased counting lost an update;
// confirmed when plain counting without a lock lost updates and freed objects still in use;
// partly true when updates were lost but no object was freed early; inconclusive when nothing was
// lost. The cost table says what the alternatives to a global lock cost per reference change.
#include <fmt/format.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include <concur/gil.hpp>

#include "cores.hpp"
#include "lab.hpp"
#include "objects.hpp"
#include "progress.hpp"
#include "refcount_race.hpp"
#include "svg.hpp"

namespace concur::lab {
namespace refcount_race {

std::vector<Threshold> thresholds() {
  return {{"any_loss", static_cast<double>(kAnyLoss),
           "one lost update is the race; no margin is needed for a count that must be exact"}};
}

Judgement judge(const Measurements& m) {
  if (m.locked_lost > 0 || m.others_lost > 0) {
    return {Verdict::kRefuted,
            fmt::format("Counting under the lock lost {} updates, atomic and biased counting {}: "
                        "the lock did not prevent the race.",
                        m.locked_lost, m.others_lost)};
  }
  std::string numbers = fmt::format(
      "In concur's model of reference counting (not CPython's objects), plain counts without a "
      "lock lost {} updates with the threads on every usable core, freeing {} objects still held "
      "and using a freed object {} times; ",
      m.all_cores.lost_updates, m.all_cores.freed_early, m.all_cores.use_after_free);
  numbers += m.one_core_cpu < 0
                 ? "the one-core run could not pin its threads. "
                 : fmt::format(
                       "with both threads pinned to CPU {}, preemption between a load and "
                       "its store lost {} updates and freed {} objects still held. ",
                       m.one_core_cpu, m.one_core.lost_updates, m.one_core.freed_early);
  numbers += "Under the lock, and with atomic or biased counting, nothing was lost.";
  const long lost = m.all_cores.lost_updates + m.one_core.lost_updates;
  const long freed = m.all_cores.freed_early + m.all_cores.use_after_free + m.one_core.freed_early +
                     m.one_core.use_after_free;
  if (lost < kAnyLoss) {
    return {Verdict::kInconclusive, numbers + " No update was lost in this run's budget."};
  }
  if (freed > 0) {
    return {Verdict::kConfirmed,
            numbers +
                " The race is real and the lock prevents it; a global lock is not the "
                "only cure: the free-threaded build counts the biased way."};
  }
  return {Verdict::kPartlyTrue,
          numbers + " Updates were lost, but no object was freed while in use in this run."};
}

}  // namespace refcount_race

namespace {

constexpr int kObjects = 4;
constexpr int kMaxAttempts = 10;

using Clock = std::chrono::steady_clock;
using model::Faults;
using model::Heap;
using model::Object;
using model::RefcountMode;

struct Outcome {
  std::string label;
  long lost_updates = 0;  // sum over objects of |count - 1| at the end (freed ones count 1)
  long freed_early = 0;   // objects freed although the experiment still held a reference
  long use_after_free = 0;
  double ns_per_change = 0;
};

Outcome race(const std::string& label, RefcountMode mode, bool with_lock, int threads,
             long rounds) {
  Faults faults;
  Heap heap(mode, &faults);
  std::vector<Object*> objects;
  for (int i = 0; i < kObjects; ++i) objects.push_back(heap.make(i));
  InterpreterLock gil({.switch_interval = std::chrono::microseconds(100)});
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      if (with_lock) gil.acquire();
      for (long r = 0; r < rounds; ++r) {
        Object* o = objects[static_cast<std::size_t>(r % kObjects)];  // all threads, same object
        model::incref(o);
        model::use(o, &faults);
        model::decref(o, &faults);
        if (with_lock) gil.checkpoint();
      }
      if (with_lock) gil.release();
    });
  }
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  Outcome out{label};
  for (Object* o : objects) {
    if (o->magic.load() != Object::kAlive) {
      ++out.freed_early;
      ++out.lost_updates;
    } else {
      out.lost_updates += std::labs(model::refcount(o) - 1);
    }
  }
  out.use_after_free = faults.use_after_free.load();
  out.ns_per_change = seconds * 1e9 / (2.0 * static_cast<double>(rounds) * threads);
  return out;
}

// The first CPU of this process's affinity mask, or -1.
int first_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) return c;
  }
  return -1;
}

// Two threads pinned to `cpu`, racing on plain counts for `seconds`: only preemption can split a
// load from its store. Returns the damage, or nullopt if a thread could not be pinned.
std::optional<Outcome> race_on_one_cpu(int cpu, double seconds) {
  Faults faults;
  Heap heap(RefcountMode::plain, &faults);
  std::vector<Object*> objects;
  for (int i = 0; i < kObjects; ++i) objects.push_back(heap.make(i));
  std::atomic<bool> stop{false};
  std::atomic<int> pinned{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 2; ++t) {
    pool.emplace_back([&] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      if (sched_setaffinity(0, sizeof one, &one) != 0) return;  // 0: the calling thread
      ++pinned;
      for (long r = 0; !stop.load(std::memory_order_relaxed); ++r) {
        Object* o = objects[static_cast<std::size_t>(r % kObjects)];
        model::incref(o);
        model::use(o, &faults);
        model::decref(o, &faults);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  if (pinned.load() != 2) return std::nullopt;
  Outcome out{"plain, no lock, one CPU"};
  for (Object* o : objects) {
    if (o->magic.load() != Object::kAlive) {
      ++out.freed_early;
      ++out.lost_updates;
    } else {
      out.lost_updates += std::labs(model::refcount(o) - 1);
    }
  }
  out.use_after_free = faults.use_after_free.load();
  return out;
}

double single_thread_ns(RefcountMode mode, bool from_owner) {
  Heap heap(mode);
  Object* o = heap.make(1);
  constexpr long kPairs = 2'000'000;
  double ns = 0;
  auto body = [&] {
    const auto t0 = Clock::now();
    for (long i = 0; i < kPairs; ++i) {
      model::incref(o);
      model::decref(o, nullptr);
    }
    ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / (2.0 * kPairs);
  };
  if (from_owner) {
    body();
  } else {
    std::thread other(body);
    other.join();
  }
  return ns;
}

void run(const Options& options, Report& report) {
  progress::phase("concur and C++");
  report.claim(
      "Reference counts are plain integers: two threads changing one at the same moment lose an "
      "update, the count ends too low, an object still in use is freed and the process crashes. "
      "The GIL prevents it by letting one thread run at a time, at the cost of all CPU "
      "parallelism. Shown with concur's model of reference counts, not CPython's objects; and "
      "not only on two cores: preemption on one core loses updates too.",
      "the CPU drops one of the edits");
  const int threads = std::max(2, static_cast<int>(support::usable_cores()));
  const long rounds = options.quick ? 300'000 : 3'000'000;

  // A lost update needs two cores in the same nanosecond: repeat the unlocked run (fresh objects
  // each time) until it has freed an object still in use, or the budget is spent.
  Outcome unlocked = race("plain, no lock", RefcountMode::plain, false, threads, rounds);
  int attempts = 1;
  for (; attempts < kMaxAttempts && unlocked.freed_early == 0; ++attempts) {
    const Outcome again = race("plain, no lock", RefcountMode::plain, false, threads, rounds);
    unlocked.lost_updates += again.lost_updates;
    unlocked.freed_early += again.freed_early;
    unlocked.use_after_free += again.use_after_free;
  }
  unlocked.label = fmt::format("plain, no lock ({} run{})", attempts, attempts == 1 ? "" : "s");
  std::vector<Outcome> outcomes{
      unlocked,
      race("plain, under the InterpreterLock", RefcountMode::plain, true, threads, rounds),
      race("atomic", RefcountMode::atomic, false, threads, rounds),
      race("biased (PEP 703)", RefcountMode::biased, false, threads, rounds)};
  Table races{fmt::format("{} threads x {} reference changes on {} shared objects", threads,
                          2 * rounds, kObjects),
              {"counting", "updates lost", "objects freed while held", "uses after free",
               "ns per change (contended)"},
              {}};
  for (const Outcome& o : outcomes) {
    races.rows.push_back({o.label, std::to_string(o.lost_updates), std::to_string(o.freed_early),
                          std::to_string(o.use_after_free),
                          fmt::format("{:.1f}", o.ns_per_change)});
  }
  // One core: keep racing (fresh objects each time) until an update is lost or the budget is
  // spent; preemption lands between a load and its store only now and then.
  const int cpu = first_allowed_cpu();
  refcount_race::Race one_core;
  int one_core_attempts = 0;
  bool pinned = cpu >= 0;
  double one_core_seconds = 0;
  const double slice = options.quick ? 0.5 : 1.0;
  for (; pinned && one_core_attempts < (options.quick ? 4 : 6) && one_core.lost_updates == 0;
       ++one_core_attempts) {
    const auto o = race_on_one_cpu(cpu, slice);
    if (!o) {
      pinned = false;
      break;
    }
    one_core_seconds += slice;
    one_core.lost_updates += o->lost_updates;
    one_core.freed_early += o->freed_early;
    one_core.use_after_free += o->use_after_free;
  }
  if (pinned) {
    races.rows.push_back(
        {fmt::format("plain, no lock, both threads pinned to CPU {} ({} of racing)", cpu,
                     format_seconds(one_core_seconds)),
         std::to_string(one_core.lost_updates), std::to_string(one_core.freed_early),
         std::to_string(one_core.use_after_free), "-"});
  } else {
    report.note("The one-core race was skipped: sched_setaffinity refused to pin its threads.");
  }
  report.measured("plain_one_cpu_lost_updates", static_cast<double>(one_core.lost_updates), "");
  report.table(std::move(races));
  report.figure(
      {"refcount-race-lost.svg",
       "Reference-count updates lost, by how the counts were kept (0 is right).",
       svg::bars("Updates lost on shared reference counts", "updates",
                 {{"plain, no lock, all cores", static_cast<double>(outcomes[0].lost_updates), 3},
                  {"plain, no lock, one CPU", static_cast<double>(one_core.lost_updates), 3},
                  {"plain, under the lock", static_cast<double>(outcomes[1].lost_updates), 0},
                  {"atomic", static_cast<double>(outcomes[2].lost_updates), 1},
                  {"biased", static_cast<double>(outcomes[3].lost_updates), 2}})});

  const double plain = single_thread_ns(RefcountMode::plain, true);
  const double atomic = single_thread_ns(RefcountMode::atomic, true);
  const double biased_owner = single_thread_ns(RefcountMode::biased, true);
  const double biased_other = single_thread_ns(RefcountMode::biased, false);
  report.table({"The cost of one reference change on one thread (no contention)",
                {"counting", "ns per change", "vs plain"},
                {{"plain (what the GIL makes safe)", fmt::format("{:.2f}", plain), "1.00x"},
                 {"atomic", fmt::format("{:.2f}", atomic), format_ratio(atomic / plain)},
                 {"biased, owner thread", fmt::format("{:.2f}", biased_owner),
                  format_ratio(biased_owner / plain)},
                 {"biased, other thread", fmt::format("{:.2f}", biased_other),
                  format_ratio(biased_other / plain)}}});
  report.measured("plain_no_lock_lost_updates", static_cast<double>(outcomes[0].lost_updates), "");
  report.measured("plain_no_lock_use_after_free", static_cast<double>(outcomes[0].use_after_free),
                  "");
  report.measured("atomic_cost_ratio", atomic / plain, "x");
  report.figure({"refcount-race.svg", "Cost of one reference change on one thread.",
                 svg::bars("Reference counting: cost per change", "ns",
                           {{"plain", plain, 0},
                            {"atomic", atomic, 1},
                            {"biased, owner", biased_owner, 2},
                            {"biased, other thread", biased_other, 3}})});

  const Outcome& racy = outcomes[0];
  refcount_race::Measurements m;
  m.all_cores = {racy.lost_updates, racy.freed_early, racy.use_after_free};
  m.one_core = one_core;
  m.locked_lost = outcomes[1].lost_updates + outcomes[1].use_after_free;
  m.others_lost = outcomes[2].lost_updates + outcomes[3].lost_updates + outcomes[2].use_after_free +
                  outcomes[3].use_after_free;
  m.one_core_cpu = pinned ? cpu : -1;
  for (const Threshold& t : refcount_race::thresholds()) report.threshold(t);
  Judgement j = refcount_race::judge(m);
  j.because += fmt::format(
      " Atomic counting costs {} a plain change on one thread; biased counting keeps the owner "
      "at {}.",
      format_ratio(atomic / plain), format_ratio(biased_owner / plain));
  report.verdict(j, Source::kConcurModel);
}

const bool registered = register_experiment(
    {"refcount-race", "shared refcounts without a lock (2 cores, then 1), under it, atomic, biased",
     run, Chapter::kWhyTheLock, 10});

}  // namespace
}  // namespace concur::lab
