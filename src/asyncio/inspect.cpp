// Reads another process's event loops and tasks through the anchor it carries
// (src/inspect/layout.hpp), through platform/remote_process.hpp (process_vm_readv on Linux). Every
// read may fail or see a list mid-change: nothing read is trusted beyond the bounds checked here,
// and the target is never written.
#include "concur/asyncio/inspect.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "concur/asyncio/detail/core.hpp"
#include "concur/errors.hpp"
#include "inspect/layout.hpp"
#include "platform/remote_process.hpp"

namespace concur::asyncio {

namespace {

using detail::InspectAnchor;
using detail::LocationLayout;

// More than this many loops, tasks or waiters is taken for a list read mid-change.
constexpr std::size_t kMaxLoops = 1024;
constexpr std::size_t kMaxWaitersPerTask = 1 << 20;
constexpr std::size_t kMaxText = 4096;  // a name, a file or a function
constexpr int kAttempts = 4;

[[noreturn]] void fail(int err, pid_t pid, const std::string& what) {
  const std::string who = "concur-ps: process " + std::to_string(pid);
  if (err == ESRCH || err == ENOENT) throw ProcessLookupError(ESRCH, who + ": no such process");
  if (err == EPERM || err == EACCES) {
    throw PermissionError(
        err, who + ": " + what +
                 ": not permitted. Reading another process's memory needs the rights of a "
                 "debugger: the same user, and where /proc/sys/kernel/yama/ptrace_scope is 1, "
                 "root (or CAP_SYS_PTRACE); another user's process cannot be read");
  }
  throw OSError(err, who + ": " + what);
}

class Remote {
 public:
  explicit Remote(pid_t pid) : pid_(pid) {}

  // Reads n bytes at addr; false when any of them cannot be read (unmapped: the list changed).
  bool read(std::uintptr_t addr, void* out, std::size_t n) const {
    if (addr == 0) return false;
    const long got = platform::read_process_memory(pid_, addr, out, n);
    if (got < 0) fail(errno, pid_, "cannot read its memory");
    return got == static_cast<long>(n);
  }
  template <class T>
  bool get(std::uintptr_t addr, T& out) const {
    return read(addr, &out, sizeof out);
  }
  std::uintptr_t pointer(std::uintptr_t addr, bool& ok) const {
    std::uintptr_t p = 0;
    ok = ok && get(addr, p);
    return p;
  }
  // A NUL-terminated string of at most kMaxText bytes, read a piece at a time (the piece may end
  // at a page the string does not reach).
  std::string c_string(std::uintptr_t addr, bool& ok) const {
    std::string out;
    char piece[64];
    while (ok && out.size() < kMaxText) {
      std::size_t n = sizeof piece;
      while (n > 0 && !read(addr + out.size(), piece, n)) n /= 2;
      if (n == 0) {
        ok = false;
        break;
      }
      const void* nul = std::memchr(piece, '\0', n);
      if (nul != nullptr) {
        out.append(piece, static_cast<const char*>(nul) - piece);
        return out;
      }
      out.append(piece, n);
    }
    return out;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

// The anchor's address: its magic in a writable file mapping (the data of the program or of a
// shared library), where its `self` field holds that very address.
std::uintptr_t find_anchor(const Remote& remote) {
  int error = 0;
  const std::vector<platform::MemoryRegion> regions =
      platform::writable_file_regions(remote.pid(), &error);
  if (error != 0) fail(error, remote.pid(), "cannot read its memory map");
  std::vector<char> chunk;
  for (const platform::MemoryRegion& region : regions) {
    constexpr std::size_t kChunk = 1 << 20;
    for (std::uintptr_t at = region.start; at < region.end; at += kChunk) {
      const std::size_t n = std::min<std::size_t>(kChunk + sizeof(InspectAnchor), region.end - at);
      chunk.resize(n);
      if (!remote.read(at, chunk.data(), n)) break;
      for (std::size_t i = 0; i + sizeof(InspectAnchor) <= n; i += alignof(InspectAnchor)) {
        if (std::memcmp(chunk.data() + i, detail::kInspectMagic, sizeof detail::kInspectMagic)) {
          continue;
        }
        InspectAnchor a;
        std::memcpy(&a, chunk.data() + i, sizeof a);
        if (reinterpret_cast<std::uintptr_t>(a.self) == at + i) return at + i;
      }
    }
  }
  throw RuntimeError("concur-ps: process " + std::to_string(remote.pid()) +
                     " has no concur anchor: it does not use concur's asyncio (concur::asyncio "
                     "linked in), or was built from a version whose layout this concur-ps "
                     "cannot read");
}

// A libstdc++-style std::string at addr (its layout learned by the target at start-up).
std::string std_string(const Remote& r, const InspectAnchor& a, std::uintptr_t addr, bool& ok) {
  if (a.string_data == ~0u || a.string_size == ~0u) return {};
  const std::uintptr_t data = r.pointer(addr + a.string_data, ok);
  std::uint64_t size = 0;
  ok = ok && r.get(addr + a.string_size, size);
  if (!ok || size > kMaxText) return {};
  std::string out(size, '\0');
  ok = ok && (size == 0 || r.read(data, out.data(), size));
  return out;
}

struct RemoteTask {
  std::uintptr_t address;
  TaskInfo info;
  std::uintptr_t done_head;
};

RemoteTask read_task(const Remote& r, const InspectAnchor& a, std::uintptr_t t,
                     std::uintptr_t current, std::int64_t now_ns, bool& ok) {
  RemoteTask out{t, {}, 0};
  TaskInfo& info = out.info;
  ok = ok && r.get(t + a.task_id, info.id);
  const std::uintptr_t extras = r.pointer(t + a.task_extras, ok);
  if (ok && extras != 0) info.name = std_string(r, a, extras + a.extras_name, ok);
  if (info.name.empty()) info.name = "Task-" + std::to_string(info.id);
  if (a.location_layout != LocationLayout::unknown) {
    std::uintptr_t fields = t + a.task_created_at;
    if (a.location_layout == LocationLayout::pointer_to_fields) fields = r.pointer(fields, ok);
    const std::uintptr_t file = r.pointer(fields + a.location_file, ok);
    const std::uintptr_t function = r.pointer(fields + a.location_function, ok);
    ok = ok && r.get(fields + a.location_line, info.created_line);
    if (ok && file != 0) info.created_file = r.c_string(file, ok);
    if (ok && function != 0) info.created_function = r.c_string(function, ok);
  }
  std::uint32_t created_ms = 0;
  ok = ok && r.get(t + a.task_created_ms, created_ms);
  info.age_in_seconds = detail::age_in_seconds(created_ms, now_ns);
  std::uint8_t phase = 0;
  ok = ok && r.get(t + a.task_phase, phase);
  const std::uintptr_t waiting = r.pointer(t + a.task_waiting, ok);
  out.done_head = r.pointer(t + a.task_done_head, ok);
  if (phase == a.phase_done) {
    info.state = TaskInfo::State::done;
  } else if (t == current) {
    info.state = TaskInfo::State::running;
  } else if (waiting != 0) {
    info.state = TaskInfo::State::waiting;
    const std::uintptr_t what = r.pointer(waiting + a.suspension_what, ok);
    const std::uintptr_t object = r.pointer(waiting + a.suspension_object, ok);
    info.awaiting = what != 0 ? r.c_string(what, ok) : "something unnamed";
    const bool timed = info.awaiting == detail::kSleep || info.awaiting == detail::kWait;
    if (timed && object != 0) {
      std::int64_t when = 0;
      std::uint32_t index = 0;
      ok = ok && r.get(object + a.timer_when, when) && r.get(object + a.timer_index, index);
      if (ok && index != a.timer_not_armed) {
        info.deadline_in_seconds = static_cast<double>(when - now_ns) / 1e9;
      }
    } else {
      info.object = object;
    }
  } else {
    info.state = TaskInfo::State::ready;
  }
  return out;
}

// One reading of one loop; false if it did not hold together.
bool read_loop(const Remote& r, const InspectAnchor& a, std::uintptr_t loop, LoopReport& report) {
  bool ok = true;
  report = LoopReport{};
  report.address = loop;
  std::int32_t tid = 0;
  std::uint64_t live = 0;
  ok = ok && r.get(loop + a.loop_thread, tid) && r.get(loop + a.loop_live_tasks, live);
  report.thread_id = tid;
  const std::uintptr_t current = r.pointer(loop + a.loop_current, ok);
  std::uintptr_t t = r.pointer(loop + a.loop_tasks_head, ok);
  const std::int64_t now = detail::monotonic_ns();
  std::vector<RemoteTask> tasks;
  while (ok && t != 0) {
    if (tasks.size() > live + 64) return false;  // longer than the count: read mid-change
    tasks.push_back(read_task(r, a, t, current, now, ok));
    t = r.pointer(t + a.task_all_next, ok);
  }
  if (!ok) return false;
  std::unordered_map<std::uintptr_t, std::size_t> index;
  for (std::size_t i = 0; i < tasks.size(); ++i) index.emplace(tasks[i].address, i);
  for (RemoteTask& task : tasks) {
    std::size_t n = 0;
    for (std::uintptr_t node = task.done_head; ok && node != 0; ++n) {
      if (n > kMaxWaitersPerTask) return false;
      const std::uintptr_t awaiter = r.pointer(node + a.node_awaiter, ok);
      auto it = index.find(awaiter);
      if (it != index.end()) tasks[it->second].info.awaiting_tasks.push_back(task.info.id);
      node = r.pointer(node + a.node_next, ok);
    }
  }
  if (!ok) return false;
  for (RemoteTask& task : tasks) {
    std::sort(task.info.awaiting_tasks.begin(), task.info.awaiting_tasks.end());
    report.tasks.push_back(std::move(task.info));
  }
  std::sort(report.tasks.begin(), report.tasks.end(),
            [](const TaskInfo& x, const TaskInfo& y) { return x.id < y.id; });
  return true;
}

// What a thread is doing, by the kernel's account; *busy: running or blocked outside a poll.
std::string thread_state(pid_t pid, int tid, bool* busy) {
  if (pid == ::getpid() && tid == platform::current_thread_id()) {
    // Reading ourselves: the kernel would show this very read; the thread is running.
    *busy = true;
    return "running";
  }
  const std::string activity = platform::thread_activity(pid, tid);
  *busy = activity == "running" || activity.rfind("in ", 0) == 0;
  if (activity == "polling") return "polling for I/O";
  if (activity.rfind("in ", 0) == 0) return "blocked " + activity;
  return activity;  // running, gone, unknown
}

// More queued tasks than this are counted as "at least" (a queue read mid-change can loop).
constexpr std::size_t kMaxCounted = 10'000'000;

// One reading of one thread pool; false if it did not hold together.
bool read_pool(const Remote& r, const InspectAnchor& a, std::uintptr_t pool,
               ThreadPoolReport& report) {
  bool ok = true;
  report = ThreadPoolReport{};
  report.address = pool;
  report.name = std_string(r, a, pool + a.pool_name, ok);
  std::uint64_t max_workers = 0, workers = 0;
  ok = ok && r.get(pool + a.pool_max_workers, max_workers) &&
       r.get(pool + a.pool_num_workers, workers);
  if (!ok || workers > max_workers || max_workers > (1u << 20)) return false;
  report.max_workers = max_workers;
  const std::uintptr_t array = r.pointer(pool + a.pool_workers, ok);
  for (std::uint64_t i = 0; ok && i < workers; ++i) {
    const std::uintptr_t w = r.pointer(array + i * sizeof(std::uintptr_t), ok);
    WorkerReport worker;
    std::int32_t tid = 0;
    std::uint8_t in_task = 0;
    std::int64_t top = 0, bottom = 0;
    ok = ok && r.get(w + a.worker_thread_id, tid) && r.get(w + a.worker_in_task, in_task) &&
         r.get(w + a.worker_deque_top, top) && r.get(w + a.worker_deque_bottom, bottom);
    worker.thread_id = tid;
    worker.in_task = in_task != 0;
    worker.queued = bottom > top ? static_cast<std::size_t>(bottom - top) : 0;
    report.queued += worker.queued;
    report.workers.push_back(worker);
  }
  // The queue from outside: from its consumer end along the tasks' links, the stub skipped.
  const std::uintptr_t stub = pool + a.pool_injector_stub;
  std::uintptr_t node = r.pointer(pool + a.pool_injector_tail, ok);
  for (std::size_t n = 0; ok && node != 0 && n < kMaxCounted; ++n) {
    if (node != stub) ++report.queued;
    node = r.pointer(node + a.task_next, ok);
  }
  return ok;
}

// One reading of one process pool; false if it did not hold together.
bool read_process_pool(const Remote& r, const InspectAnchor& a, std::uintptr_t pool,
                       ProcessPoolReport& report) {
  bool ok = true;
  report = ProcessPoolReport{};
  report.address = pool;
  std::uint64_t max_workers = 0, queued = 0;
  ok = ok && r.get(pool + a.ppool_max_workers, max_workers) && r.get(pool + a.ppool_queued, queued);
  if (!ok || max_workers > (1u << 20)) return false;
  report.max_workers = max_workers;
  report.queued = queued;
  std::uintptr_t link = r.pointer(pool + a.ppool_workers, ok);
  for (std::size_t n = 0; ok && link != 0; ++n) {
    if (n > 2 * max_workers + 64) return false;  // longer than a pool can be: read mid-change
    const std::uintptr_t w = r.pointer(link + a.link_self, ok);
    ProcessWorkerReport worker;
    std::int32_t pid = 0;
    std::uint64_t holding = 0;
    ok = ok && r.get(w + a.pworker_pid, pid) && r.get(w + a.pworker_in_flight, holding) &&
         r.get(w + a.pworker_sent, worker.sent);
    worker.pid = pid;
    worker.holding = holding;
    // The name is copied under a sequence count: keep a copy read while the count was even and
    // the same before and after (the pool's thread rewrites it at most once per task).
    char name[256];
    const std::size_t size = std::min<std::size_t>(a.pworker_running_size, sizeof name);
    for (int attempt = 0; ok && size > 0 && attempt < 100; ++attempt) {
      std::uint32_t before = 0, after = 0;
      ok = r.get(w + a.pworker_seq, before) && r.read(w + a.pworker_running, name, size) &&
           r.get(w + a.pworker_seq, after);
      if (ok && before == after && before % 2 == 0) {
        worker.running.assign(name, strnlen(name, size));
        break;
      }
    }
    report.workers.push_back(std::move(worker));
    link = r.pointer(link + a.link_next, ok);
  }
  return ok;
}

// One reading of one interpreter lock; false if it did not hold together.
bool read_lock(const Remote& r, const InspectAnchor& a, std::uintptr_t lock,
               InterpreterLockReport& report) {
  bool ok = true;
  report = InterpreterLockReport{};
  report.address = lock;
  std::int32_t policy = 0;
  bool steady = false;
  ok = ok && r.get(lock + a.lock_policy, policy) && r.get(lock + a.lock_steady_clock, steady);
  static const char* const kPolicies[] = {"cpython", "fifo", "io_priority"};
  report.policy = policy >= 0 && policy < 3 ? kPolicies[policy] : "unknown";
  const std::uintptr_t holder = r.pointer(lock + a.lock_holder, ok);
  const std::int64_t now = detail::monotonic_ns();
  std::uintptr_t link = r.pointer(lock + a.lock_threads, ok);
  for (std::size_t n = 0; ok && link != 0; ++n) {
    if (n > kMaxCounted) return false;
    const std::uintptr_t t = r.pointer(link + a.link_self, ok);
    bool exited = false, waiting = false;
    std::int32_t tid = 0;
    std::int64_t wait_start = 0;
    ok = ok && r.get(t + a.gil_thread_exited, exited) && r.get(t + a.gil_thread_tid, tid) &&
         r.get(t + a.gil_thread_waiting, waiting) && r.get(t + a.gil_thread_wait_start, wait_start);
    if (ok && !exited) {
      LockThreadReport thread;
      thread.thread_id = tid;
      thread.name = std_string(r, a, t + a.gil_thread_name, ok);
      thread.holding = t == holder;
      thread.waiting = waiting && !thread.holding;
      if (thread.waiting && steady) {
        thread.waited_seconds =
            static_cast<double>(std::max<std::int64_t>(0, now - wait_start)) / 1e9;
      }
      report.threads.push_back(std::move(thread));
    }
    link = r.pointer(link + a.link_next, ok);
  }
  // Oldest first: the list is kept newest first.
  std::reverse(report.threads.begin(), report.threads.end());
  return ok;
}

// One reading of every object of one of the anchor's lists of InspectLinks (thread pools,
// process pools, interpreter locks), each read by `read_one`; false if one did not hold together.
// `ok` turns false when the list itself cannot be followed.
template <class Report>
bool read_objects(const Remote& r, const InspectAnchor& a, std::uint64_t head,
                  bool (*read_one)(const Remote&, const InspectAnchor&, std::uintptr_t, Report&),
                  std::vector<Report>& out, bool& ok) {
  bool whole = true;
  std::size_t n = 0;
  for (std::uintptr_t link = head; ok && link != 0 && n < kMaxLoops; ++n) {
    Report report;
    const std::uintptr_t object = r.pointer(link + a.link_self, ok);
    whole = ok && read_one(r, a, object, report) && whole;
    out.push_back(std::move(report));
    link = r.pointer(link + a.link_next, ok);
  }
  return whole;
}

}  // namespace

ProcessReport inspect_process(pid_t pid) {
  const Remote remote(pid);
  const std::uintptr_t at = find_anchor(remote);
  ProcessReport report;
  report.pid = pid;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    InspectAnchor a;
    if (!remote.get(at, a)) continue;
    if (a.version != detail::kInspectVersion || a.size != sizeof(InspectAnchor)) {
      throw RuntimeError("concur-ps: process " + std::to_string(pid) +
                         " carries a concur anchor of layout version " + std::to_string(a.version) +
                         "; this concur-ps reads version " +
                         std::to_string(detail::kInspectVersion) +
                         ": use the concur-ps built with the program's concur");
    }
    report.loops.clear();
    report.thread_pools.clear();
    report.process_pools.clear();
    report.interpreter_locks.clear();
    bool whole = true;
    bool ok = true;
    std::size_t n = 0;
    for (std::uintptr_t loop = a.loops; ok && loop != 0 && n < kMaxLoops; ++n) {
      LoopReport loop_report;
      whole = read_loop(remote, a, loop, loop_report) && whole;
      report.loops.push_back(std::move(loop_report));
      loop = remote.pointer(loop + a.loop_next, ok);
    }
    whole = read_objects(remote, a, a.pools, read_pool, report.thread_pools, ok) && whole;
    whole = read_objects(remote, a, a.process_pools, read_process_pool, report.process_pools, ok) &&
            whole;
    whole = read_objects(remote, a, a.locks, read_lock, report.interpreter_locks, ok) && whole;
    whole = whole && ok;
    std::uint64_t generation = 0;
    if (whole && remote.get(at + offsetof(InspectAnchor, generation), generation) &&
        generation == a.generation) {
      break;
    }
    const bool last = attempt + 1 == kAttempts;
    for (LoopReport& l : report.loops) l.torn = last;
    for (ThreadPoolReport& p : report.thread_pools) p.torn = last;
    for (ProcessPoolReport& p : report.process_pools) p.torn = last;
    for (InterpreterLockReport& l : report.interpreter_locks) l.torn = last;
  }
  for (LoopReport& l : report.loops)
    l.thread_state = thread_state(pid, l.thread_id, &l.holding_the_loop);
  for (ThreadPoolReport& p : report.thread_pools) {
    for (WorkerReport& w : p.workers) {
      bool busy = false;
      w.thread_state = thread_state(pid, w.thread_id, &busy);
    }
  }
  for (ProcessPoolReport& p : report.process_pools) {
    for (ProcessWorkerReport& w : p.workers) {
      bool busy = false;
      w.process_state = thread_state(w.pid, w.pid, &busy);
    }
  }
  for (InterpreterLockReport& l : report.interpreter_locks) {
    for (LockThreadReport& t : l.threads) {
      bool busy = false;
      t.thread_state = thread_state(pid, t.thread_id, &busy);
    }
  }
  return report;
}

std::string format_process_report(const ProcessReport& report, bool tree) {
  auto plural = [](std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  auto hex = [](std::uintptr_t p) {
    char text[32];
    std::snprintf(text, sizeof text, "0x%jx", static_cast<std::uintmax_t>(p));
    return std::string(text);
  };
  std::string out = "process " + std::to_string(report.pid) + ": " +
                    plural(report.loops.size(), "event loop", "event loops") + ", " +
                    plural(report.thread_pools.size(), "thread pool", "thread pools");
  if (!report.process_pools.empty()) {
    out += ", " + plural(report.process_pools.size(), "process pool", "process pools");
  }
  if (!report.interpreter_locks.empty()) {
    out += ", " + plural(report.interpreter_locks.size(), "interpreter lock", "interpreter locks");
  }
  out += "\n";
  for (const LoopReport& l : report.loops) {
    out += "\nloop " + hex(l.address) + " on thread " + std::to_string(l.thread_id) + ": " +
           l.thread_state;
    if (l.holding_the_loop) out += " (not polling: a callback or task is holding the loop)";
    out += ", " + plural(l.tasks.size(), "task", "tasks");
    if (l.torn) out += " (the lists kept changing while read: this reading may be inconsistent)";
    out += "\n";
    if (!l.tasks.empty()) out += tree ? format_task_tree(l.tasks) : format_task_table(l.tasks);
  }
  for (const ThreadPoolReport& p : report.thread_pools) {
    const std::size_t running = static_cast<std::size_t>(std::count_if(
        p.workers.begin(), p.workers.end(), [](const WorkerReport& w) { return w.in_task; }));
    out += "\nthread pool " + p.name + " " + hex(p.address) + ": " +
           std::to_string(p.workers.size()) + " of " + std::to_string(p.max_workers) +
           " workers started, " + std::to_string(running) + " running a task, " +
           std::to_string(p.queued) + " queued";
    if (p.torn) out += " (its queues kept changing while read: this reading may be inconsistent)";
    out += "\n";
    for (const WorkerReport& w : p.workers) {
      out += "  thread " + std::to_string(w.thread_id) + ": " +
             (w.in_task ? "running a task" : "no task") + " (" + w.thread_state + ")";
      if (w.queued != 0) out += ", " + std::to_string(w.queued) + " in its own queue";
      out += "\n";
    }
  }
  for (const ProcessPoolReport& p : report.process_pools) {
    const std::size_t running = static_cast<std::size_t>(
        std::count_if(p.workers.begin(), p.workers.end(),
                      [](const ProcessWorkerReport& w) { return w.holding != 0; }));
    out += "\nprocess pool " + hex(p.address) + ": " + std::to_string(p.workers.size()) + " of " +
           std::to_string(p.max_workers) + " worker processes, " + std::to_string(running) +
           " running a task, " + std::to_string(p.queued) + " queued";
    if (p.torn) out += " (its lists kept changing while read: this reading may be inconsistent)";
    out += "\n";
    for (const ProcessWorkerReport& w : p.workers) {
      out += "  process " + std::to_string(w.pid) + ": ";
      if (w.holding == 0) {
        out += "no task";
      } else {
        out += "running " + (w.running.empty() ? std::string("a task") : w.running);
        if (w.holding > 1) out += ", " + std::to_string(w.holding - 1) + " more sent to it";
      }
      out += " (" + w.process_state + "), " + plural(w.sent, "task", "tasks") + " sent so far\n";
    }
  }
  for (const InterpreterLockReport& l : report.interpreter_locks) {
    const auto holder = std::find_if(l.threads.begin(), l.threads.end(),
                                     [](const LockThreadReport& t) { return t.holding; });
    const std::size_t waiting = static_cast<std::size_t>(std::count_if(
        l.threads.begin(), l.threads.end(), [](const LockThreadReport& t) { return t.waiting; }));
    out += "\ninterpreter lock " + hex(l.address) + " (" + l.policy + "): " +
           (holder != l.threads.end() ? "held by thread " + std::to_string(holder->thread_id)
                                      : std::string("free")) +
           ", " + std::to_string(waiting) + " waiting";
    if (l.torn) out += " (its threads kept changing while read: this reading may be inconsistent)";
    out += "\n";
    for (const LockThreadReport& t : l.threads) {
      out += "  thread " + std::to_string(t.thread_id) + " \"" + t.name + "\": ";
      if (t.holding) {
        out += "holds it";
      } else if (t.waiting) {
        out += "waiting for it";
        if (t.waited_seconds >= 0) {
          char text[48];
          std::snprintf(text, sizeof text, " for %.3f s", t.waited_seconds);
          out += text;
        }
      } else {
        out += "not holding it";
      }
      out += " (" + t.thread_state + ")\n";
    }
  }
  return out;
}

}  // namespace concur::asyncio
