// concur/multiprocessing/queue.hpp: Queue<T>, multiprocessing.Queue for values of type T, shared
// by any number of producer and consumer processes and threads.
//
// The queue is a ring buffer in an anonymous shared segment (nothing to leak, no feeder thread,
// no pipe): put() copies the encoded value in, get() copies it out, under a robust process-shared
// mutex. A value becomes visible to get() only once it is wholly in the buffer (one store commits
// it), so a process that dies in the middle of a put() or get() loses no other message and
// duplicates none, and the queue stays usable.
//
// Bounds: maxsize items (0: only the buffer bounds it, Python's "infinite") and capacity_bytes of
// buffer (default 4 MiB; reserved lazily by the OS). A value whose encoding does not fit the
// buffer at all is an error (std::length_error naming both sizes), not a wait forever.
// Blocking: put() waits while the queue is full, get() while it is empty; with a timeout they
// throw Full / Empty (Python's queue.Full and queue.Empty); put_nowait/get_nowait do not wait.
// JoinableQueue<T> adds task_done()/join() (Python's JoinableQueue). close() ends this handle's
// use (Python's Queue.close(); join_thread() has nothing to wait for: there is no feeder thread).
// Passing to a child: as a Process or task argument, or inherited by fork.
// Thread safety: every member, from any thread of any process.
//
// Example:
//   concur::multiprocessing::Queue<std::string> q(/*maxsize=*/100);
//   concur::multiprocessing::Process producer(produce, q);   // produce(q) calls q.put(...)
//   producer.start();
//   std::string first = q.get(std::chrono::seconds(5));
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

#include "concur/futures.hpp"
#include "concur/multiprocessing/serialization.hpp"
#include "concur/multiprocessing/shared_memory.hpp"

namespace concur::multiprocessing {

class Full : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Empty : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// The untyped queue of byte strings behind Queue<T>.
class ByteQueue {
 public:
  ByteQueue() = default;
  ByteQueue(std::size_t maxsize, std::size_t capacity_bytes);
  // False at the deadline (queue still full).
  bool put(std::string_view message, const concur::detail::Deadline& deadline);
  std::optional<std::string> get(const concur::detail::Deadline& deadline);
  std::size_t qsize() const;
  std::size_t capacity_bytes() const;
  // JoinableQueue: every put() counts an unfinished item; task_done() finishes one; join() waits
  // until none is left (false at the deadline).
  void task_done();
  bool join(const concur::detail::Deadline& deadline);

  template <class Archive>
  void serialize(Archive& archive) {
    archive(segment_);
  }

 private:
  struct State;
  State* state() const;
  AnonymousSegment segment_;
};

}  // namespace detail

template <class T>
class Queue {
 public:
  explicit Queue(std::size_t maxsize = 0, std::size_t capacity_bytes = std::size_t{4} << 20)
      : queue_(maxsize, capacity_bytes) {}

  void put(const T& value) { put_until(value, std::nullopt); }
  template <class Rep, class Period>
  void put(const T& value, std::chrono::duration<Rep, Period> timeout) {
    put_until(value, concur::detail::deadline_after(timeout));
  }
  void put_nowait(const T& value) { put(value, std::chrono::nanoseconds::zero()); }

  T get() { return get_until(std::nullopt); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_until(concur::detail::deadline_after(timeout));
  }
  T get_nowait() { return get(std::chrono::nanoseconds::zero()); }

  // Approximate, as Python's (another process may change it at once).
  std::size_t qsize() const { return queue_.qsize(); }
  bool empty() const { return qsize() == 0; }

  // Python's Queue.close(): this handle puts and gets no more (both then throw
  // std::invalid_argument, Python's ValueError); other handles, and other processes, go on. Values
  // already put stay in the queue for them.
  void close() noexcept { closed_ = true; }
  // Python's Queue.join_thread(): waits until what this process put is in the queue. concur has no
  // feeder thread (put() returns once the value is in), so it only checks that close() came first
  // (concur::AssertionError otherwise, as Python).
  void join_thread() const {
    if (!closed_) {
      throw AssertionError(
          "concur::multiprocessing::Queue::join_thread(): the queue is not closed; call close() "
          "first");
    }
  }

  template <class Archive>
  void serialize(Archive& archive) {
    archive(queue_);
  }

 private:
  void check_open(const char* call) const {
    if (closed_) {
      throw std::invalid_argument(std::string("concur::multiprocessing::Queue::") + call +
                                  "(): the queue is closed in this process (close() was called); "
                                  "use another handle, or do not close it yet");
    }
  }
  void put_until(const T& value, const concur::detail::Deadline& deadline) {
    check_open("put");
    if (!queue_.put(multiprocessing::serialize(value), deadline)) {
      throw Full(
          "concur::multiprocessing::Queue::put(): the queue stayed full for the whole "
          "timeout; is a consumer still getting from it?");
    }
  }
  T get_until(const concur::detail::Deadline& deadline) {
    check_open("get");
    std::optional<std::string> bytes = queue_.get(deadline);
    if (!bytes) {
      throw Empty(
          "concur::multiprocessing::Queue::get(): the queue stayed empty for the whole "
          "timeout");
    }
    return deserialize<T>(*bytes);
  }

  bool closed_ = false;  // this handle only, as Python's

 protected:
  detail::ByteQueue queue_;
};

// Python's multiprocessing.JoinableQueue: a Queue whose consumers call task_done() once per item
// they got, so that join() can wait until every item put has been processed.
// Errors: task_done() more often than items were put is std::invalid_argument (Python's
// ValueError).
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  using Queue<T>::Queue;
  void task_done() { this->queue_.task_done(); }
  // Blocks until every item put has had its task_done().
  void join() { this->queue_.join(std::nullopt); }
  // The same with a timeout: false if items were still unfinished when it passed.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->queue_.join(concur::detail::deadline_after(timeout));
  }
};

}  // namespace concur::multiprocessing
