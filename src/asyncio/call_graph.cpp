// Call graphs: snapshots of the running loop's tasks, what each waits on (its Suspension), whom
// it waits for (the other tasks' done lists), and who waits for it (those edges inverted).
#include "concur/asyncio/call_graph.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "concur/asyncio/detail/core.hpp"

namespace concur::asyncio {

namespace {

using detail::LoopCore;
using detail::TaskBase;

// One task's own fields; awaiting_tasks is filled in from the others' done lists (add_edges).
TaskInfo info_of(const LoopCore* core, const TaskBase& t, std::int64_t now_ns) {
  TaskInfo info;
  info.id = t.id();
  info.name = t.name();
  info.created_file = t.created_at().file_name();
  info.created_line = t.created_at().line();
  info.created_function = t.created_at().function_name();
  info.age_in_seconds = detail::age_in_seconds(t.created_ms(), now_ns);
  if (t.done()) {
    info.state = TaskInfo::State::done;
  } else if (core != nullptr && core->current_task() == &t) {
    info.state = TaskInfo::State::running;
  } else if (const detail::Suspension* s = t.waiting()) {
    info.state = TaskInfo::State::waiting;
    info.awaiting = s->what != nullptr ? s->what : "something unnamed";
    const bool timed = s->what == detail::kSleep || s->what == detail::kWait;
    if (timed && s->object != nullptr) {
      const auto* timer = static_cast<const detail::TimerNode*>(s->object);
      if (timer->armed()) {
        info.deadline_in_seconds = static_cast<double>(timer->when_ns - now_ns) / 1e9;
      }
    } else {
      info.object = reinterpret_cast<std::uintptr_t>(s->object);
    }
  } else {
    info.state = TaskInfo::State::ready;
  }
  return info;
}

// Who waits for whom, from each task's done list: a node's awaiter waits for that task.
void add_edges(const LoopCore& core, std::vector<TaskInfo>& tasks) {
  std::unordered_map<const TaskBase*, std::size_t> index;
  std::size_t i = 0;
  for (const TaskBase* t = core.tasks_head; t != nullptr; t = t->all_next) index.emplace(t, i++);
  for (const TaskBase* t = core.tasks_head; t != nullptr; t = t->all_next) {
    for (const detail::DoneNode* n = t->done_nodes(); n != nullptr; n = n->next) {
      auto it = n->awaiter != nullptr ? index.find(n->awaiter) : index.end();
      if (it != index.end()) tasks[it->second].awaiting_tasks.push_back(t->id());
    }
  }
  for (TaskInfo& info : tasks) std::sort(info.awaiting_tasks.begin(), info.awaiting_tasks.end());
}

// For each task id, the indexes (in `tasks`) of the tasks waiting for it.
using Awaiters = std::unordered_map<std::uint32_t, std::vector<std::size_t>>;

Awaiters invert(const std::vector<TaskInfo>& tasks) {
  Awaiters awaiters;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    for (std::uint32_t awaited : tasks[i].awaiting_tasks) awaiters[awaited].push_back(i);
  }
  return awaiters;
}

CallGraph build(const TaskInfo& task, const std::vector<TaskInfo>& tasks, const Awaiters& awaiters,
                std::vector<std::uint32_t>& path) {
  CallGraph graph{task, {}, false};
  if (std::find(path.begin(), path.end(), task.id) != path.end()) {
    graph.cycle = true;
    return graph;
  }
  auto it = awaiters.find(task.id);
  if (it == awaiters.end()) return graph;
  path.push_back(task.id);
  for (std::size_t i : it->second)
    graph.awaited_by.push_back(build(tasks[i], tasks, awaiters, path));
  path.pop_back();
  return graph;
}

std::string hex(std::uintptr_t p) {
  char buf[2 + 2 * sizeof p + 1];
  std::snprintf(buf, sizeof buf, "0x%" PRIxPTR, p);
  return buf;
}

std::string base_name(const std::string& path) {
  std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// GCC names the function of a coroutine's body after its frame: "void f(f(int)::_Z1fi.Frame*)".
// The signature the user wrote is the part inside: "f(int)".
std::string readable_function(const std::string& name) {
  const std::size_t open = name.find('(');
  const std::size_t frame = name.find("::_Z", open);
  if (open == std::string::npos || frame == std::string::npos ||
      name.find(".Frame*)", frame) == std::string::npos) {
    return name;
  }
  return name.substr(open + 1, frame - open - 1);
}

void format_graph(const CallGraph& g, std::size_t indent, std::string& out) {
  const std::string pad(indent, ' ');
  out += pad + "* " + g.task.label() + ": " + g.task.state_text() + ", created at " +
         g.task.creation_site() + (g.cycle ? " (cycle)" : "") + "\n";
  if (g.awaited_by.empty()) return;
  out += pad + "  + Awaited by:\n";
  for (const CallGraph& by : g.awaited_by) format_graph(by, indent + 5, out);
}

void format_tree(const TaskInfo& task, const std::vector<TaskInfo>& tasks,
                 const std::unordered_map<std::uint32_t, std::size_t>& index,
                 const std::string& prefix, const char* branch, const char* next_prefix,
                 std::vector<std::uint32_t>& path, std::vector<bool>& shown, std::string& out) {
  const bool cycle = std::find(path.begin(), path.end(), task.id) != path.end();
  out += prefix + branch + task.label() + ": " + task.state_text() + " [" + task.creation_site() +
         "]" + (cycle ? " (cycle)" : "") + "\n";
  auto me = index.find(task.id);
  if (me != index.end()) shown[me->second] = true;
  if (cycle) return;
  std::vector<const TaskInfo*> children;
  for (std::uint32_t id : task.awaiting_tasks) {
    auto it = index.find(id);
    if (it != index.end()) children.push_back(&tasks[it->second]);
  }
  path.push_back(task.id);
  const std::string deeper = prefix + next_prefix;
  for (std::size_t i = 0; i < children.size(); ++i) {
    const bool last = i + 1 == children.size();
    format_tree(*children[i], tasks, index, deeper, last ? "└── " : "├── ", last ? "    " : "│   ",
                path, shown, out);
  }
  path.pop_back();
}

}  // namespace

std::string TaskInfo::label() const {
  return name + " (id " + std::to_string(id) + ")";
}

std::string TaskInfo::state_text() const {
  switch (state) {
    case State::running:
      return "running";
    case State::ready:
      return "ready";
    case State::done:
      return "done";
    case State::waiting:
      break;
  }
  std::string text = "waiting on " + awaiting;
  if (object != 0 && awaiting != "task") text += " " + hex(object);  // a task: its id follows
  const bool on_tasks = awaiting == "task" || awaiting == "gather" || awaiting == detail::kWait ||
                        awaiting == "TaskGroup";
  if (!awaiting_tasks.empty()) {
    // A TaskGroup's parent awaits its children while its body awaits something else too.
    text += awaiting == "task" ? " " : on_tasks ? " of tasks " : " (and tasks ";
    constexpr std::size_t kListed = 8;  // beyond this, a count: a gather of 10,000 stays one line
    for (std::size_t i = 0; i < awaiting_tasks.size() && i < kListed; ++i) {
      text += (i ? ", " : "") + std::to_string(awaiting_tasks[i]);
    }
    if (awaiting_tasks.size() > kListed) {
      text += ", ... (" + std::to_string(awaiting_tasks.size()) + " in all)";
    }
    if (!on_tasks) text += ")";
  }
  if (deadline_in_seconds) {
    char buf[48];
    std::snprintf(buf, sizeof buf, ", %.3g s left", std::max(0.0, *deadline_in_seconds));
    text += buf;
  }
  return text;
}

std::string TaskInfo::creation_site() const {
  return base_name(created_file) + ":" + std::to_string(created_line);
}

std::vector<TaskInfo> snapshot_tasks() {
  std::vector<TaskInfo> tasks;
  LoopCore* core = detail::running_core();
  if (core == nullptr) return tasks;
  const std::int64_t now = detail::monotonic_ns();
  tasks.reserve(core->live_tasks);
  for (const TaskBase* t = core->tasks_head; t != nullptr; t = t->all_next) {
    tasks.push_back(info_of(core, *t, now));
  }
  add_edges(*core, tasks);
  // The list is newest first; ids are given in creation order.
  std::sort(tasks.begin(), tasks.end(),
            [](const TaskInfo& a, const TaskInfo& b) { return a.id < b.id; });
  return tasks;
}

std::optional<CallGraph> capture_call_graph(const detail::TaskBase& task) {
  LoopCore* core = detail::running_core();
  const std::vector<TaskInfo> tasks = snapshot_tasks();
  const Awaiters awaiters = invert(tasks);
  std::vector<std::uint32_t> path;
  // A live task's own entry carries its edges; a done one waits for nothing.
  auto it = std::find_if(tasks.begin(), tasks.end(),
                         [&](const TaskInfo& t) { return t.id == task.id(); });
  const TaskInfo info =
      it != tasks.end() && task.spawned() ? *it : info_of(core, task, detail::monotonic_ns());
  return build(info, tasks, awaiters, path);
}

std::optional<CallGraph> capture_call_graph() {
  LoopCore* core = detail::running_core();
  if (core == nullptr || core->current_task() == nullptr) return std::nullopt;
  return capture_call_graph(*core->current_task());
}

std::string format_call_graph(const CallGraph& graph) {
  std::string out;
  format_graph(graph, 0, out);
  return out;
}

std::string format_call_graph() {
  auto graph = capture_call_graph();
  return graph ? format_call_graph(*graph) : std::string();
}

void print_call_graph(std::FILE* out) {
  std::fputs(format_call_graph().c_str(), out);
}

std::string format_task_table(const std::vector<TaskInfo>& tasks) {
  struct Row {
    std::string id, name, state, age, site;
  };
  std::vector<Row> rows{{"id", "name", "state", "age", "created at"}};
  for (const TaskInfo& t : tasks) {
    char age[32];
    std::snprintf(age, sizeof age, "%.1f s", t.age_in_seconds);
    rows.push_back({std::to_string(t.id), t.name, t.state_text(), age,
                    t.creation_site() + " in " + readable_function(t.created_function)});
  }
  std::size_t w_id = 0, w_name = 0, w_state = 0, w_age = 0;
  for (const Row& r : rows) {
    w_id = std::max(w_id, r.id.size());
    w_name = std::max(w_name, r.name.size());
    w_state = std::max(w_state, r.state.size());
    w_age = std::max(w_age, r.age.size());
  }
  std::string out;
  for (const Row& r : rows) {
    out += std::string(w_id - r.id.size(), ' ') + r.id + "  " + r.name +
           std::string(w_name - r.name.size() + 2, ' ') + r.state +
           std::string(w_state - r.state.size() + 2, ' ') + std::string(w_age - r.age.size(), ' ') +
           r.age + "  " + r.site + "\n";
  }
  return out;
}

std::string format_task_tree(const std::vector<TaskInfo>& tasks) {
  std::unordered_map<std::uint32_t, std::size_t> index;
  for (std::size_t i = 0; i < tasks.size(); ++i) index.emplace(tasks[i].id, i);
  std::vector<bool> awaited(tasks.size(), false);
  for (const TaskInfo& t : tasks) {
    for (std::uint32_t id : t.awaiting_tasks) {
      auto it = index.find(id);
      if (it != index.end()) awaited[it->second] = true;
    }
  }
  std::string out;
  std::vector<bool> shown(tasks.size(), false);
  std::vector<std::uint32_t> path;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (!awaited[i]) format_tree(tasks[i], tasks, index, "", "", "", path, shown, out);
  }
  // Tasks that only await each other in a ring have no root: each ring starts at its oldest.
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (!shown[i]) format_tree(tasks[i], tasks, index, "", "", "", path, shown, out);
  }
  return out;
}

}  // namespace concur::asyncio
