#include "objects.hpp"

namespace concur::lab::model {

const char* to_string(RefcountMode mode) {
  switch (mode) {
    case RefcountMode::plain:
      return "plain";
    case RefcountMode::atomic:
      return "atomic";
    case RefcountMode::biased:
      return "biased";
  }
  return "?";
}

namespace {

// The calling thread's id, read once: comparing it with an object's owner must cost what PEP 703's
// comparison of thread ids costs (a load and a compare), not a call into pthread_self().
std::thread::id this_thread_id() {
  static thread_local const std::thread::id id = std::this_thread::get_id();
  return id;
}

constexpr long kMerged = 1;  // biased: the owner has merged; the shared field is the whole count
constexpr long kUnit = 2;    // biased: one reference in the shared field

void free_object(Object* o, Faults* faults) {
  const std::uint32_t was = o->magic.exchange(Object::kFreed, std::memory_order_acq_rel);
  if (!faults) return;
  if (was == Object::kFreed) {
    faults->double_free.fetch_add(1, std::memory_order_relaxed);
  } else {
    faults->frees.fetch_add(1, std::memory_order_relaxed);
  }
}

// Plain counting: load, change, store, with nothing to stop another thread in between.
long plain_add(std::atomic<long>& field, long delta) {
  const long next = field.load(std::memory_order_relaxed) + delta;
  field.store(next, std::memory_order_relaxed);
  return next;
}

}  // namespace

Object* Heap::make(long value) {
  auto o = std::make_unique<Object>();
  o->mode = mode_;
  o->value = value;
  o->owner = this_thread_id();
  if (mode_ == RefcountMode::atomic) {
    o->local.store(0, std::memory_order_relaxed);
    o->shared.store(1, std::memory_order_relaxed);
  }
  objects_.push_back(std::move(o));
  return objects_.back().get();
}

void incref(Object* o) {
  switch (o->mode) {
    case RefcountMode::plain:
      plain_add(o->local, 1);
      break;
    case RefcountMode::atomic:
      o->shared.fetch_add(1, std::memory_order_relaxed);
      break;
    case RefcountMode::biased:
      if (o->owner == this_thread_id() && !(o->shared.load() & kMerged)) {
        plain_add(o->local, 1);  // only the owner touches it: no atomic needed
      } else {
        o->shared.fetch_add(kUnit, std::memory_order_relaxed);
      }
      break;
  }
}

bool decref(Object* o, Faults* faults) {
  switch (o->mode) {
    case RefcountMode::plain:
      if (plain_add(o->local, -1) == 0) {
        free_object(o, faults);
        return true;
      }
      return false;
    case RefcountMode::atomic:
      if (o->shared.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        free_object(o, faults);
        return true;
      }
      return false;
    case RefcountMode::biased:
      if (o->owner == this_thread_id() && !(o->shared.load() & kMerged)) {
        if (plain_add(o->local, -1) != 0) return false;
        // The owner's count is zero: merge. Free now if nobody else holds a reference; else mark
        // merged and let the last shared decref free it.
        long shared = o->shared.load(std::memory_order_acquire);
        while (
            !o->shared.compare_exchange_weak(shared, shared | kMerged, std::memory_order_acq_rel)) {
        }
        if (shared / kUnit == 0) {
          free_object(o, faults);
          return true;
        }
        return false;
      }
      {
        const long after = o->shared.fetch_sub(kUnit, std::memory_order_acq_rel) - kUnit;
        if ((after & kMerged) && after / kUnit == 0) {
          free_object(o, faults);
          return true;
        }
      }
      return false;
  }
  return false;
}

bool use(const Object* o, Faults* faults) {
  if (o->magic.load(std::memory_order_acquire) == Object::kAlive) return true;
  if (faults) faults->use_after_free.fetch_add(1, std::memory_order_relaxed);
  return false;
}

long refcount(const Object* o) {
  switch (o->mode) {
    case RefcountMode::plain:
      return o->local.load(std::memory_order_relaxed);
    case RefcountMode::atomic:
      return o->shared.load(std::memory_order_relaxed);
    case RefcountMode::biased:
      return ((o->shared.load() & kMerged) ? 0 : o->local.load(std::memory_order_relaxed)) +
             o->shared.load(std::memory_order_relaxed) / kUnit;
  }
  return 0;
}

}  // namespace concur::lab::model
