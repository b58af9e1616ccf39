// What another process can and cannot make concur do (docs/SECURITY.md states these; each
// statement has its test here or in tests/fuzz/):
//   - a received call runs only a function registered in this program, and only when its
//     signature is the one registered here;
//   - a message decodes only as the type the receiver expects;
//   - the channels between concur's processes are unnamed socket pairs, reachable by no path;
//   - shared-memory segments are created for their owner alone (mode 0600).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <concur/multiprocessing/connection.hpp>
#include <concur/multiprocessing/main_guard.hpp>
#include <concur/multiprocessing/process.hpp>
#include <concur/multiprocessing/shared_memory.hpp>
#include <concur/process_pool.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "multiprocessing/launcher.hpp"
#include "subprocess_helpers.hpp"
#include "test_support.hpp"

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;

namespace {

std::atomic<int> g_runs{0};

int count_run(int x) {
  ++g_runs;
  return x;
}
CONCUR_REGISTER(count_run);

int identity(int x) {
  return x;
}
CONCUR_REGISTER(identity);

TEST(WireSafety, ACallNamingAnUnregisteredFunctionRunsNothing) {
  mp::Call call = mp::make_call(&count_run, 1);
  call.function = "system";  // what a pickle's __reduce__ could name; here, no such entry
  g_runs = 0;
  EXPECT_EQ(mp::detail::run_call("test", std::move(call)), 1);
  EXPECT_EQ(g_runs, 0);
}

TEST(WireSafety, ACallWhoseSignatureDiffersFromTheRegisteredOneRunsNothing) {
  mp::Call call = mp::make_call(&count_run, 1);
  call.signature = "int (*)(long)";  // another build of the program, or a forged message
  g_runs = 0;
  EXPECT_EQ(mp::detail::run_call("test", std::move(call)), 1);
  EXPECT_EQ(g_runs, 0);
  mp::Call fine = mp::make_call(&count_run, 1);
  EXPECT_EQ(mp::detail::run_call("test", std::move(fine)), 0);
  EXPECT_EQ(g_runs, 1);
}

TEST(WireSafety, ArgumentsThatDoNotDecodeAsTheParametersRunNothing) {
  mp::Call call = mp::make_call(&count_run, 1);
  call.args = mp::serialize(std::string("not an int tuple"));
  g_runs = 0;
  EXPECT_EQ(mp::detail::run_call("test", std::move(call)), 1);
  EXPECT_EQ(g_runs, 0);
}

TEST(WireSafety, AMessageDecodesOnlyAsTheTypeTheReceiverExpects) {
  auto [a, b] = mp::Pipe();
  a.send(std::string("text"));
  EXPECT_THROW(b.recv<int>(5s), concur::TypeError);
}

// The inode of every socket this process has open, and the paths /proc/net/unix gives them.
std::set<std::string> socket_paths_of_this_process() {
  std::set<std::string> inodes;
  for (const std::string& fd : concur::testing::list_dir("/proc/self/fd")) {
    char target[128] = {};
    const std::string link = "/proc/self/fd/" + fd;
    if (readlink(link.c_str(), target, sizeof target - 1) > 0 &&
        std::string(target).rfind("socket:[", 0) == 0) {
      inodes.insert(std::string(target).substr(8, std::string(target).size() - 9));
    }
  }
  std::set<std::string> paths;
  std::ifstream net("/proc/net/unix");
  std::string line;
  std::getline(net, line);  // the header
  while (std::getline(net, line)) {
    std::istringstream fields(line);
    std::string num, refs, protocol, flags, type, state, inode, path;
    fields >> num >> refs >> protocol >> flags >> type >> state >> inode;
    if (inodes.count(inode) && (fields >> path)) paths.insert(path);
  }
  return paths;
}

TEST(WireSafety, TheChannelsBetweenProcessesHaveNoNameAnotherProcessCouldConnectTo) {
  concur::ProcessPoolExecutor pool({.max_workers = 2, .start_method = mp::StartMethod::forkserver});
  EXPECT_EQ(pool.submit(identity, 5).result(30s), 5);  // the forkserver and a worker are running
  auto [a, b] = mp::Pipe();
  EXPECT_TRUE(socket_paths_of_this_process().empty())
      << "a socket with a path or an abstract name: " << *socket_paths_of_this_process().begin();
}

TEST(WireSafety, SharedMemoryIsCreatedForItsOwnerAlone) {
  auto shm = mp::SharedMemory::create(4096);
  struct stat st {};
  ASSERT_EQ(stat(("/dev/shm/" + shm.name()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
}

}  // namespace

int main(int argc, char** argv) {
  concur::multiprocessing::main_guard(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
