// The coroutine frame allocator (core.hpp's allocate_frame, deallocate_frame, frame_stats).
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>
#include <tuple>
#include <utility>

#include "concur/asyncio/detail/core.hpp"
#include "concur/asyncio/task.hpp"  // core.hpp's inline members are defined there
#include "platform/process.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define CONCUR_FRAMES_LSAN 1
#include <sanitizer/lsan_interface.h>
#else
#define CONCUR_FRAMES_LSAN 0
#endif

namespace concur::asyncio::detail {

// ---------------------------------------------------------------------------------------------
// Frame allocator. A coroutine frame is freed on the thread that finishes its task, which is the
// thread that made it in every normal program; a frame freed elsewhere just joins that thread's
// list.
//
// Where new blocks come from. A burst of tasks needs all its frames at once (every task is
// created before the first one runs), so the first burst of a program is mostly first touches of
// fresh memory: create + gather of 100,000 tasks took ~7,300 minor faults, and about two thirds
// of its time went to the kernel zeroing and mapping pages. A thread carves new blocks from 2 MiB
// chunks mapped for frames, at a pointer bump each (no malloc call per frame; pages still fault
// in as first touched, so a program with a handful of tasks keeps only the pages it uses). Tried
// and left out (issue 22, bench/asyncio_curve): MADV_HUGEPAGE on the chunks halved the burst's
// faults and cut a quarter of its time in single runs, but on this project's VMs fresh huge
// pages often took far longer to fault in (the host backing new memory: 80-160 ms bursts), and
// the median cold burst got 3x slower; pre-faulting (MAP_POPULATE) gained little over faulting on
// touch.
//
// What is kept, and why. A chunk block never goes back to malloc (it cannot): it is either live
// or on some thread's free list, and the chunks stay mapped for the life of the process, at most
// kMaxChunks of them (64 MiB; the frames of about 290,000 small tasks): a program that made a
// burst of tasks once tends to make it again (the next wave of connections, the next round), and
// its pages are the expensive part (the first touch of a page costs more than the frames in it).
// Past that budget, blocks come from operator new one at a time as before, and each thread's list
// keeps at most kMaxCached of them, freeing the rest, so that a burst of a million tasks does not
// pin its peak memory for ever. When a thread ends, its heap blocks are freed and its chunk blocks
// (and the rest of its chunk) pass to the threads that go on, through lists that any thread's next
// refill takes over.

namespace {

constexpr std::size_t kClassBytes = 32;
constexpr std::size_t kClasses = 32;  // up to 1 KiB
constexpr std::size_t kMaxCached = 1u << 18;
constexpr std::size_t kChunkBytes = std::size_t{2} << 20;
constexpr std::size_t kMaxChunks = 32;

std::atomic<std::int64_t> g_live_frames{0};
std::atomic<std::int64_t> g_live_frame_bytes{0};  // size-class bytes of the live frames
std::atomic<std::int64_t> g_frame_heap_bytes{0};  // bytes the allocator holds from the heap

struct FreeBlock {
  FreeBlock* next;
};

// The chunks, process-wide. Their bases are published once each (slots fill in order, never
// empty again), so that telling a chunk block from a heap block needs no lock.
std::array<std::atomic<std::uintptr_t>, kMaxChunks> g_chunk_bases{};
std::atomic<std::size_t> g_chunk_count{0};

// What ended threads left: the rest of their chunk and their chunk blocks, per class. Under
// g_spare_mutex (which also serialises mapping chunks); bit k of g_spare_classes says that class
// k has blocks here, so that a refill looks without locking. All trivially destructible: a frame
// freed during the process's exit may still come here.
constexpr std::size_t kMaxSpareRanges = 64;
std::mutex g_spare_mutex;
std::array<std::pair<char*, char*>, kMaxSpareRanges> g_spare_ranges{};
std::size_t g_spare_range_count = 0;
std::array<FreeBlock*, kClasses> g_spare_heads{};
std::array<std::size_t, kClasses> g_spare_counts{};
std::atomic<std::uint32_t> g_spare_classes{0};
// Bit k: a block of class k was ever taken from the heap. Until then a thread's list of class k
// holds chunk blocks only, and an ending thread hands it on whole instead of sorting it block by
// block (for a list of 100,000 blocks that walk is milliseconds of cache misses at exit).
std::atomic<std::uint32_t> g_heap_classes{0};
static_assert(kClasses <= 32);

// Under g_spare_mutex.
void push_spare(FreeBlock* b, std::size_t k) {
  b->next = g_spare_heads[k];
  g_spare_heads[k] = b;
  ++g_spare_counts[k];
  g_spare_classes.fetch_or(std::uint32_t{1} << k, std::memory_order_relaxed);
}

bool in_chunk(const void* p) {
  auto base = reinterpret_cast<std::uintptr_t>(p) & ~(kChunkBytes - 1);
  std::size_t n = std::min(g_chunk_count.load(std::memory_order_acquire), kMaxChunks);
  for (std::size_t i = 0; i < n; ++i) {
    if (g_chunk_bases[i].load(std::memory_order_relaxed) == base) return true;
  }
  return false;
}

// Maps a 2 MiB-aligned chunk (aligned so that in_chunk can find its base, and so that a kernel
// with transparent huge pages always on can back it with one); null once the budget is spent or
// if the kernel refuses.
char* map_chunk() {
  std::size_t slot = g_chunk_count.load(std::memory_order_relaxed);
  if (slot >= kMaxChunks) return nullptr;
  void* raw =
      mmap(nullptr, 2 * kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  auto base = (start + kChunkBytes - 1) & ~(kChunkBytes - 1);
  if (base > start) munmap(raw, base - start);
  if (std::size_t tail = start + 2 * kChunkBytes - (base + kChunkBytes)) {
    munmap(reinterpret_cast<void*>(base + kChunkBytes), tail);
  }
  auto* chunk = reinterpret_cast<char*>(base);
#if CONCUR_FRAMES_LSAN
  // Live frames and free lists in a chunk point at heap blocks: let the leak checker see them.
  __lsan_register_root_region(chunk, kChunkBytes);
#endif
  g_chunk_bases[slot].store(base, std::memory_order_relaxed);
  g_chunk_count.store(slot + 1, std::memory_order_release);
  return chunk;
}

// A thread's lists, the part of a chunk it carves new blocks from, and its share of the live
// counts. Trivially destructible and zero-initialised, so that reaching it costs no
// initialisation check; FrameCacheGuard (made on the thread's first refill or first free) hands
// its contents on when the thread ends, and frees after that go straight to the heap or to the
// spare lists.
//
// The counts are the thread's own (only it writes them, with a plain load and store: a locked
// add on a shared counter cost more than the rest of a frame's allocation) and frame_stats() sums
// them over the threads, registered in a list under g_spare_mutex; a thread's counts join the
// process-wide ones (g_live_*) when it ends. A thread's live count goes below zero when it frees
// frames that others made; the sum is what counts.
struct FrameCache {
  enum State : std::uint8_t { kUnregistered, kLive, kEnded };
  std::array<FreeBlock*, kClasses> heads;
  std::array<std::size_t, kClasses> counts;
  char* carve;
  char* carve_end;
  std::atomic<std::int64_t> live_frames;
  std::atomic<std::int64_t> live_bytes;
  FrameCache* prev_thread;
  FrameCache* next_thread;
  State state;
};

thread_local FrameCache t_frames{};
FrameCache* g_threads = nullptr;  // the registered (kLive) caches, under g_spare_mutex

void add(std::atomic<std::int64_t>& counter, std::int64_t delta) {
  counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

// A frame of `bytes` made (+1) or freed (-1) by a thread in any state.
void count(FrameCache& c, std::int64_t frames, std::int64_t bytes) {
  if (c.state == FrameCache::kLive) {
    add(c.live_frames, frames);
    add(c.live_bytes, bytes);
  } else {
    g_live_frames.fetch_add(frames, std::memory_order_relaxed);
    g_live_frame_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
}

void end_thread_cache() noexcept {
  FrameCache& c = t_frames;
  std::lock_guard lock(g_spare_mutex);
  const std::uint32_t heap_classes = g_heap_classes.load(std::memory_order_relaxed);
  for (std::size_t k = 0; k < kClasses; ++k) {
    auto bytes = static_cast<std::int64_t>((k + 1) * kClassBytes);
    if (c.heads[k] && !g_spare_heads[k] && !(heap_classes & (std::uint32_t{1} << k))) {
      g_spare_heads[k] = std::exchange(c.heads[k], nullptr);
      g_spare_counts[k] = c.counts[k];
      g_spare_classes.fetch_or(std::uint32_t{1} << k, std::memory_order_relaxed);
    }
    while (FreeBlock* b = c.heads[k]) {
      c.heads[k] = b->next;
      if (in_chunk(b)) {
        push_spare(b, k);
      } else {
        g_frame_heap_bytes.fetch_sub(bytes, std::memory_order_relaxed);
        ::operator delete(b);
      }
    }
    c.counts[k] = 0;
  }
  if (c.carve_end - c.carve >= static_cast<std::ptrdiff_t>(kClassBytes) &&
      g_spare_range_count < kMaxSpareRanges) {  // (else the rest of the chunk stays unused)
    g_spare_ranges[g_spare_range_count++] = {c.carve, c.carve_end};
  }
  c.carve = c.carve_end = nullptr;
  g_live_frames.fetch_add(c.live_frames.load(std::memory_order_relaxed), std::memory_order_relaxed);
  g_live_frame_bytes.fetch_add(c.live_bytes.load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
  c.live_frames.store(0, std::memory_order_relaxed);
  c.live_bytes.store(0, std::memory_order_relaxed);
  (c.prev_thread ? c.prev_thread->next_thread : g_threads) = c.next_thread;
  if (c.next_thread) c.next_thread->prev_thread = c.prev_thread;
  c.state = FrameCache::kEnded;
}

struct FrameCacheGuard {
  ~FrameCacheGuard() { end_thread_cache(); }
};

// A fork taken while another thread held g_spare_mutex would leave it locked for ever in the
// child, where that thread does not exist: the child makes it anew (as the inspect anchor does).
// Not taken before the fork instead: frames are allocated under any lock of the program, so
// holding this one across fork() would order it against every other fork handler's lock. The
// forked child's lists are those of a single-threaded fork in every case concur forks itself (its
// fork start methods refuse a process with other threads running).
void remake_spare_mutex_in_child() {
  new (&g_spare_mutex) std::mutex;
}

void register_thread_cache() {
  thread_local FrameCacheGuard guard;
  (void)&guard;
  static const bool fork_handler =
      (platform::on_every_fork(nullptr, nullptr, remake_spare_mutex_in_child), true);
  (void)fork_handler;
  FrameCache& c = t_frames;
  std::lock_guard lock(g_spare_mutex);
  c.prev_thread = nullptr;
  c.next_thread = g_threads;
  if (g_threads) g_threads->prev_thread = &c;
  g_threads = &c;
  c.state = FrameCache::kLive;
}

void* heap_block(std::size_t bytes) {
  void* p = ::operator new(bytes);
  g_frame_heap_bytes.fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  if (bytes >= kClassBytes && bytes <= kClasses * kClassBytes) {  // a class block
    g_heap_classes.fetch_or(std::uint32_t{1} << (bytes / kClassBytes - 1),
                            std::memory_order_relaxed);
  }
  return p;
}

// Takes over the blocks of class k that ended threads left, if any.
bool take_spare_blocks(FrameCache& c, std::size_t k) {
  std::lock_guard lock(g_spare_mutex);
  if (!g_spare_heads[k]) return false;
  c.heads[k] = g_spare_heads[k];
  c.counts[k] = g_spare_counts[k];
  g_spare_heads[k] = nullptr;
  g_spare_counts[k] = 0;
  g_spare_classes.fetch_and(~(std::uint32_t{1} << k), std::memory_order_relaxed);
  return true;
}

// The slow path of allocate_frame: class k's list is empty.
[[gnu::noinline]] void* refill(std::size_t k) {
  FrameCache& c = t_frames;
  const std::size_t bytes = (k + 1) * kClassBytes;
  if (c.state != FrameCache::kLive) {
    if (c.state == FrameCache::kEnded) {
      void* p = heap_block(bytes);
      count(c, 1, static_cast<std::int64_t>(bytes));
      return p;
    }
    register_thread_cache();
  }
  add(c.live_frames, 1);
  add(c.live_bytes, static_cast<std::int64_t>(bytes));
  if ((g_spare_classes.load(std::memory_order_relaxed) & (std::uint32_t{1} << k)) &&
      take_spare_blocks(c, k)) {
    FreeBlock* b = c.heads[k];
    c.heads[k] = b->next;
    --c.counts[k];
    return b;
  }
  if (static_cast<std::size_t>(c.carve_end - c.carve) < bytes) {
    // The rest of a chunk an ended thread left, or a new chunk; the few bytes left of the
    // current one are given up.
    std::lock_guard lock(g_spare_mutex);
    c.carve = c.carve_end = nullptr;
    while (static_cast<std::size_t>(c.carve_end - c.carve) < bytes && g_spare_range_count > 0) {
      std::tie(c.carve, c.carve_end) = g_spare_ranges[--g_spare_range_count];
    }
    if (static_cast<std::size_t>(c.carve_end - c.carve) < bytes) {
      char* chunk = map_chunk();
      if (!chunk) return heap_block(bytes);
      c.carve = chunk;
      c.carve_end = chunk + kChunkBytes;
    }
  }
  void* p = c.carve;
  c.carve += bytes;
  return p;
}

// The slow path of deallocate_frame: the thread has no cache yet or no more, or class k's list is
// full.
[[gnu::noinline]] void release(void* p, std::size_t k) noexcept {
  FrameCache& c = t_frames;
  auto* b = static_cast<FreeBlock*>(p);
  const auto bytes = static_cast<std::int64_t>((k + 1) * kClassBytes);
  if (c.state == FrameCache::kUnregistered) {
    try {
      register_thread_cache();
    } catch (...) {  // cannot make the guard: keep nothing on this thread
      c.state = FrameCache::kEnded;
    }
  }
  count(c, -1, -bytes);
  if (c.state == FrameCache::kEnded) {
    if (in_chunk(p)) {
      std::lock_guard lock(g_spare_mutex);
      push_spare(b, k);
    } else {
      g_frame_heap_bytes.fetch_sub(bytes, std::memory_order_relaxed);
      ::operator delete(p);
    }
    return;
  }
  // Over the cap, a heap block goes back to the heap; a chunk block stays (bounded by the
  // chunks).
  if (c.counts[k] >= kMaxCached && !in_chunk(p)) {
    g_frame_heap_bytes.fetch_sub(bytes, std::memory_order_relaxed);
    ::operator delete(p);
    return;
  }
  b->next = c.heads[k];
  c.heads[k] = b;
  ++c.counts[k];
}

}  // namespace

void* allocate_frame(std::size_t size) {
  std::size_t cls = (size + kClassBytes - 1) / kClassBytes;
  if (cls == 0 || cls > kClasses) {
    g_live_frames.fetch_add(1, std::memory_order_relaxed);
    g_live_frame_bytes.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    return heap_block(size);
  }
  FrameCache& c = t_frames;
  if (FreeBlock* b = c.heads[cls - 1]) {  // a block on the list: the thread is registered
    c.heads[cls - 1] = b->next;
    --c.counts[cls - 1];
    add(c.live_frames, 1);
    add(c.live_bytes, static_cast<std::int64_t>(cls * kClassBytes));
    return b;
  }
  return refill(cls - 1);
}

void deallocate_frame(void* p, std::size_t size) noexcept {
  std::size_t cls = (size + kClassBytes - 1) / kClassBytes;
  if (cls == 0 || cls > kClasses) {
    g_live_frames.fetch_sub(1, std::memory_order_relaxed);
    g_live_frame_bytes.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    g_frame_heap_bytes.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    ::operator delete(p);
    return;
  }
  FrameCache& c = t_frames;
  if (c.state != FrameCache::kLive || c.counts[cls - 1] >= kMaxCached) [[unlikely]] {
    release(p, cls - 1);
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = c.heads[cls - 1];
  c.heads[cls - 1] = b;
  ++c.counts[cls - 1];
  add(c.live_frames, -1);
  add(c.live_bytes, -static_cast<std::int64_t>(cls * kClassBytes));
}

std::int64_t live_frames() noexcept {
  return frame_stats().live_frames;
}
FrameStats frame_stats() noexcept {
  std::lock_guard lock(g_spare_mutex);
  FrameStats s{
      g_live_frames.load(std::memory_order_relaxed),
      g_live_frame_bytes.load(std::memory_order_relaxed),
      g_frame_heap_bytes.load(std::memory_order_relaxed),
      static_cast<std::int64_t>(
          std::min(g_chunk_count.load(std::memory_order_relaxed), kMaxChunks) * kChunkBytes)};
  for (FrameCache* c = g_threads; c; c = c->next_thread) {
    s.live_frames += c->live_frames.load(std::memory_order_relaxed);
    s.live_bytes += c->live_bytes.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace concur::asyncio::detail
