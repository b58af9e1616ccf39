// A program using the process pool is killed with SIGKILL (no destructor, no atexit handler
// runs): its workers and its forkserver must end by themselves, idle or in the middle of a task,
// rather than run on as orphans. Python's pool workers notice only when they next read their
// queue, so a busy one runs its task to the end; concur's do not wait for that.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Alive and not a zombie (an orphan's zombie waits for whichever process reaps orphans here).
bool running(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// Starts orphaned_pool MODE and returns its pid and the pids of its descendants.
std::pair<pid_t, std::vector<std::string>> start_pool_program(const char* mode) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return {-1, {}};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    const std::string program = std::string(CONCUR_TEST_HELPERS_DIR) + "/orphaned_pool";
    execl(program.c_str(), program.c_str(), mode, nullptr);
    _exit(127);
  }
  close(out[1]);
  std::vector<std::string> descendants;
  std::string text;
  char buffer[256];
  for (ssize_t n; (n = read(out[0], buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.find("ready\n") != std::string::npos) break;
  }
  close(out[0]);
  for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1) {
    const std::string line = text.substr(start, end - start);
    if (line != "ready" && !line.empty()) descendants.push_back(line);
  }
  return {pid, descendants};
}

void expect_descendants_end_after_a_kill(const char* mode) {
  auto [pid, descendants] = start_pool_program(mode);
  ASSERT_GT(pid, 0);
  ASSERT_GE(descendants.size(), 3u) << "expected two workers and a forkserver";
  const auto killed_at = Clock::now();
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  // Generous: the bound is for "they end by themselves", not a speed; the time is printed.
  const auto deadline = killed_at + 20s;
  std::vector<std::string> left = descendants;
  while (!left.empty() && Clock::now() < deadline) {
    std::erase_if(left, [](const std::string& p) { return !running(p); });
    if (!left.empty()) std::this_thread::sleep_for(10ms);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  for (const std::string& p : left) kill(std::stoi(p), SIGKILL);  // leave nothing behind
  EXPECT_TRUE(left.empty()) << left.size() << " of " << descendants.size()
                            << " processes still ran 20 s after their program was killed";
  std::printf("%s: all %zu processes ended %.3f s after the program was killed\n", mode,
              descendants.size(), seconds);
  ::testing::Test::RecordProperty("seconds_until_all_ended", std::to_string(seconds));
}

TEST(KillParent, IdleWorkersAndTheForkserverEndWhenTheProgramIsKilled) {
  expect_descendants_end_after_a_kill("idle");
}

TEST(KillParent, BusyWorkersEndWhenTheProgramIsKilledWithoutFinishingTheirTask) {
  expect_descendants_end_after_a_kill("busy");
}

}  // namespace
