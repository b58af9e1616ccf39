// orphaned_pool MODE: starts a process pool (forkserver workers), prints the pids of its workers
// and of every other child, then waits to be killed (kill_parent_test.cpp kills it with SIGKILL
// and watches whether those processes end by themselves).
//   idle   the workers have nothing to do when the parent dies
//   busy   each worker is in the middle of a long task
#include <unistd.h>

#include <dirent.h>
#include <chrono>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/process_pool.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;

int sleep_seconds(int seconds) {
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return seconds;
}
CONCUR_REGISTER(sleep_seconds);

int main(int argc, char** argv) {
  mp::main_guard(argc, argv);
  if (argc != 2) return 2;
  const bool busy = std::strcmp(argv[1], "busy") == 0;
  concur::ProcessPoolExecutor pool({.max_workers = 2, .start_method = mp::StartMethod::forkserver});
  std::vector<concur::Future<int>> running;
  for (int i = 0; i < 2; ++i) running.push_back(pool.submit(sleep_seconds, busy ? 60 : 0));
  if (!busy) {
    for (auto& f : running) f.result(30s);
  } else {
    std::this_thread::sleep_for(300ms);  // both tasks have reached their workers
  }
  // Every descendant: the workers and the forkserver (children of the forkserver, too).
  std::vector<std::string> pending{std::to_string(getpid())};
  while (!pending.empty()) {
    const std::string pid = pending.back();
    pending.pop_back();
    const std::string tasks = "/proc/" + pid + "/task";
    if (DIR* d = opendir(tasks.c_str())) {
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream in(tasks + "/" + e->d_name + "/children");
        for (std::string child; in >> child;) {
          std::printf("%s\n", child.c_str());
          pending.push_back(child);
        }
      }
      closedir(d);
    }
  }
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) pause();
}
