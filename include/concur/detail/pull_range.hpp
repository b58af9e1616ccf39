// Internal to concur: the input range behind as_completed() and map(). The range computes one item
// at a time (waiting for it, maybe throwing) and its iterator only asks for the next.
//
// Derived provides, and befriends PullRange<Derived, Reference> for:
//   Reference current();   the item the iterator is on
//   void advance();        compute the next item (may block, may throw)
//   bool at_end() const;   no item any more
#pragma once

#include <cstddef>
#include <iterator>
#include <type_traits>

namespace concur::detail {

template <class Derived, class Reference>
class PullRange {
 public:
  class iterator {
   public:
    using value_type = std::remove_cvref_t<Reference>;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    Reference operator*() const { return PullRange::current_of(*range_); }
    iterator& operator++() {
      PullRange::advance_of(*range_);
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

   private:
    friend class PullRange;
    explicit iterator(Derived* range) : range_(range) {}
    bool at_end() const { return PullRange::at_end_of(*range_); }
    Derived* range_ = nullptr;
  };

  // The first call computes the first item, so it may block or throw as any step may.
  iterator begin() {
    Derived& self = static_cast<Derived&>(*this);
    if (!started_) {
      started_ = true;
      advance_of(self);
    }
    return iterator(&self);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 protected:
  bool started() const noexcept { return started_; }

 private:
  static Reference current_of(Derived& d) { return d.current(); }
  static void advance_of(Derived& d) { d.advance(); }
  static bool at_end_of(const Derived& d) { return d.at_end(); }

  bool started_ = false;
};

}  // namespace concur::detail
