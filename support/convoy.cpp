// The convoy workload of support/convoy.hpp.
#include "convoy.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

extern char** environ;

namespace concur::support {

using Clock = std::chrono::steady_clock;

PipeEcho::PipeEcho() {
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("convoy: pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  char* argv[] = {const_cast<char*>("cat"), nullptr};
  const int rc = posix_spawnp(&pid_, "cat", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  to_ = in[1];
  from_ = out[0];
  if (rc != 0) {
    close(to_);
    close(from_);
    throw std::runtime_error(std::string("convoy: cannot start cat: ") + std::strerror(rc));
  }
}

PipeEcho::~PipeEcho() {
  close(to_);  // cat sees end of input and exits
  close(from_);
  int status = 0;
  waitpid(pid_, &status, 0);
}

void PipeEcho::round_trip() {
  char byte = 'x';
  if (write(to_, &byte, 1) != 1 || read(from_, &byte, 1) != 1) {
    throw std::runtime_error("convoy: the echo through cat failed");
  }
}

ConvoyRates run_convoy(PipeEcho& echo, const InterpreterLockOptions& lock, double seconds,
                       bool with_io, bool with_cpu) {
  InterpreterLock gil(lock);
  std::atomic<bool> stop{false};
  ConvoyRates rates;
  std::thread cpu;
  if (with_cpu) {
    cpu = std::thread([&] {
      GilGuard hold(gil);
      long n = 0;
      const auto t0 = Clock::now();
      while (!stop.load(std::memory_order_relaxed)) {
        for (int k = 0; k < 1000; ++k) n += k & 1;
        gil.checkpoint();
      }
      rates.cpu_per_s =
          static_cast<double>(n) * 2 / std::chrono::duration<double>(Clock::now() - t0).count();
    });
  }
  const auto duration = std::chrono::duration<double>(seconds);
  if (with_io) {
    GilGuard hold(gil);
    long trips = 0;
    const auto t0 = Clock::now();
    while (Clock::now() - t0 < duration) {
      {
        GilRelease io(gil);
        echo.round_trip();
      }
      ++trips;
    }
    rates.io_per_s = static_cast<double>(trips) / seconds;
  } else {
    std::this_thread::sleep_for(duration);
  }
  stop = true;
  if (cpu.joinable()) cpu.join();
  return rates;
}

}  // namespace concur::support
