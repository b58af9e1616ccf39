#include "concur/futures.hpp"

#include <cstdio>
#include <deque>
#include <string>
#include <thread>
#include <typeinfo>

#include "blocking.hpp"
#include "concur/base/mutex.hpp"
#include "describe_exception.hpp"

namespace concur::detail {

// ---------------------------------------------------------------------------------------------
// The state word's lock and completion.

std::uint32_t StateBase::wait_unlocked() const noexcept {
  // The lock is held for a few list operations and, at most, a futex wake; spin, then yield.
  for (unsigned spins = 0;; ++spins) {
    const std::uint32_t word = word_.load(std::memory_order_relaxed);
    if (!(word & kLocked)) return word;
    if (spins < 64) {
      platform::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

std::uint32_t StateBase::lock() noexcept {
  std::uint32_t word = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (word & kLocked) word = wait_unlocked();
    if (word_.compare_exchange_weak(word, word | kLocked, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
      return word | kLocked;
    }
  }
}

bool StateBase::complete_slow(Status to) noexcept {
  std::uint32_t word = lock();
  const std::uint32_t status = word & kStatusMask;
  const bool allowed = to == kCancelled ? status == kPending : status < kFinished;
  if (!allowed) {
    unlock(word);
    return to == kCancelled && status == kCancelled;
  }
  WaitNode* waiters = std::exchange(waiters_, nullptr);
  CallbackNode* callbacks = std::exchange(callbacks_, nullptr);
  // Publish the new status before anyone is woken, so that a woken waiter sees it done; the lock
  // stays held so that no waiter can unlink (and free) its node while we notify it.
  word = (word & ~(kStatusMask | kListeners)) | to;
  word_.store(word, std::memory_order_release);
  for (WaitNode* node = waiters; node != nullptr;) {
    WaitNode* next = node->next_;
    node->linked_ = false;
    node->on_done(*this);
    node = next;
  }
  unlock(word);
  for (CallbackNode* node = oldest_first(callbacks); node != nullptr;) {
    CallbackNode* next = node->next_;
    node->run(*this);  // runs and deletes
    node = next;
  }
  return true;
}

bool StateBase::cancel() noexcept {
  std::uint32_t word = word_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint32_t status = word & kStatusMask;
    if (status != kPending) return status == kCancelled;
    if (word & (kLocked | kListeners)) return complete_slow(kCancelled);
    if (word_.compare_exchange_weak(word, (word & ~kStatusMask) | kCancelled,
                                    std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return true;
    }
  }
}

bool StateBase::add_wait_node(WaitNode& node) noexcept {
  std::uint32_t word = lock();
  if ((word & kStatusMask) >= kFinished) {
    unlock(word);
    return false;
  }
  node.prev_ = nullptr;
  node.next_ = waiters_;
  if (waiters_) waiters_->prev_ = &node;
  waiters_ = &node;
  node.linked_ = true;
  unlock(word | kListeners);
  return true;
}

void StateBase::remove_wait_node(WaitNode& node) noexcept {
  std::uint32_t word = lock();
  if (node.linked_) {
    if (node.prev_) {
      node.prev_->next_ = node.next_;
    } else {
      waiters_ = node.next_;
    }
    if (node.next_) node.next_->prev_ = node.prev_;
    node.linked_ = false;
    if (!waiters_ && !callbacks_) word &= ~kListeners;
  }
  unlock(word);
}

void StateBase::add_callback(std::unique_ptr<CallbackNode> node) noexcept {
  std::uint32_t word = lock();
  if ((word & kStatusMask) >= kFinished) {
    unlock(word);
    node.release()->run(*this);
    return;
  }
  node->next_ = callbacks_;
  callbacks_ = node.release();
  unlock(word | kListeners);
}

void StateBase::run() noexcept {
  std::fputs("concur: internal error: run() called on a future state that is not a task\n", stderr);
  std::terminate();
}

void StateBase::abandon() noexcept {
  std::fputs("concur: internal error: abandon() called on a future state that is not a task\n",
             stderr);
  std::terminate();
}

// Reverses a newest-first callback list into the order the callbacks were added.
CallbackNode* StateBase::oldest_first(CallbackNode* newest) noexcept {
  CallbackNode* reversed = nullptr;
  while (newest) {
    CallbackNode* next = newest->next_;
    newest->next_ = reversed;
    reversed = newest;
    newest = next;
  }
  return reversed;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Waiting on one state.

class UnparkNode final : public WaitNode {
 public:
  platform::Parker* parker = nullptr;
  void on_done(StateBase&) noexcept override { parker->unpark(); }
};

class SingleState final : public Condition {
 public:
  explicit SingleState(StateBase& state) : state_(state) {}
  bool ready() const noexcept override { return state_.done(); }
  bool subscribe(platform::Parker& parker) override {
    node_.parker = &parker;
    return state_.add_wait_node(node_);
  }
  void unsubscribe() noexcept override { state_.remove_wait_node(node_); }

 private:
  StateBase& state_;
  UnparkNode node_;
};

}  // namespace

bool StateBase::wait(const Deadline& deadline) {
  if (done()) return true;
  SingleState condition(*this);
  return block_until(condition, deadline);
}

// ---------------------------------------------------------------------------------------------
// wait(fs, return_when)

namespace {

bool finished_with_exception(const StateBase& s) {
  return s.status() == StateBase::kFinished && s.exception() != nullptr;
}

// FIRST_COMPLETED and FIRST_EXCEPTION: one node per state, counting completions. Every counter is
// set up before the first node is linked, so completions racing with subscribe() are safe.
class AnyOfStates final : public Condition {
 public:
  AnyOfStates(std::span<StateBase* const> states, ReturnWhen when)
      : states_(states), when_(when), nodes_(states.size()), remaining_(states.size()) {
    for (Node& node : nodes_) node.owner = this;
  }

  bool ready() const noexcept override {
    if (!subscribed_) return scan();
    if (when_ == ReturnWhen::FIRST_COMPLETED) return remaining_.load() < states_.size();
    return failed_.load() || remaining_.load() == 0;
  }

  bool subscribe(platform::Parker& parker) override {
    parker_ = &parker;
    subscribed_ = true;
    for (std::size_t i = 0; i < states_.size(); ++i) {
      if (!states_[i]->add_wait_node(nodes_[i])) count(*states_[i]);
    }
    if (ready()) {
      unsubscribe();
      return false;
    }
    return true;
  }

  void unsubscribe() noexcept override {
    for (std::size_t i = 0; i < states_.size(); ++i) states_[i]->remove_wait_node(nodes_[i]);
  }

 private:
  struct Node final : WaitNode {
    AnyOfStates* owner = nullptr;
    void on_done(StateBase& s) noexcept override {
      owner->count(s);
      if (owner->ready()) owner->parker_->unpark();
    }
  };

  void count(const StateBase& s) noexcept {
    if (finished_with_exception(s)) failed_.store(true);
    remaining_.fetch_sub(1);
  }

  bool scan() const noexcept {
    std::size_t done = 0;
    for (StateBase* s : states_) {
      if (!s->done()) continue;
      if (when_ == ReturnWhen::FIRST_COMPLETED || finished_with_exception(*s)) return true;
      ++done;
    }
    return done == states_.size();
  }

  std::span<StateBase* const> states_;
  ReturnWhen when_;
  std::vector<Node> nodes_;
  platform::Parker* parker_ = nullptr;
  bool subscribed_ = false;
  std::atomic<std::size_t> remaining_;
  std::atomic<bool> failed_{false};
};

}  // namespace

void wait_for_states(std::span<StateBase* const> states, ReturnWhen when,
                     const Deadline& deadline) {
  if (states.empty()) return;
  if (when == ReturnWhen::ALL_COMPLETED) {
    // Wait on the last one first: tasks mostly finish in the order submitted, so by the time the
    // last is done the others usually are too, and the waiter wakes once instead of once per
    // future, with no list of n nodes to build.
    // While the first is not done either, much work remains: park at once rather than spin.
    for (std::size_t i = states.size(); i-- > 0;) {
      StateBase& state = *states[i];
      if (state.done()) continue;
      SingleState condition(state);
      const Spin spin = i > 0 && !states[0]->done() ? Spin::kNo : Spin::kYes;
      if (!block_until(condition, deadline, spin)) return;
    }
    return;
  }
  AnyOfStates condition(states, when);
  block_until(condition, deadline);
}

// ---------------------------------------------------------------------------------------------
// as_completed

class CompletionQueue::Node final : public WaitNode {
 public:
  Ready* ready = nullptr;
  StateBase* state = nullptr;
  bool yielded = false;
  void on_done(StateBase& s) noexcept override;
};

class CompletionQueue::Ready final : public Condition {
 public:
  bool ready() const noexcept override { return count_.load(std::memory_order_acquire) > 0; }
  bool subscribe(platform::Parker& parker) override {
    base::MutexLock lock(mu_);
    if (!finished_.empty()) return false;
    parker_ = &parker;
    return true;
  }
  void unsubscribe() noexcept override {
    base::MutexLock lock(mu_);
    parker_ = nullptr;
  }

  void push(Node* node) noexcept {
    base::MutexLock lock(mu_);
    finished_.push_back(node);
    count_.fetch_add(1, std::memory_order_release);
    if (parker_) parker_->unpark();
  }
  Node* pop() {
    base::MutexLock lock(mu_);
    if (finished_.empty()) return nullptr;
    Node* node = finished_.front();
    finished_.pop_front();
    count_.fetch_sub(1, std::memory_order_relaxed);
    return node;
  }

  std::vector<Node> nodes;

 private:
  base::Mutex mu_;
  std::deque<Node*> finished_ CONCUR_GUARDED_BY(mu_);
  platform::Parker* parker_ CONCUR_GUARDED_BY(mu_) = nullptr;
  std::atomic<std::size_t> count_{0};
};

void CompletionQueue::Node::on_done(StateBase&) noexcept {
  ready->push(this);
}

CompletionQueue::CompletionQueue(std::span<StateBase* const> states, Deadline deadline)
    : ready_(std::make_unique<Ready>()), total_(states.size()), deadline_(deadline) {
  ready_->nodes.resize(states.size());
  for (std::size_t i = 0; i < states.size(); ++i) {
    Node& node = ready_->nodes[i];
    node.ready = ready_.get();
    node.state = states[i];
    node.state->add_ref();
    if (!node.state->add_wait_node(node)) ready_->push(&node);  // already done: yield it first
  }
}

CompletionQueue::~CompletionQueue() {
  for (Node& node : ready_->nodes) {
    // A yielded node's state is done (so the node is unlinked) and may already be freed.
    if (node.yielded) continue;
    node.state->remove_wait_node(node);
    node.state->release();
  }
}

StateBase* CompletionQueue::next() {
  if (yielded_ == total_) return nullptr;
  if (!block_until(*ready_, deadline_)) {
    throw TimeoutError(std::to_string(total_ - yielded_) + " (of " + std::to_string(total_) +
                       ") futures unfinished");
  }
  Node* node = ready_->pop();
  node->yielded = true;
  ++yielded_;
  return node->state;  // the caller adopts our reference
}

// ---------------------------------------------------------------------------------------------
// Errors

namespace {

const char* status_name(StateBase::Status s) {
  switch (s) {
    case StateBase::kPending:
      return "pending";
    case StateBase::kRunning:
      return "running";
    case StateBase::kFinished:
      return "finished";
    case StateBase::kCancelled:
      return "cancelled";
  }
  return "?";
}

}  // namespace

std::string describe_exception(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

void report_callback_exception(const StateBase& state, std::exception_ptr error) noexcept {
  try {
    const std::string line = "concur: exception calling callback for <Future at " +
                             std::to_string(reinterpret_cast<std::uintptr_t>(&state)) +
                             " state=" + status_name(state.status()) +
                             ">: " + describe_exception(error) + "\n";
    std::fputs(line.c_str(), stderr);
  } catch (...) {
    std::fputs("concur: exception calling callback for a future\n", stderr);
  }
}

void throw_no_state(const char* call) {
  throw InvalidStateError(std::string("concur::Future::") + call +
                          "(): this handle has no state (default-constructed or moved from); "
                          "assign it the result of submit() or Promise::get_future() first");
}

void throw_cancelled(const char* call) {
  throw CancelledError(std::string("concur::Future::") + call +
                       "(): the future was cancelled; check cancelled() first or catch "
                       "concur::CancelledError");
}

void throw_timeout(const char* call) {
  throw TimeoutError(std::string("concur::Future::") + call +
                     "(): the future did not finish within the timeout; pass a longer timeout, "
                     "or poll done() first");
}

void throw_promise_done(const char* call, bool cancelled) {
  throw InvalidStateError(
      std::string("concur::Promise::") + call +
      (cancelled ? "(): the future was cancelled; call set_running_or_notify_cancel() before "
                   "starting the work, and skip it when that returns false"
                 : "(): the future already has a result; a promise is fulfilled once"));
}

void throw_promise_not_pending() {
  throw InvalidStateError(
      "concur::Promise::set_running_or_notify_cancel(): the future is already running or "
      "finished; call it once, before setting a result");
}

std::exception_ptr broken_promise_error() {
  return std::make_exception_ptr(
      BrokenPromise("concur::Promise destroyed before it set a result or an exception; keep the "
                    "promise alive until it is fulfilled"));
}

}  // namespace concur::detail
