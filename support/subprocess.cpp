// support/subprocess.hpp's run_command: a ChildProcess whose outputs are kept whole.
#include "subprocess.hpp"

#include <signal.h>

#include <stdexcept>

#include "child_process.hpp"

namespace concur::support {

using Clock = std::chrono::steady_clock;

// A friend of ChildProcess: it takes the raw output buffers instead of lines.
struct CommandRunner {
  static CommandResult run(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout) {
    if (argv.empty()) throw std::invalid_argument("run_command: empty argv");
    if (!find_program(argv[0])) {
      throw std::runtime_error("cannot start " + argv[0] +
                               ": not found (on PATH) or not executable");
    }
    ChildProcess child(argv, ChildProcess::Stdin::null, ChildProcess::Stderr::pipe);
    ChildProcess* const self[] = {&child};
    CommandResult result;
    const auto deadline = Clock::now() + timeout;
    while (!child.outputs_closed()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        kill(child.pid(), SIGKILL);
        result.timed_out = true;
        break;
      }
      ChildProcess::pump(self, left);
    }
    result.exit_code = child.stop(std::chrono::seconds(3));
    result.out = std::move(child.out_.buffer);
    result.err = std::move(child.err_.buffer);
    return result;
  }
};

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  return CommandRunner::run(argv, timeout);
}

}  // namespace concur::support
