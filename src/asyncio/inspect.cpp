// Reads another process's event loops and tasks through the anchor it carries
// (inspect_layout.hpp), through platform/remote_process.hpp (process_vm_readv on Linux). Every read
// may fail or see a list mid-change: nothing read is trusted beyond the bounds checked here, and
// the target is never written.
#include "concur/asyncio/inspect.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "asyncio/inspect_layout.hpp"
#include "concur/asyncio/detail/core.hpp"
#include "concur/errors.hpp"
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

// What the loop's thread is doing, by the kernel's account.
void read_thread_state(pid_t pid, LoopReport& report) {
  if (pid == ::getpid() && report.thread_id == platform::current_thread_id()) {
    // Reading ourselves: the kernel would show this very read; the thread is running.
    report.thread_state = "running";
    report.holding_the_loop = true;
    return;
  }
  const std::string activity = platform::thread_activity(pid, report.thread_id);
  if (activity == "polling") {
    report.thread_state = "polling for I/O";
  } else if (activity.rfind("in ", 0) == 0) {
    report.thread_state = "blocked " + activity;
    report.holding_the_loop = true;
  } else {
    report.thread_state = activity;  // running, gone, unknown
    report.holding_the_loop = activity == "running";
  }
}

}  // namespace

std::vector<LoopReport> inspect_process(pid_t pid) {
  const Remote remote(pid);
  const std::uintptr_t at = find_anchor(remote);
  std::vector<LoopReport> loops;
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
    loops.clear();
    bool whole = true;
    bool ok = true;
    std::size_t n = 0;
    for (std::uintptr_t loop = a.loops; ok && loop != 0 && n < kMaxLoops; ++n) {
      LoopReport report;
      whole = read_loop(remote, a, loop, report) && whole;
      report.torn = !whole;
      loops.push_back(std::move(report));
      loop = remote.pointer(loop + a.loop_next, ok);
    }
    whole = whole && ok;
    std::uint64_t generation = 0;
    if (whole && remote.get(at + offsetof(InspectAnchor, generation), generation) &&
        generation == a.generation) {
      break;
    }
    for (LoopReport& l : loops) l.torn = attempt + 1 == kAttempts;
  }
  for (LoopReport& l : loops) read_thread_state(pid, l);
  return loops;
}

std::string format_process_report(pid_t pid, const std::vector<LoopReport>& loops, bool tree) {
  std::string out = "process " + std::to_string(pid) + ": " + std::to_string(loops.size()) +
                    (loops.size() == 1 ? " event loop\n" : " event loops\n");
  for (const LoopReport& l : loops) {
    char address[32];
    std::snprintf(address, sizeof address, "0x%jx", static_cast<std::uintmax_t>(l.address));
    out += "\nloop " + std::string(address) + " on thread " + std::to_string(l.thread_id) + ": " +
           l.thread_state;
    if (l.holding_the_loop) out += " (not polling: a callback or task is holding the loop)";
    out += ", " + std::to_string(l.tasks.size()) + (l.tasks.size() == 1 ? " task" : " tasks");
    if (l.torn) out += " (the lists kept changing while read: this reading may be inconsistent)";
    out += "\n";
    if (!l.tasks.empty()) out += tree ? format_task_tree(l.tasks) : format_task_table(l.tasks);
  }
  return out;
}

}  // namespace concur::asyncio
