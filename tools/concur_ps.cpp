// concur-ps: what the event loops, pools and interpreter locks of a running program are doing,
// from outside -- Python 3.14's `python -m asyncio ps PID` / `pstree PID` for programs that use
// concur.
//
//   concur-ps PID           a table: each task's id, name, state or what it waits on, age and
//                           creation site; each thread pool's and process pool's workers and
//                           queued tasks; each interpreter lock's holder and waiters
//   concur-ps --tree PID    the await tree: each task under the task that waits for it
//
// It reads the program's memory as a debugger does and never stops or changes it (see
// include/concur/asyncio/inspect.hpp for how, and for the permissions it needs).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "concur/asyncio/inspect.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "concur-ps: the event loops and tasks of a running program that uses concur: what each "
      "task waits on and who waits for it, what its pools' workers run and how many tasks wait, "
      "who holds its interpreter locks and who waits, read from outside without stopping it"};
  pid_t pid = 0;
  bool tree = false;
  app.add_option("pid", pid, "the process to look at")->required()->check(CLI::PositiveNumber);
  app.add_flag("--tree", tree, "print the await tree instead of the table");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto report = concur::asyncio::inspect_process(pid);
    std::fputs(concur::asyncio::format_process_report(report, tree).c_str(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
