// Internal to concur: the ordered result range of ProcessPoolExecutor::map(). Inputs are handed
// to `submit` `chunksize` at a time; each chunk's future yields a vector, flattened here in order.
// The windowing, timeout and cancellation rules are those of MapResult (map_result.hpp).
#pragma once

#include <cstddef>
#include <deque>
#include <ranges>
#include <utility>
#include <vector>

#include "concur/detail/map_result.hpp"
#include "concur/detail/pull_range.hpp"
#include "concur/futures.hpp"

namespace concur::detail {

template <class Result, class View, class SubmitChunk>
class ChunkedMap : public PullRange<ChunkedMap<Result, View, SubmitChunk>, Result&> {
 public:
  using value_type = Result;

  using Item = std::remove_cvref_t<std::ranges::range_reference_t<View>>;

  ChunkedMap(View view, SubmitChunk submit, std::size_t chunksize, Deadline deadline,
             std::size_t window)
      : view_(std::move(view)),
        submit_(std::move(submit)),
        chunksize_(chunksize),
        deadline_(deadline),
        window_(window),
        next_(std::ranges::begin(view_)) {
    fill(window_ == 0 ? static_cast<std::size_t>(-1) : window_);
  }
  ChunkedMap(const ChunkedMap&) = delete;
  ChunkedMap& operator=(const ChunkedMap&) = delete;
  ~ChunkedMap() {
    if (this->started()) cancel_pending();
  }

 private:
  friend class PullRange<ChunkedMap, Result&>;
  Result& current() { return chunk_[index_]; }
  bool at_end() const { return done_; }

  void advance() {
    if (index_ + 1 < chunk_.size()) {
      ++index_;
      return;
    }
    chunk_.clear();
    index_ = 0;
    while (chunk_.empty()) {
      if (pending_.empty()) {
        done_ = true;
        return;
      }
      try {
        if (window_ != 0) fill(window_ + 1);
        Future<std::vector<Result>> front = std::move(pending_.front());
        pending_.pop_front();
        try {
          chunk_ = deadline_ ? std::move(front).result(
                                   std::max(*deadline_ - Clock::now(), Clock::duration::zero()))
                             : std::move(front).result();
        } catch (...) {
          front.cancel();
          throw;
        }
      } catch (...) {
        cancel_pending();
        done_ = true;
        throw;
      }
    }
  }

  void fill(std::size_t up_to) {
    while (!inputs_done_ && pending_.size() < up_to) {
      std::vector<Item> items;
      while (items.size() < chunksize_ && next_ != std::ranges::end(view_)) {
        items.push_back(*next_);
        ++next_;
      }
      if (next_ == std::ranges::end(view_)) inputs_done_ = true;
      if (items.empty()) break;
      pending_.push_back(submit_(std::move(items)));
    }
  }

  void cancel_pending() noexcept {
    for (auto& f : pending_) f.cancel();
    pending_.clear();
    inputs_done_ = true;
  }

  View view_;
  SubmitChunk submit_;
  std::size_t chunksize_;
  Deadline deadline_;
  std::size_t window_;
  std::ranges::iterator_t<View> next_;
  std::deque<Future<std::vector<Result>>> pending_;
  std::vector<Result> chunk_;
  std::size_t index_ = 0;
  bool inputs_done_ = false;
  bool done_ = false;
};

}  // namespace concur::detail
