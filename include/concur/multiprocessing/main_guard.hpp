// concur/multiprocessing/main_guard.hpp: main_guard(), C++'s `if __name__ == '__main__':`.
//
// A child started by spawn or forkserver is a fresh run of this program: it enters main() like
// the parent did. Call main_guard(argc, argv) as the first line of main(): in the parent it
// returns at once; in a spawned child, a forkserver, or a process-pool worker it runs what that
// process is for and exits, so the rest of main() runs only in the parent.
//
// Without it, the tutorial's fork bomb would follow: each child reaching main()'s Process::start()
// would spawn another. concur prevents that: a child that tries to start a process before its
// guard ran stops with a message naming the fix and exit code kMainGuardMissingExitCode (87); the
// parent's ProcessPoolExecutor turns that into concur::BrokenProcessPool with the same advice.
//
// Example:
//   int main(int argc, char** argv) {
//     concur::multiprocessing::main_guard(argc, argv);
//     ...   // the parent only
//   }
#pragma once

namespace concur::multiprocessing {

void main_guard(int argc, char** argv);

// True if this process is a child started by concur (any start method).
bool is_child_process();

}  // namespace concur::multiprocessing
