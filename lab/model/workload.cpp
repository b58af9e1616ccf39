#include "workload.hpp"

#include <vector>

#include "objects.hpp"

namespace concur::lab::model {
namespace {

// Recycles freed integers, as CPython's small-object allocator and int free list do.
class IntFreeList {
 public:
  explicit IntFreeList(Heap& heap) : heap_(heap) {}
  Object* box(long value) {
    if (free_.empty()) return heap_.make(value);
    Object* o = free_.back();
    free_.pop_back();
    o->magic.store(Object::kAlive, std::memory_order_relaxed);
    o->local.store(1, std::memory_order_relaxed);
    o->value = value;
    return o;
  }
  void drop(Object* o) {
    if (decref(o, nullptr)) free_.push_back(o);
  }

 private:
  Heap& heap_;
  std::vector<Object*> free_;
};

}  // namespace

long count_boxed(long n, InterpreterLock* gil) {
  Heap heap(RefcountMode::plain);
  IntFreeList ints(heap);
  Object* total = ints.box(0);
  for (long i = 0; i < n; ++i) {
    Object* boxed = ints.box(i);                          // i as an object
    Object* sum = ints.box(total->value + boxed->value);  // BINARY_OP (+) makes a new int
    ints.drop(boxed);                                     // the operands' references go
    ints.drop(total);
    total = sum;                 // STORE_FAST total
    if (gil) gil->checkpoint();  // JUMP_BACKWARD: the eval breaker
  }
  const long result = total->value;
  ints.drop(total);
  return result;
}

}  // namespace concur::lab::model
