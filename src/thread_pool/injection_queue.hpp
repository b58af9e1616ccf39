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
//
// Emptiness. The stub is pushed back whenever the consumer takes the last node, so it does not
// always sit at the front: a producer that pushes between the consumer's "is this the last node?"
// check and its push of the stub leaves the queue as `task -> stub`, with the stub at the head and
// a task still inside. "head is the stub" therefore does not mean empty; the queue is empty only
// when the consumer's tail is the stub as well. (Judging by the head alone once stranded a task
// until the next submit: a pool with parked workers and a queued task, found under TSan.)
#pragma once

#include <atomic>
#include <cstddef>

#include "concur/detail/future_state.hpp"

namespace concur::detail {

class InjectionQueue {
 public:
  InjectionQueue() {
    head_.store(&stub_, std::memory_order_relaxed);
    tail_.store(&stub_, std::memory_order_relaxed);
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
  // Both loads are seq_cst, as are the head's exchanges and the tail's stores: seeing the stub at
  // the head means every tail store made before that stub was pushed is visible too, so a tail
  // that still stands on an unconsumed node (or the node before it) is never missed.
  bool maybe_nonempty() const noexcept {
    return head_.load(std::memory_order_seq_cst) != &stub_ ||
           tail_.load(std::memory_order_seq_cst) != &stub_;
  }

  // Any thread: takes the consumer side, or returns false at once if another thread has it.
  bool try_lock() noexcept {
    return !consumer_busy_.load(std::memory_order_relaxed) &&
           !consumer_busy_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { consumer_busy_.store(false, std::memory_order_release); }

  // Consumer side only (between try_lock() and unlock()). nullptr when empty or when a producer
  // is between its two steps (try again shortly).
  StateBase* pop() noexcept {
    StateBase* tail = tail_.load(std::memory_order_relaxed);  // only the consumer writes it
    StateBase* next = tail->next_task.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (!next) return nullptr;
      set_tail(next);
      tail = next;
      next = next->next_task.load(std::memory_order_acquire);
    }
    if (next) {
      set_tail(next);
      return tail;
    }
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;
    push(&stub_);
    next = tail->next_task.load(std::memory_order_acquire);
    if (next) {
      set_tail(next);
      return tail;
    }
    return nullptr;
  }

 private:
  friend struct SchedulerInspection;  // reads the fields concur-ps follows
  // A node that is never a task: it stands in the queue when it is empty.
  class Stub final : public StateBase {};

  void set_tail(StateBase* node) noexcept { tail_.store(node, std::memory_order_seq_cst); }

  alignas(64) std::atomic<StateBase*> head_;
  alignas(64) std::atomic<bool> consumer_busy_{false};
  // Written by the consumer only; read by anyone through maybe_nonempty().
  std::atomic<StateBase*> tail_;
  Stub stub_;
};

}  // namespace concur::detail
