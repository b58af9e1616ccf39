// Every system call concur's multiprocessing makes, and every libuv call of its asyncio that can
// fail, failed in turn (SQLite's and libuv's way of
// proving error paths): for each scenario of fault_scenarios.cpp and each fault, the 1st, 2nd,
// 3rd, ... call of that function fails (or moves only half its bytes, or is interrupted), until
// the scenario no longer reaches an N-th call. Each run must end within its time limit, either
// working or with a clear concur error, and leave nothing behind (the scenario program checks its
// descriptors, threads, children and shared-memory segments).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;

struct Fault {
  const char* call;
  const char* action;
};

// How gtest (and so CTest's test names) shows a fault: "write:short".
void PrintTo(const Fault& fault, std::ostream* out) {
  *out << fault.call << ":" << fault.action;
}

// The system calls of concur's multiprocessing, for its scenarios.
const Fault kFaults[] = {
    {"fork", "EAGAIN"},   {"posix_spawn", "EAGAIN"},  {"socketpair", "EMFILE"},
    {"pipe2", "EMFILE"},  {"write", "short"},         {"write", "EINTR"},
    {"write", "EPIPE"},   {"send", "EINTR"},          {"sendmsg", "short"},
    {"sendmsg", "EINTR"}, {"read", "short"},          {"read", "EINTR"},
    {"recv", "EINTR"},    {"recvmsg", "short"},       {"recvmsg", "EINTR"},
    {"poll", "EINTR"},    {"shm_open", "EMFILE"},     {"ftruncate", "ENOSPC"},
    {"mmap", "ENOMEM"},   {"memfd_create", "EMFILE"}, {"epoll_ctl", "ENOMEM"},
};

const char* const kScenarios[] = {
    "pipe", "shared_memory", "process_fork", "process_spawn", "process_forkserver",
    "pool", "pool_large",    "queue"};

#if CONCUR_FAULT_ASYNCIO
// asyncio's calls into libuv, failed as libuv reports errors (UV_E* = -errno). Its scenarios do
// not get the system-call faults above: the first such calls are libuv's own (its process-wide
// signal pipe, its epoll set), whose failures libuv answers with abort() by design; libuv's test
// suite covers those.
const Fault kLibuvFaults[] = {
    {"uv_loop_init", "EMFILE"},         {"uv_async_init", "EMFILE"}, {"uv_tcp_init_ex", "EMFILE"},
    {"uv_tcp_bind", "EADDRINUSE"},      {"uv_listen", "EADDRINUSE"}, {"uv_accept", "EMFILE"},
    {"uv_tcp_connect", "ECONNREFUSED"}, {"uv_read_start", "ENOMEM"}, {"uv_write", "EPIPE"},
    {"uv_try_write", "EPIPE"},          {"uv_shutdown", "ENOTCONN"}, {"uv_pipe", "EMFILE"},
    {"uv_pipe_open", "EMFILE"},         {"uv_spawn", "EAGAIN"},
};

const char* const kAsyncioScenarios[] = {"asyncio_echo", "asyncio_subprocess"};
#endif

// The calls to fail: every one of the first few, then sparser (a scenario may make hundreds).
const int kNth[] = {1, 2, 3, 4, 5, 6, 8, 11, 16, 23, 32, 64};

class FaultInjection : public ::testing::TestWithParam<std::tuple<const char*, Fault>> {};

TEST_P(FaultInjection, EndsCleanlyWithAConcurErrorOrSuccessAndLeaksNothing) {
  const auto& [scenario, fault] = GetParam();
  const std::string fired = "/tmp/concur-fault-fired-" + std::to_string(getpid());
  int reached = 0;
  for (int n : kNth) {
    std::remove(fired.c_str());
    const std::string spec = std::string(fault.call) + ":" + std::to_string(n) + ":" + fault.action;
    const auto r = concur::support::run_command(
        {"/usr/bin/env", "CONCUR_FAULT=" + spec, "CONCUR_FAULT_FIRED=" + fired,
         std::string("LD_PRELOAD=") + CONCUR_FAULT_LIBRARY, CONCUR_FAULT_SCENARIOS, scenario},
        60s);
    const bool hit = access(fired.c_str(), F_OK) == 0;
    ASSERT_FALSE(r.timed_out) << scenario << " hung with " << spec << "\n" << r.err;
    EXPECT_EQ(r.exit_code, 0) << scenario << " with " << spec << ":\n" << r.err;
    if (!hit) break;  // the scenario made fewer than n such calls: later n change nothing
    ++reached;
  }
  std::remove(fired.c_str());
  RecordProperty("faults_fired", reached);
}

std::string name_of(const ::testing::TestParamInfo<FaultInjection::ParamType>& info) {
  const auto& [scenario, fault] = info.param;
  return std::string(scenario) + "_" + fault.call + "_" + fault.action;
}

INSTANTIATE_TEST_SUITE_P(EverySyscall, FaultInjection,
                         ::testing::Combine(::testing::ValuesIn(kScenarios),
                                            ::testing::ValuesIn(kFaults)),
                         name_of);

#if CONCUR_FAULT_ASYNCIO
INSTANTIATE_TEST_SUITE_P(EveryLibuvCall, FaultInjection,
                         ::testing::Combine(::testing::ValuesIn(kAsyncioScenarios),
                                            ::testing::ValuesIn(kLibuvFaults)),
                         name_of);
#endif

}  // namespace
