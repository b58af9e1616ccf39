// concur-ps against a program stuck in a known way (stuck_program.cpp): a task on a lock held by
// a task blocked on a queue, a sleeper, a gather of two, and the loop's thread blocked in a read.
// What concur-ps prints from outside is checked against the known graph and against the program's
// own in-process table (the same fields read two ways), and its refusals are checked too.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using concur::support::ChildProcess;
using concur::support::run_command;

const std::string kConcurPs = CONCUR_PS_PATH;
const std::string kStuck = std::string(CONCUR_TEST_HELPERS_DIR) + "/stuck_program";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The stuck program, started and stuck, with the table it printed of itself.
struct Stuck {
  ChildProcess child{{kStuck}, ChildProcess::Stdin::pipe};
  std::vector<std::string> own_table;
  bool ready = false;
  Stuck() {
    bool in_table = false;
    while (auto line = child.read_line(30s)) {
      if (*line == "ready") {
        ready = true;
        break;
      }
      if (in_table) own_table.push_back(*line);
      if (*line == "table") in_table = true;
    }
  }
  // Unblocks it; it cancels its tasks and must exit 0.
  std::optional<int> finish() {
    child.send_line("go");
    return child.wait_for(30s);
  }
};

std::string program_of(pid_t pid) {
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

int count_of(const std::string& text, const std::string& part) {
  int n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1) {
    lines.push_back(text.substr(start, end - start));
  }
  return lines;
}

// Whether `pattern` matches somewhere in `text`. A pattern is literal text with three wildcards:
// "{hex}" one or more hex digits, "{num}" one or more characters of a number (0-9 . e + -), and
// "{ }" one or more spaces. (std::regex would do, but GCC 12's <regex> trips -Wmaybe-uninitialized
// under the sanitizer builds' optimisation, and the project builds with -Werror.)
bool matches_at(std::string_view text, std::string_view pattern) {
  if (pattern.empty()) return true;
  auto run_of = [&](std::string_view token, auto in_class) {
    std::size_t n = 0;
    while (n < text.size() && in_class(text[n])) ++n;
    for (; n >= 1; --n) {  // longest first, backtracking
      if (matches_at(text.substr(n), pattern.substr(token.size()))) return true;
    }
    return false;
  };
  if (pattern.starts_with("{hex}")) {
    return run_of("{hex}",
                  [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
  }
  if (pattern.starts_with("{num}")) {
    return run_of("{num}", [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '.' || c == 'e' || c == '+' ||
             c == '-';
    });
  }
  if (pattern.starts_with("{ }")) return run_of("{ }", [](char c) { return c == ' '; });
  return !text.empty() && text.front() == pattern.front() &&
         matches_at(text.substr(1), pattern.substr(1));
}

bool matches(const std::string& text, std::string_view pattern) {
  for (std::size_t at = 0; at <= text.size(); ++at) {
    if (matches_at(std::string_view(text).substr(at), pattern)) return true;
  }
  return false;
}

// Times differ between two readings (a sleep's time left, a task's age), and with their width the
// columns; everything else must not: each number followed by " s" becomes "(time)", and runs of
// spaces are squeezed.
std::string without_times(const std::string& line) {
  std::string fixed;
  for (std::size_t i = 0; i < line.size();) {
    std::size_t end = i;
    while (end < line.size() && (std::isdigit(static_cast<unsigned char>(line[end])) != 0 ||
                                 line[end] == '.' || line[end] == '-')) {
      ++end;
    }
    const bool at_word_start = i == 0 || line[i - 1] == ' ' || line[i - 1] == ',';
    if (end > i && at_word_start && line.compare(end, 2, " s") == 0 &&
        (end + 2 == line.size() || line[end + 2] == ' ')) {
      fixed += "(time)";
      i = end;
    } else {
      fixed += line[i++];
    }
  }
  std::string squeezed;
  for (char c : fixed) {
    if (c != ' ' || squeezed.empty() || squeezed.back() != ' ') squeezed += c;
  }
  return squeezed;
}

// concur-ps's report once the program is all the way stuck: its loop's thread in its read (it
// prints "ready" just before), both pool workers in their blocking task (just started), the
// process pool's worker in its task (the worker process may still be starting at "ready"), and
// the interpreter lock's three threads parked (a waiter counts as waiting a moment before it
// parks, and "ready" follows the count).
concur::support::CommandResult report_when_stuck(pid_t pid, const std::string& option = "") {
  std::vector<std::string> argv{kConcurPs};
  if (!option.empty()) argv.push_back(option);
  argv.push_back(std::to_string(pid));
  concur::support::CommandResult result;
  for (int attempt = 0; attempt < 3000; ++attempt) {  // 30 s at most
    result = run_command(argv, 30s);
    const bool loop_stuck = contains(result.out, "blocked in read");
    const bool pool_stuck = count_of(result.out, "running a task (blocked in futex)") == 2;
    const bool process_stuck = contains(result.out, ": running sleep_in_worker (blocked in ");
    const bool lock_stuck = contains(result.out, "\"gil-holder\": holds it (blocked in futex)\n") &&
                            count_of(result.out, " s (blocked in futex)\n") == 2;
    if (result.exit_code != 0 || (loop_stuck && pool_stuck && process_stuck && lock_stuck)) break;
    std::this_thread::sleep_for(10ms);
  }
  return result;
}

TEST(ConcurPs, ReadsTheStuckProgramsTasksFromOutside) {
  Stuck stuck;
  ASSERT_TRUE(stuck.ready) << stuck.child.stderr_tail();
  const auto result = report_when_stuck(stuck.child.pid());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const std::string& out = result.out;
  EXPECT_TRUE(
      contains(out, "process " + std::to_string(stuck.child.pid()) +
                        ": 1 event loop, 1 thread pool, 1 process pool, 1 interpreter lock\n"))
      << out;
  // The pool: both workers in a task (blocked in a futex wait), three tasks queued behind them
  // (in the pool's queue or in a worker's deque, where a worker takes a batch).
  EXPECT_TRUE(matches(out,
                      "\nthread pool stuck-pool 0x{hex}: 2 of 2 workers started, 2 running a task, "
                      "3 queued\n"))
      << out;
  EXPECT_EQ(count_of(out, "running a task (blocked in futex)"), 2) << out;
  // The loop's thread is in read(), not in the loop's poll: concur-ps says the loop is held.
  EXPECT_TRUE(contains(out,
                       ": blocked in read (not polling: a callback or task is holding the "
                       "loop), 7 tasks\n"))
      << out;
  // The table, row by row, is the program's own view of itself (but for the times).
  const std::vector<std::string> lines = lines_of(out);
  ASSERT_EQ(stuck.own_table.size(), 8u);  // header and 7 tasks
  ASSERT_GE(lines.size(), 3 + stuck.own_table.size()) << out;
  for (std::size_t i = 0; i < stuck.own_table.size(); ++i) {
    EXPECT_EQ(without_times(lines[3 + i]), without_times(stuck.own_table[i]));
  }
  EXPECT_TRUE(matches(out, "\nid  name{ }state{ }age  created at\n")) << out;
  EXPECT_TRUE(matches(out, "\n{ }1  main{ }running{ }{num} s  stuck_program.cpp:")) << out;
  EXPECT_TRUE(matches(out, "holder{ }waiting on Queue.get 0x{hex} ")) << out;
  EXPECT_TRUE(matches(out, "blocked{ }waiting on Lock 0x{hex} ")) << out;
  EXPECT_TRUE(matches(out, "napper{ }waiting on sleep, {num} s left ")) << out;
  EXPECT_TRUE(matches(out, "gathering{ }waiting on gather of tasks 6, 7 ")) << out;
  EXPECT_TRUE(matches(out, "child-a{ }waiting on Event 0x")) << out;
  EXPECT_EQ(stuck.finish(), 0);
}

// The process pool's worker and the interpreter lock's threads, as the program set them up: one
// worker process running sleep_in_worker with two tasks queued behind it (a worker is sent one
// task at a time until the pool knows how long tasks take), one thread holding the lock and two
// waiting for it, oldest first, each for as long as the program has been stuck at least.
TEST(ConcurPs, ListsProcessPoolWorkersAndInterpreterLockWaiters) {
  Stuck stuck;
  ASSERT_TRUE(stuck.ready) << stuck.child.stderr_tail();
  const auto result = report_when_stuck(stuck.child.pid());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const std::string& out = result.out;
  EXPECT_TRUE(matches(out,
                      "\nprocess pool 0x{hex}: 1 of 1 worker processes, 1 running a task, "
                      "2 queued\n  process {num}: running sleep_in_worker (blocked in "))
      << out;
  EXPECT_TRUE(contains(out, "), 1 task sent so far\n")) << out;
  EXPECT_TRUE(matches(out,
                      "\ninterpreter lock 0x{hex} (fifo): held by thread {num}, 2 waiting\n"
                      "  thread {num} \"gil-holder\": holds it (blocked in futex)\n"
                      "  thread {num} \"gil-waiter-1\": waiting for it for {num} s (blocked in "
                      "futex)\n"
                      "  thread {num} \"gil-waiter-2\": waiting for it for {num} s (blocked in "
                      "futex)\n"))
      << out;
  EXPECT_EQ(stuck.finish(), 0);
}

TEST(ConcurPs, TreeShowsEachTaskUnderTheTaskWaitingForIt) {
  Stuck stuck;
  ASSERT_TRUE(stuck.ready) << stuck.child.stderr_tail();
  const auto result = report_when_stuck(stuck.child.pid(), "--tree");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(
      matches(result.out,
              "gathering (id 5): waiting on gather of tasks 6, 7 [stuck_program.cpp:{num}]\n"
              "├── child-a (id 6): waiting on Event 0x{hex} [stuck_program.cpp:{num}]\n"
              "└── child-b (id 7): waiting on Event 0x"))
      << result.out;
  EXPECT_EQ(stuck.finish(), 0);
}

TEST(ConcurPs, SaysWhenTheProcessIsGoneOrHasNoConcur) {
  // A pid that is not running: a child that has exited and been reaped.
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
  auto result = run_command({kConcurPs, std::to_string(gone)}, 30s);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.err, "no such process")) << result.err;

  // A program without concur: sleep, once it is sleep (and no longer the fork of this test).
  ChildProcess plain({"sleep", "30"});
  for (int i = 0; i < 3000 && program_of(plain.pid()) != "sleep"; ++i)
    std::this_thread::sleep_for(10ms);
  result = run_command({kConcurPs, std::to_string(plain.pid())}, 30s);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.err, "has no concur anchor")) << result.err;

  result = run_command({kConcurPs, "not-a-pid"}, 30s);
  EXPECT_NE(result.exit_code, 0);
}

// Another user cannot read the program: the kernel refuses, and concur-ps says why.
TEST(ConcurPs, AnotherUserCannotReadTheProcess) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to run concur-ps as another user (nobody)";
  Stuck stuck;
  ASSERT_TRUE(stuck.ready) << stuck.child.stderr_tail();
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(err[1], 2);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(126);
    const std::string target = std::to_string(stuck.child.pid());
    execl(kConcurPs.c_str(), kConcurPs.c_str(), target.c_str(), nullptr);
    _exit(127);  // nobody may not reach the build tree
  }
  close(err[1]);
  std::string message;
  char buffer[512];
  for (ssize_t n; (n = read(err[0], buffer, sizeof buffer)) > 0;) message.append(buffer, n);
  close(err[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 127) GTEST_SKIP() << "user nobody cannot run " << kConcurPs;
  EXPECT_EQ(WEXITSTATUS(status), 1) << message;
  EXPECT_TRUE(contains(message, "not permitted")) << message;
  EXPECT_TRUE(contains(message, "another user's process cannot be read")) << message;
  EXPECT_EQ(stuck.finish(), 0);
}

}  // namespace
