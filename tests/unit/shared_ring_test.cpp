// Unit tests of src/multiprocessing/shared_ring.hpp (the shared-memory ring a process pool passes
// large values through) and of how a message's shared spans are resolved (task_message.hpp): in
// order, wrapping, full, emptied and reused, and every way a span from another process can lie.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/registry.hpp"
#include "multiprocessing/shared_ring.hpp"
#include "multiprocessing/task_message.hpp"

namespace mp = concur::multiprocessing;
namespace mpd = concur::multiprocessing::detail;

int twice(int x) {
  return 2 * x;
}
CONCUR_REGISTER(twice);

namespace {

constexpr std::uint64_t kCapacity = 1 << 20;

std::string read(const mpd::SharedRing& ring, std::uint64_t position, std::uint64_t n) {
  return std::string(ring.view(position, n));
}

TEST(SharedRing, SpacesComeInOrderAndTheReaderSeesWhatTheWriterWrote) {
  auto writer = mpd::SharedRing::create(kCapacity);
  auto reader = mpd::SharedRing::attach(dup(writer->fd()));
  ASSERT_EQ(reader->capacity(), kCapacity);
  const auto a = writer->allocate(5);
  const auto b = writer->allocate(7);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, 0u);
  EXPECT_EQ(*b, 5u);
  std::memcpy(writer->data(*a), "hello", 5);
  std::memcpy(writer->data(*b), ", world", 7);
  EXPECT_EQ(read(*reader, *a, 5), "hello");
  EXPECT_EQ(read(*reader, *b, 7), ", world");
}

TEST(SharedRing, AFullRingRefusesUntilTheReaderReleasesInOrder) {
  auto writer = mpd::SharedRing::create(kCapacity);
  auto reader = mpd::SharedRing::attach(dup(writer->fd()));
  const auto first = writer->allocate(kCapacity / 2);
  const auto second = writer->allocate(kCapacity / 2);
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(writer->allocate(1)) << "a full ring must refuse, not overwrite";
  reader->release_through(*first + kCapacity / 2);
  const auto third = writer->allocate(kCapacity / 4);
  ASSERT_TRUE(third) << "the first half was released";
  EXPECT_EQ(*third % kCapacity, 0u) << "the space goes where the first one was";
  EXPECT_FALSE(writer->allocate(kCapacity / 2)) << "only a quarter is free";
}

TEST(SharedRing, ASpaceNeverStraddlesTheEnd) {
  auto writer = mpd::SharedRing::create(kCapacity);
  const auto a = writer->allocate(kCapacity - 100);
  ASSERT_TRUE(a);
  const auto small = writer->allocate(50);  // fits before the end
  ASSERT_TRUE(small);
  writer->release_through(*small + 50);  // everything read (the writer may release too)
  // Not empty in between would force a skip; here the ring is empty, so it starts at the front.
  const auto b = writer->allocate(200);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b % kCapacity, 0u);
  EXPECT_LE(*b % kCapacity + 200, kCapacity);
  // Now with the ring not empty: a space too big for the tail skips to the front once it is free.
  auto ring = mpd::SharedRing::create(kCapacity);
  const auto x = ring->allocate(kCapacity - 100);
  const auto y = ring->allocate(60);
  ASSERT_TRUE(x && y);
  ring->release_through(*x + kCapacity - 100);  // x read, y not yet
  const auto z = ring->allocate(1000);          // 40 bytes left at the end: skip them
  ASSERT_TRUE(z);
  EXPECT_EQ(*z % kCapacity, 0u);
  EXPECT_GT(*z, *y);
}

TEST(SharedRing, AnEmptiedRingStartsAtTheFrontAgain) {
  auto writer = mpd::SharedRing::create(kCapacity);
  auto reader = mpd::SharedRing::attach(dup(writer->fd()));
  for (int round = 0; round < 100; ++round) {
    const auto p = writer->allocate(3000);
    ASSERT_TRUE(p);
    EXPECT_EQ(*p % kCapacity, 0u) << "round " << round << ": one space at a time reuses the front";
    std::memset(writer->data(*p), 'a' + round % 26, 3000);
    EXPECT_EQ(reader->view(*p, 3000)[2999], 'a' + round % 26);
    reader->release_through(*p + 3000);
  }
}

TEST(SharedRing, TooLargeOrEmptyIsRefused) {
  auto writer = mpd::SharedRing::create(kCapacity);
  EXPECT_FALSE(writer->allocate(kCapacity + 1));
  EXPECT_FALSE(writer->allocate(0));
  EXPECT_TRUE(writer->allocate(kCapacity));
}

TEST(SharedRing, ASpanOutsideTheRingIsAProtocolError) {
  auto ring = mpd::SharedRing::create(kCapacity);
  EXPECT_THROW((void)ring->view(kCapacity - 10, 11), concur::ProtocolError);
  EXPECT_THROW((void)ring->view(0, kCapacity + 1), concur::ProtocolError);
  EXPECT_THROW((void)ring->view(5, 0), concur::ProtocolError);
  EXPECT_THROW((void)ring->view(~std::uint64_t{0}, ~std::uint64_t{0}), concur::ProtocolError);
  EXPECT_NO_THROW((void)ring->view(kCapacity - 10, 10));
}

TEST(SharedRing, ADescriptorThatIsNotARingIsRefusedAndClosed) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_THROW((void)mpd::SharedRing::attach(pipe_fds[0]), concur::ProtocolError);
  EXPECT_EQ(fcntl(pipe_fds[0], F_GETFD), -1) << "attach() takes the descriptor, on failure too";
  ::close(pipe_fds[1]);
  // A memfd of the right size with no ring's header in it.
  const int fd = memfd_create("not-a-ring", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096 + kCapacity), 0);
  EXPECT_THROW((void)mpd::SharedRing::attach(fd), concur::ProtocolError);
}

TEST(SharedRing, TheReaderInAnotherProcessSeesTheBytesAndItsReleaseReachesTheWriter) {
  auto writer = mpd::SharedRing::create(kCapacity);
  const auto first = writer->allocate(kCapacity);
  ASSERT_TRUE(first);
  std::memset(writer->data(*first), 'x', kCapacity);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto reader = mpd::SharedRing::attach(dup(writer->fd()));
    const std::string_view bytes = reader->view(*first, kCapacity);
    const bool all_x = bytes.find_first_not_of('x') == std::string_view::npos;
    reader->release_through(*first + kCapacity);
    _exit(all_x ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child saw other bytes";
  EXPECT_TRUE(writer->allocate(kCapacity)) << "the child's release must free the whole ring";
}

// resolve_shared: how a message's spans become the values a pool decodes.

TEST(ResolveShared, SpansReplaceTheirEmptyEntriesAndTheRestStayAsSent) {
  auto ring = mpd::SharedRing::create(kCapacity);
  const auto p = ring->allocate(4);
  std::memcpy(ring->data(*p), "big!", 4);
  const std::vector<std::string> values = {"small", "", "tiny"};
  const auto views = mpd::resolve_shared(values, {{1, *p, 4}}, ring.get());
  ASSERT_EQ(views.size(), 3u);
  EXPECT_EQ(views[0], "small");
  EXPECT_EQ(views[1], "big!");
  EXPECT_EQ(views[2], "tiny");
}

TEST(ResolveShared, EveryLieOfASpanIsAProtocolError) {
  auto ring = mpd::SharedRing::create(kCapacity);
  const std::vector<std::string> values = {"", "", "full"};
  // No ring was ever sent.
  EXPECT_THROW((void)mpd::resolve_shared(values, {{0, 0, 4}}, nullptr), concur::ProtocolError);
  // An entry that does not exist, or is not empty.
  EXPECT_THROW((void)mpd::resolve_shared(values, {{3, 0, 4}}, ring.get()), concur::ProtocolError);
  EXPECT_THROW((void)mpd::resolve_shared(values, {{2, 0, 4}}, ring.get()), concur::ProtocolError);
  // The same entry twice, or out of order.
  EXPECT_THROW((void)mpd::resolve_shared(values, {{0, 0, 4}, {0, 8, 4}}, ring.get()),
               concur::ProtocolError);
  EXPECT_THROW((void)mpd::resolve_shared(values, {{1, 0, 4}, {0, 8, 4}}, ring.get()),
               concur::ProtocolError);
  // Bytes outside the ring.
  EXPECT_THROW((void)mpd::resolve_shared(values, {{0, kCapacity - 2, 4}}, ring.get()),
               concur::ProtocolError);
  // And the honest case passes.
  EXPECT_NO_THROW((void)mpd::resolve_shared(values, {{0, 0, 4}, {1, 8, 4}}, ring.get()));
}

TEST(ResolveShared, ATaskDecodesItsArgumentsFromTheRingAndRefusesSpansWithoutOne) {
  const mp::Call call = mp::make_call(twice, 21);
  auto ring = mpd::SharedRing::create(kCapacity);
  const auto p = ring->allocate(call.args.size());
  ASSERT_TRUE(p);
  std::memcpy(ring->data(*p), call.args.data(), call.args.size());
  const auto task = [&] {
    mpd::TaskMessage t;
    t.id = 7;
    t.function = call.function;
    t.signature = call.signature;
    t.args = {""};
    t.shared = {{0, *p, call.args.size()}};
    return t;
  };
  const mpd::ResultMessage ok = mpd::run_task(task(), 1, ring.get());
  ASSERT_EQ(ok.status, mpd::ResultMessage::kOk) << ok.error_message;
  ASSERT_EQ(ok.results.size(), 1u);
  EXPECT_EQ(mp::deserialize<int>(ok.results[0]), 42);
  // The same task where no ring was ever sent: nothing runs, and the answer says why.
  const mpd::ResultMessage refused = mpd::run_task(task(), 1, nullptr);
  EXPECT_EQ(refused.status, mpd::ResultMessage::kRaised);
  EXPECT_TRUE(refused.results.empty());
  EXPECT_EQ(refused.error_type, "concur::ProtocolError");
  EXPECT_NE(refused.error_message.find("no ring"), std::string::npos) << refused.error_message;
}

TEST(CheckAnswer, ARaisedAnswerCarryingSpansIsCorrupt) {
  mpd::ResultMessage answer;
  answer.id = 1;
  answer.status = mpd::ResultMessage::kRaised;
  answer.shared = {{0, 0, 4}};
  EXPECT_THROW(mpd::check_answer(answer, 1), concur::ProtocolError);
}

}  // namespace
