// Internal: the queue through which threads outside a pool hand it tasks.
//
// Producers never wait for each other or for consumers: a push is one atomic exchange plus one
// store (Dmitry Vyukov's intrusive multi-producer queue, linking tasks through their own
// `next_task` field, so a push allocates nothing). Consumers are the pool's workers; the queue
// admits one at a time through a try-lock, and a worker that finds it taken goes to steal from
// the other workers instead of waiting. The winner takes a batch, so the lock is taken once per
// batch rather than once per task.
//
// Order: FIFO per producer.
// A push that has exchanged the head but not yet linked its node makes the queue look empty past
// that point for a moment; maybe_nonempty() still reports it, so nobody sleeps on it.
#pragma once

#include <atomic>
#include <cstddef>

#include "concur/detail/future_state.hpp"

namespace concur::detail {

class InjectionQueue {
 public:
  InjectionQueue() {
    head_.store(&stub_, std::memory_order_relaxed);
    tail_ = &stub_;
  }
  InjectionQueue(const InjectionQueue&) = delete;
  InjectionQueue& operator=(const InjectionQueue&) = delete;

  // Any thread.
  void push(StateBase* task) noexcept {
    task->next_task.store(nullptr, std::memory_order_relaxed);
    StateBase* prev = head_.exchange(task, std::memory_order_seq_cst);
    prev->next_task.store(task, std::memory_order_release);
  }

  // Any thread; false only if the queue was certainly empty at some moment during the call.
  bool maybe_nonempty() const noexcept { return head_.load(std::memory_order_seq_cst) != &stub_; }

  // Any thread: takes the consumer side, or returns false at once if another thread has it.
  bool try_lock() noexcept {
    return !consumer_busy_.load(std::memory_order_relaxed) &&
           !consumer_busy_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { consumer_busy_.store(false, std::memory_order_release); }

  // Consumer side only (between try_lock() and unlock()). nullptr when empty or when a producer
  // is between its two steps (try again shortly).
  StateBase* pop() noexcept {
    StateBase* tail = tail_;
    StateBase* next = tail->next_task.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (!next) return nullptr;
      tail_ = next;
      tail = next;
      next = next->next_task.load(std::memory_order_acquire);
    }
    if (next) {
      tail_ = next;
      return tail;
    }
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;
    push(&stub_);
    next = tail->next_task.load(std::memory_order_acquire);
    if (next) {
      tail_ = next;
      return tail;
    }
    return nullptr;
  }

 private:
  // A node that is never a task: it stands in the queue when it is empty.
  class Stub final : public StateBase {};

  alignas(64) std::atomic<StateBase*> head_;
  alignas(64) std::atomic<bool> consumer_busy_{false};
  StateBase* tail_;
  Stub stub_;
};

}  // namespace concur::detail
