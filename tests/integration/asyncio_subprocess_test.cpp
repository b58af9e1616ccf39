// Tests of concur/asyncio/subprocess.hpp: create_subprocess_exec and Process.
// The cases of CPython's Lib/test/test_asyncio/test_subprocess.py, with /bin/sh, /bin/cat and
// coreutils as the children (stdin to stdout, communicate, exit codes, kill / terminate /
// send_signal, a broken stdin pipe ignored by communicate, reading stdout after the exit,
// cancelling wait), plus what this implementation promises besides: ENOENT at create time,
// stderr = STDOUT, DEVNULL, several MiB through a pipe each way, no zombie and no descriptor left
// after many runs (also of processes nobody waited for), and a child outliving its loop.
//
// GCC 12 cannot compile a braced list inside a co_await expression (README), so the argument
// vectors are built before each co_await.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_test_support.hpp"
#include "concur/asyncio.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace asyncio = concur::asyncio;
using asyncio::CommunicateResult;
using asyncio::Process;
using asyncio::Stdio;
using asyncio::SubprocessOptions;
using asyncio::Task;
using concur::CancelledError;
using concur::OSError;
using Args = std::vector<std::string>;

// Every run ends well within this, or the test has failed (wait_for throws TimeoutError).
constexpr auto kBound = 120s;

// The children of this process, from /proc (zombies included).
int count_children() {
  const pid_t me = getpid();
  int n = 0;
  DIR* dir = opendir("/proc");
  if (!dir) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close_paren + 1, " %c %d", &state, &ppid) == 2 && ppid == me) {
      ++n;
    }
  }
  closedir(dir);
  return n;
}

// Descriptors open in this process.
int count_fds() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n - 1;  // the one opendir holds
}

class SubprocessTest : public concur::testing::AsyncioTest {
 protected:
  SubprocessTest() { run_guard = kBound; }
};

// The errno of the OSError `task` throws (0 if none).
template <class T>
Task<int> os_error_of(Task<T> task) {
  try {
    co_await std::move(task);
  } catch (const OSError& e) {
    co_return e.code().value();
  }
  co_return 0;
}

// ---------------------------------------------------------------------------------------------

Task<void> echo_through_stdout() {
  Args args{"hello", "world"};
  Process p =
      co_await asyncio::create_subprocess_exec("/bin/echo", args, {.stdout_mode = Stdio::PIPE});
  EXPECT_GT(p.pid(), 0);
  EXPECT_FALSE(p.stdin_pipe().valid());
  EXPECT_FALSE(p.stderr_pipe().valid());
  asyncio::StreamReader out = p.stdout_pipe();
  EXPECT_TRUE(out.valid());
  std::string text = co_await out.read();
  EXPECT_EQ(text, "hello world\n");
  EXPECT_TRUE(out.at_eof());
  int code = co_await p.wait();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(p.returncode(), 0);
}

TEST_F(SubprocessTest, EchoThroughTheStdoutPipe) {
  run(echo_through_stdout());
}

Task<void> cat_stdin_to_stdout() {
  SubprocessOptions options{.stdin_mode = Stdio::PIPE, .stdout_mode = Stdio::PIPE};
  Args none;
  // Writing, draining, closing and reading by hand (Python's test_stdin_stdout).
  Process p = co_await asyncio::create_subprocess_exec("/bin/cat", none, options);
  asyncio::StreamWriter in = p.stdin_pipe();
  in.write("some data");
  co_await in.drain();
  in.close();
  std::string text = co_await p.stdout_pipe().read();
  EXPECT_EQ(text, "some data");
  EXPECT_EQ(co_await p.wait(), 0);
  // communicate() (Python's test_communicate).
  Process q = co_await asyncio::create_subprocess_exec("/bin/cat", none, options);
  CommunicateResult r = co_await q.communicate("some data\nand more\n");
  EXPECT_EQ(r.out, "some data\nand more\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.returncode, 0);
  EXPECT_EQ(q.returncode(), 0);
  // Empty input: stdin is closed all the same.
  Process e = co_await asyncio::create_subprocess_exec("/bin/cat", none, options);
  r = co_await e.communicate();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.returncode, 0);
}

TEST_F(SubprocessTest, CatRoundTripByHandAndThroughCommunicate) {
  run(cat_stdin_to_stdout());
}

Task<void> exit_codes() {
  const std::vector<int> codes{0, 1, 3, 255};
  for (int expected : codes) {
    Args args{"-c", "exit " + std::to_string(expected)};
    Process p = co_await asyncio::create_subprocess_exec("/bin/sh", args);
    EXPECT_FALSE(p.returncode().has_value()) << "no exit can be seen before the loop polls";
    int code = co_await p.wait();
    EXPECT_EQ(code, expected);
    EXPECT_EQ(p.returncode(), expected);
    EXPECT_EQ(co_await p.wait(), expected) << "wait() after the exit returns at once";
  }
  // A program found through PATH.
  Args args{"-c", "exit 7"};
  Process p = co_await asyncio::create_subprocess_exec("sh", args);
  EXPECT_EQ(co_await p.wait(), 7);
}

TEST_F(SubprocessTest, ExitCodes) {
  run(exit_codes());
}

Task<int> wait_for_exit(Process p) {
  co_return co_await p.wait();
}

Task<void> signals() {
  Args args{"30"};
  Process p = co_await asyncio::create_subprocess_exec("/bin/sleep", args);
  // Two waiters see the same exit.
  Task<int> other = asyncio::create_task(wait_for_exit(p));
  p.kill();
  EXPECT_EQ(co_await p.wait(), -SIGKILL);
  EXPECT_EQ(co_await other, -SIGKILL);
  // Once the exit was seen, no signal goes out (the pid may be reused): ProcessLookupError.
  int error = 0;
  try {
    p.kill();
  } catch (const OSError& e) {
    error = e.code().value();
  }
  EXPECT_EQ(error, ESRCH);

  Process q = co_await asyncio::create_subprocess_exec("/bin/sleep", args);
  q.terminate();
  EXPECT_EQ(co_await q.wait(), -SIGTERM);

  // send_signal: the child has the default action even if this process ignores the signal.
  auto previous = std::signal(SIGHUP, SIG_IGN);
  Args shell{"-c", "echo sleeping; exec sleep 30"};
  Process r =
      co_await asyncio::create_subprocess_exec("/bin/sh", shell, {.stdout_mode = Stdio::PIPE});
  std::signal(SIGHUP, previous);
  std::string line = co_await r.stdout_pipe().readline();
  EXPECT_EQ(line, "sleeping\n");
  r.send_signal(SIGHUP);
  EXPECT_EQ(co_await r.wait(), -SIGHUP);
}

TEST_F(SubprocessTest, KillTerminateAndSendSignal) {
  run(signals());
}

Task<void> stderr_routes() {
  Args args{"-c", "echo out; echo err 1>&2; exit 4"};
  SubprocessOptions merged{.stdout_mode = Stdio::PIPE, .stderr_mode = Stdio::STDOUT};
  Process p = co_await asyncio::create_subprocess_exec("/bin/sh", args, merged);
  EXPECT_FALSE(p.stderr_pipe().valid());
  CommunicateResult r = co_await p.communicate();
  EXPECT_EQ(r.out, "out\nerr\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.returncode, 4);

  SubprocessOptions separate{.stdout_mode = Stdio::PIPE, .stderr_mode = Stdio::PIPE};
  Process q = co_await asyncio::create_subprocess_exec("/bin/sh", args, separate);
  r = co_await q.communicate();
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(r.returncode, 4);

  // stderr to stdout, stdout to /dev/null: nothing anywhere.
  SubprocessOptions quiet{.stdout_mode = Stdio::DEVNULL, .stderr_mode = Stdio::STDOUT};
  Process n = co_await asyncio::create_subprocess_exec("/bin/sh", args, quiet);
  r = co_await n.communicate();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.returncode, 4);
}

TEST_F(SubprocessTest, StderrToStdoutOrItsOwnPipe) {
  run(stderr_routes());
}

Task<void> devnull() {
  // stdin from /dev/null: cat reads EOF at once (Python's test_devnull_input).
  Args none;
  SubprocessOptions in_null{.stdin_mode = Stdio::DEVNULL, .stdout_mode = Stdio::PIPE};
  Process p = co_await asyncio::create_subprocess_exec("/bin/cat", none, in_null);
  CommunicateResult r = co_await p.communicate();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.returncode, 0);
  // stdout to /dev/null: communicate() writes stdin and returns no output.
  Args count{"-c", "wc -c; echo visible 1>&2"};
  SubprocessOptions out_null{
      .stdin_mode = Stdio::PIPE, .stdout_mode = Stdio::DEVNULL, .stderr_mode = Stdio::PIPE};
  Process q = co_await asyncio::create_subprocess_exec("/bin/sh", count, out_null);
  EXPECT_FALSE(q.stdout_pipe().valid());
  r = co_await q.communicate("abc");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "visible\n");
  EXPECT_EQ(r.returncode, 0);
}

TEST_F(SubprocessTest, DevNull) {
  run(devnull());
}

std::string pattern(std::size_t size) {
  std::string data(size, '\0');
  std::uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return data;
}

Task<void> large_through_cat(std::size_t size) {
  const std::string data = pattern(size);
  Args none;
  SubprocessOptions options{.stdin_mode = Stdio::PIPE, .stdout_mode = Stdio::PIPE};
  Process p = co_await asyncio::create_subprocess_exec("/bin/cat", none, options);
  CommunicateResult r = co_await p.communicate(data);
  EXPECT_EQ(r.out.size(), data.size());
  EXPECT_TRUE(r.out == data) << "the bytes that came back differ";
  EXPECT_EQ(r.returncode, 0);
  // Large output with no input, and stderr at the same time.
  Args args{"-c", "head -c " + std::to_string(size) + " /dev/zero; head -c 100000 /dev/zero 1>&2"};
  SubprocessOptions both{.stdout_mode = Stdio::PIPE, .stderr_mode = Stdio::PIPE};
  Process q = co_await asyncio::create_subprocess_exec("/bin/sh", args, both);
  r = co_await q.communicate();
  EXPECT_EQ(r.out, std::string(size, '\0'));
  EXPECT_EQ(r.err.size(), 100000u);
  EXPECT_EQ(r.returncode, 0);
}

TEST_F(SubprocessTest, SeveralMiBThroughCatWithoutDeadlock) {
  run(large_through_cat(std::size_t{8} << 20 >> (concur::testing::kStressScale > 1 ? 1 : 0)));
}

// Python's test_read_stdout_after_process_exit: more output than the pipe and the reader's
// buffer hold, read slowly, in chunks, after the child has finished writing.
Task<void> read_after_exit() {
  Args args{"-c", "head -c 262144 /dev/zero; exit 1"};
  Process p =
      co_await asyncio::create_subprocess_exec("/bin/sh", args, {.stdout_mode = Stdio::PIPE});
  asyncio::StreamReader out = p.stdout_pipe();
  std::size_t total = 0;
  for (;;) {
    std::string chunk = co_await out.read(65536);
    if (chunk.empty()) break;
    total += chunk.size();
    co_await asyncio::sleep(10ms);
  }
  EXPECT_EQ(total, 262144u);
  EXPECT_EQ(co_await p.wait(), 1);
}

TEST_F(SubprocessTest, ReadStdoutAfterTheProcessExited) {
  run(read_after_exit());
}

Task<void> missing_programs() {
  Args none;
  EXPECT_EQ(co_await os_error_of(asyncio::create_subprocess_exec("/nonexistent/program", none)),
            ENOENT);
  EXPECT_EQ(co_await os_error_of(asyncio::create_subprocess_exec("no-such-program-xyz", none)),
            ENOENT);
  // With pipes too: they are closed again (the descriptor test counts them).
  SubprocessOptions pipes{
      .stdin_mode = Stdio::PIPE, .stdout_mode = Stdio::PIPE, .stderr_mode = Stdio::PIPE};
  EXPECT_EQ(co_await os_error_of(asyncio::create_subprocess_exec("/nonexistent", none, pipes)),
            ENOENT);
  // A working directory that does not exist.
  SubprocessOptions nowhere;
  nowhere.cwd = "/nonexistent-directory";
  EXPECT_EQ(co_await os_error_of(asyncio::create_subprocess_exec("/bin/true", none, nowhere)),
            ENOENT);
  // Not executable: a directory.
  EXPECT_EQ(co_await os_error_of(asyncio::create_subprocess_exec("/tmp", none)), EACCES);
}

TEST_F(SubprocessTest, AProgramThatCannotRunIsAnOSErrorAtCreateTime) {
  run(missing_programs());
}

Task<void> cwd_env_session() {
  Args args{"-c", "pwd; echo \"$FOO\"; echo \"${HOME:-unset}\""};
  SubprocessOptions options{.stdout_mode = Stdio::PIPE};
  options.cwd = "/tmp";
  options.env = std::map<std::string, std::string>{{"FOO", "bar baz"}, {"PATH", "/usr/bin:/bin"}};
  Process p = co_await asyncio::create_subprocess_exec("/bin/sh", args, options);
  CommunicateResult r = co_await p.communicate();
  EXPECT_EQ(r.out, "/tmp\nbar baz\nunset\n");
  // A new session: the child's session id is its pid.
  Args session{"-c", "echo $$; cut -d ' ' -f 6 /proc/$$/stat"};
  SubprocessOptions detached{.stdout_mode = Stdio::PIPE, .start_new_session = true};
  Process q = co_await asyncio::create_subprocess_exec("/bin/sh", session, detached);
  r = co_await q.communicate();
  std::size_t newline = r.out.find('\n');
  EXPECT_NE(newline, std::string::npos);
  EXPECT_EQ(r.out.substr(0, newline) + "\n", r.out.substr(newline + 1));
}

TEST_F(SubprocessTest, CwdEnvAndANewSession) {
  run(cwd_env_session());
}

// communicate() ignores a broken stdin pipe (Python's test_communicate_ignore_broken_pipe);
// writing by hand reports it (test_stdin_broken_pipe).
Task<void> broken_pipe() {
  const std::string large = pattern(std::size_t{1} << 20);
  Args args{"-c", "exit 0"};
  SubprocessOptions options{.stdin_mode = Stdio::PIPE};
  Process p = co_await asyncio::create_subprocess_exec("/bin/sh", args, options);
  CommunicateResult r = co_await p.communicate(large);
  EXPECT_EQ(r.returncode, 0);

  Process q = co_await asyncio::create_subprocess_exec("/bin/sh", args, options);
  EXPECT_EQ(co_await q.wait(), 0);
  asyncio::StreamWriter in = q.stdin_pipe();
  bool broken = false;
  try {
    in.write(large);
    co_await in.drain();
  } catch (const concur::BrokenPipeError&) {
    broken = true;
  } catch (const concur::ConnectionResetError&) {
    broken = true;
  }
  EXPECT_TRUE(broken);
}

TEST_F(SubprocessTest, ABrokenStdinPipeIsIgnoredByCommunicateAndRaisedByDrain) {
  run(broken_pipe());
}

bool alive(int pid) {
  return ::kill(pid, 0) == 0;
}

// Cancelling wait() raises CancelledError and leaves the child alone (Python's
// test_cancel_process_wait); so does cancelling communicate().
Task<void> cancel_wait_and_communicate() {
  Args args{"30"};
  Process p = co_await asyncio::create_subprocess_exec("/bin/sleep", args);
  Task<int> waiting = asyncio::create_task(wait_for_exit(p));
  co_await asyncio::sleep(5ms);
  EXPECT_TRUE(waiting.cancel());
  bool cancelled = false;
  try {
    co_await waiting;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(p.returncode().has_value());
  EXPECT_TRUE(alive(p.pid()));
  p.kill();
  EXPECT_EQ(co_await p.wait(), -SIGKILL);

  Args shell{"-c", "echo started; exec sleep 30"};
  SubprocessOptions options{.stdout_mode = Stdio::PIPE};
  Process q = co_await asyncio::create_subprocess_exec("/bin/sh", shell, options);
  Task<CommunicateResult> talking = asyncio::create_task(q.communicate());
  co_await asyncio::sleep(5ms);
  EXPECT_TRUE(talking.cancel());
  cancelled = false;
  try {
    co_await talking;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(alive(q.pid()));
  q.kill();
  EXPECT_EQ(co_await q.wait(), -SIGKILL);
}

TEST_F(SubprocessTest, CancellingWaitOrCommunicateDoesNotKillTheChild) {
  run(cancel_wait_and_communicate());
}

Task<void> misuse() {
  Args none;
  SubprocessOptions bad{.stdin_mode = Stdio::STDOUT};
  bool invalid = false;
  try {
    co_await asyncio::create_subprocess_exec("/bin/true", none, bad);
  } catch (const std::invalid_argument&) {
    invalid = true;
  }
  EXPECT_TRUE(invalid);
  Process p = co_await asyncio::create_subprocess_exec("/bin/true", none);
  invalid = false;
  try {
    co_await p.communicate("input without a stdin pipe");
  } catch (const std::invalid_argument&) {
    invalid = true;
  }
  EXPECT_TRUE(invalid);
  EXPECT_EQ(co_await p.wait(), 0);
  Process empty;
  EXPECT_THROW(empty.pid(), concur::InvalidStateError);
  EXPECT_THROW(empty.wait(), concur::InvalidStateError);
}

TEST_F(SubprocessTest, Misuse) {
  run(misuse());
}

// Many runs of every kind, half of them never waited for: afterwards no child is left (libuv
// reaped each, zombies included) and no descriptor is left open.
Task<void> one_of_each(int i) {
  Args none;
  switch (i % 6) {
    case 0: {
      Args args{"x"};
      Process p =
          co_await asyncio::create_subprocess_exec("/bin/echo", args, {.stdout_mode = Stdio::PIPE});
      CommunicateResult r = co_await p.communicate();
      EXPECT_EQ(r.out, "x\n");
      break;
    }
    case 1: {
      SubprocessOptions o{
          .stdin_mode = Stdio::PIPE, .stdout_mode = Stdio::PIPE, .stderr_mode = Stdio::PIPE};
      Process p = co_await asyncio::create_subprocess_exec("/bin/cat", none, o);
      CommunicateResult r = co_await p.communicate("abc");
      EXPECT_EQ(r.out, "abc");
      break;
    }
    case 2: {
      // Dropped at once, with pipes, while it runs: reaped all the same.
      SubprocessOptions o{.stdin_mode = Stdio::PIPE, .stdout_mode = Stdio::PIPE};
      Process p = co_await asyncio::create_subprocess_exec("/bin/cat", none, o);
      break;
    }
    case 3: {
      SubprocessOptions o{.stdout_mode = Stdio::PIPE};
      EXPECT_EQ(co_await os_error_of(asyncio::create_subprocess_exec("/nonexistent", none, o)),
                ENOENT);
      break;
    }
    case 4: {
      // Killed and dropped without waiting.
      Args args{"30"};
      SubprocessOptions o{.stderr_mode = Stdio::PIPE};
      Process p = co_await asyncio::create_subprocess_exec("/bin/sleep", args, o);
      p.kill();
      break;
    }
    case 5: {
      Args args{"-c", "exit 3"};
      Process p = co_await asyncio::create_subprocess_exec("/bin/sh", args);
      break;  // exits on its own, nobody waits
    }
  }
}

Task<void> no_leaks(int runs) {
  co_await one_of_each(1);  // libuv's one-time descriptors (its signal pipes) exist from here
  co_await asyncio::sleep(10ms);
  const int fds_before = count_fds();
  for (int i = 0; i < runs; ++i) co_await one_of_each(i);
  // Polls until all is clean, within a bound far beyond what the exits take.
  int children = -1, fds = -1;
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < give_up) {
    children = count_children();
    fds = count_fds();
    if (children == 0 && fds == fds_before) break;
    co_await asyncio::sleep(5ms);
  }
  EXPECT_EQ(children, 0) << "children left (zombies or running)";
  EXPECT_EQ(fds, fds_before) << "descriptors leaked";
}

TEST_F(SubprocessTest, NoZombiesAndNoDescriptorLeaksAfterManyRuns) {
  run(no_leaks(120 / concur::testing::kStressScale));
}

// ---------------------------------------------------------------------------------------------
// The loop closing while a child runs: the child is left running, detached.

Task<Process> start_sleeper() {
  Args args{"30"};
  co_return co_await asyncio::create_subprocess_exec("/bin/sleep", args);
}

TEST(SubprocessLoopClose, AChildOutlivingItsLoopIsLeftRunningDetached) {
  Process p;
  {
    asyncio::EventLoop loop;
    p = loop.run_until_complete(start_sleeper());
    loop.close();  // does not wait for the child (it would take 30 s)
  }
  EXPECT_TRUE(alive(p.pid()));
  EXPECT_FALSE(p.returncode().has_value());
  {
    asyncio::EventLoop other;
    EXPECT_THROW(other.run_until_complete(p.wait()), concur::RuntimeError);
  }
  p.kill();  // still possible: the pid is ours until reaped
  EXPECT_TRUE(concur::testing::eventually([&] { return p.returncode().has_value(); }));
  EXPECT_EQ(p.returncode(), -SIGKILL);  // returncode() polled it, and reaped it
  EXPECT_EQ(waitpid(p.pid(), nullptr, WNOHANG), -1) << "already reaped";
}

// A child nobody holds when its loop closes: its state is freed (ASan would report it otherwise)
// by the next create_subprocess_exec on the thread.
Task<int> start_and_drop() {
  Args args{"30"};
  Process p = co_await asyncio::create_subprocess_exec("/bin/sleep", args);
  co_return p.pid();
}

Task<void> spawn_true() {
  Args none;
  Process p = co_await asyncio::create_subprocess_exec("/bin/true", none);
  EXPECT_EQ(co_await p.wait(), 0);
}

TEST(SubprocessLoopClose, AnOrphanOfAClosedLoopIsFreedLater) {
  int pid = 0;
  {
    asyncio::EventLoop loop;
    pid = loop.run_until_complete(start_and_drop());
  }
  EXPECT_TRUE(alive(pid));
  {
    asyncio::EventLoop loop;
    loop.run_until_complete(spawn_true());
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);  // detached: nobody else reaps it
  EXPECT_TRUE(WIFSIGNALED(status));
}

}  // namespace
