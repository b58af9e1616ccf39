// tests/integration/unguarded_spawner: a helper program for the multiprocessing tests.
//
//   unguarded_spawner MARKS_FILE   main() does NOT call main_guard() and starts a spawn child:
//                                  each run of main() appends its pid to MARKS_FILE. The child
//                                  must stop at its own Process::start() (exit code 87) instead
//                                  of spawning again: the tutorial's fork bomb, prevented.
//   unguarded_spawner --leak-segment   (guarded) a child creates a shared memory segment and is
//                                  killed; this program then exits normally and must unlink it.
//   unguarded_spawner --leak-and-die   the same, but this program is killed too: the segment
//                                  stays until another concur program cleans up orphans.
#include <signal.h>
#include <unistd.h>

#include <concur/multiprocessing/connection.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace mp = concur::multiprocessing;

void nothing() {}
CONCUR_REGISTER(nothing);

void make_segment_and_die(mp::Connection report) {
  auto shm = mp::SharedMemory::create(4096);
  shm.keep_name();
  report.send(shm.name());
  ::kill(getpid(), SIGKILL);
}
CONCUR_REGISTER(make_segment_and_die);

namespace {

int leak(bool die) {
  auto [ours, theirs] = mp::Pipe();
  mp::Process child({.start_method = mp::StartMethod::spawn}, make_segment_and_die,
                    std::move(theirs));
  child.start();
  const std::string name = ours.recv<std::string>(std::chrono::seconds(30));
  child.join();
  std::printf("leaked %s (child exit code %d)\n", name.c_str(), child.exitcode().value_or(0));
  std::fflush(stdout);
  if (die) ::kill(getpid(), SIGKILL);
  return 0;  // the root's normal exit unlinks the program's segments
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strncmp(argv[1], "--leak", 6) == 0) {
    mp::main_guard(argc, argv);
    return leak(std::strcmp(argv[1], "--leak-and-die") == 0);
  }
  if (argc < 2) return 2;
  // A safety net for the test itself: never let runaway recursion go far.
  const char* depth = std::getenv("UNGUARDED_DEPTH");
  const int level = depth ? std::atoi(depth) : 0;
  if (level > 3) return 99;
  setenv("UNGUARDED_DEPTH", std::to_string(level + 1).c_str(), 1);
  std::ofstream(argv[1], std::ios::app) << getpid() << "\n";

  mp::Process child({.start_method = mp::StartMethod::spawn}, nothing);  // no main_guard() above
  child.start();
  child.join();
  std::printf("child exit code %d\n", child.exitcode().value_or(-1));
  return 0;
}
