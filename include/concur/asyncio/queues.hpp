// concur/asyncio/queues.hpp: Queue, PriorityQueue and LifoQueue for coroutines on one loop
// (Python's asyncio.Queue family, 3.13 semantics).
//
//   put(item)   waits while the queue is full (maxsize > 0), then adds it.
//   get()       waits while it is empty, then removes and returns an item.
//   put_nowait / get_nowait   never wait: QueueFull / QueueEmpty instead.
//   task_done() / join()      join() waits until every item put has been marked done;
//                             task_done() more often than put -> std::invalid_argument.
//   shutdown(immediate)       Python 3.13's: from then on put() and put_nowait() throw
//                             QueueShutDown, and so do get() and get_nowait() once the queue is
//                             empty (at once with immediate = true, which also drops the items
//                             left and counts each as done, so that join() returns). Every task
//                             waiting in put() or get() is woken to re-check. Shutting down
//                             twice is harmless.
// Cancellation: a waiting put()/get() throws CancelledError and loses nothing: an item is only
// taken by the get() that returns it, and a wake-up a cancelled waiter will not use is passed on
// to the next waiter. Waiters are served first come, first served.
// Thread safety: none (the loop's thread). To feed a queue from another thread, post the put with
// EventLoop::call_soon_threadsafe.
//
// Example:
//   asyncio::Queue<int> q(10);
//   co_await q.put(1);  int x = co_await q.get();  q.task_done();
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "concur/asyncio/detail/wait.hpp"
#include "concur/asyncio/sync.hpp"
#include "concur/asyncio/task.hpp"
#include "concur/errors.hpp"

namespace concur::asyncio {

// Python 3.13's asyncio.QueueShutDown: the queue was shut down (see shutdown() above).
class QueueShutDown : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// FIFO order.
template <class T>
struct FifoStore {
  std::deque<T> items;
  void push(T v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.front());
    items.pop_front();
    return v;
  }
  std::size_t size() const { return items.size(); }
};

// Last in, first out.
template <class T>
struct LifoStore {
  std::vector<T> items;
  void push(T v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const { return items.size(); }
};

// Smallest first (by Compare, like Python's heapq), FIFO among equals is not promised.
template <class T, class Compare>
struct HeapStore {
  std::vector<T> items;
  // std heap functions keep the largest on top: invert the comparison.
  struct Inverted {
    Compare less;
    bool operator()(const T& a, const T& b) const { return less(b, a); }
  };
  void push(T v) {
    items.push_back(std::move(v));
    std::push_heap(items.begin(), items.end(), Inverted{});
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(), Inverted{});
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const { return items.size(); }
};

template <class T, class Store>
class BasicQueue {
 public:
  // maxsize 0: unbounded.
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) { finished_.set(); }
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  std::size_t qsize() const { return store_.size(); }
  std::size_t maxsize() const { return maxsize_; }
  bool empty() const { return store_.size() == 0; }
  bool full() const { return maxsize_ != 0 && store_.size() >= maxsize_; }

  void put_nowait(T item) {
    if (shutdown_) throw_shut_down("put_nowait");
    if (full()) {
      throw QueueFull("asyncio::Queue::put_nowait(): the queue is full (maxsize " +
                      std::to_string(maxsize_) + "); co_await put() to wait for room");
    }
    store_.push(std::move(item));
    ++unfinished_;
    finished_.clear();
    wake_first(getters_);
  }
  T get_nowait() {
    if (empty()) {
      if (shutdown_) throw_shut_down("get_nowait");
      throw QueueEmpty("asyncio::Queue::get_nowait(): the queue is empty; co_await get() to wait");
    }
    T item = store_.pop();
    wake_first(putters_);
    return item;
  }

  Task<void> put(T item) {
    while (full()) {
      if (shutdown_) throw_shut_down("put");
      ListWait w(putters_);
      co_await w;
      if (w.cancel_due()) {
        if (w.woken() && !full()) wake_first(putters_);
        w.throw_cancel();
      }
    }
    put_nowait(std::move(item));
  }
  Task<T> get() {
    while (empty()) {
      if (shutdown_) throw_shut_down("get");
      ListWait w(getters_);
      co_await w;
      if (w.cancel_due()) {
        if (w.woken() && !empty()) wake_first(getters_);
        w.throw_cancel();
      }
    }
    co_return get_nowait();
  }

  // Marks one item taken by get() as processed. std::invalid_argument if called more often than
  // items were put.
  void task_done() {
    if (unfinished_ == 0) {
      throw std::invalid_argument(
          "asyncio::Queue::task_done(): called too many times (more than items were put)");
    }
    if (--unfinished_ == 0) finished_.set();
  }
  // Waits until every item put has been marked done.
  Task<void> join() {
    if (unfinished_ > 0) co_await finished_.wait();
  }
  std::size_t unfinished_tasks() const { return unfinished_; }

  // Python 3.13's Queue.shutdown(): see the header comment.
  void shutdown(bool immediate = false) {
    shutdown_ = true;
    if (immediate) {
      while (!empty()) {
        store_.pop();
        if (unfinished_ > 0) --unfinished_;
      }
      if (unfinished_ == 0) finished_.set();
    }
    // Every waiter re-checks, and finds the queue shut down (or, for a getter, items left).
    wake_all(getters_);
    wake_all(putters_);
  }
  bool is_shut_down() const { return shutdown_; }

 private:
  [[noreturn]] static void throw_shut_down(const char* who) {
    throw QueueShutDown(std::string("asyncio::Queue::") + who +
                        "(): the queue was shut down (shutdown()); no item can be put, and none "
                        "is left to get");
  }
  Store store_;
  std::size_t maxsize_;
  std::size_t unfinished_ = 0;
  WaitList getters_{"Queue.get"};
  WaitList putters_{"Queue.put"};
  Event finished_;
  bool shutdown_ = false;
};

}  // namespace detail

template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
  using detail::BasicQueue<T, detail::FifoStore<T>>::BasicQueue;
};

template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoStore<T>> {
  using detail::BasicQueue<T, detail::LifoStore<T>>::BasicQueue;
};

// get() returns the smallest item by Compare (Python's PriorityQueue: (priority, data) tuples
// work as they are, std::pair and std::tuple compare the same way).
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
  using detail::BasicQueue<T, detail::HeapStore<T, Compare>>::BasicQueue;
};

}  // namespace concur::asyncio
