// lab/model/objects.hpp: a small object model in CPython's image, for the lab's GIL experiments.
//
// Object is a boxed integer with a reference count, as PyObject is. The count is kept one of three
// ways (RefcountMode):
//   plain   a non-atomic read-modify-write, as CPython's Py_INCREF with the GIL. Written as a
//           relaxed load and a relaxed store, so two threads can lose an update exactly as two
//           cores would, without undefined behaviour in C++.
//   atomic  one atomic read-modify-write per change.
//   biased  PEP 703's biased counting: the thread that made the object counts in a field only it
//           touches, with plain instructions; every other thread counts in a shared atomic field.
//           The object is freed when the owner's count is zero (it then merges) and the shared
//           count reaches zero. (PEP 703 also queues to the owner the objects whose shared count
//           goes negative; every workload here drops what it took, so that case does not arise.)
//
// A freed object is poisoned, not returned to the allocator: its memory stays readable and its
// magic says it is dead, so a thread that uses it after the free sees it (use_after_free()) and
// the lab reports it, instead of crashing or reading someone else's object.
//
// Thread safety: incref/decref/is_alive on one object from several threads is exactly what the
// experiments measure; only atomic and biased modes are safe without a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace concur::lab::model {

enum class RefcountMode { plain, atomic, biased };
const char* to_string(RefcountMode mode);

struct Object {
  static constexpr std::uint32_t kAlive = 0x0B1EC7A1;
  static constexpr std::uint32_t kFreed = 0xDEADDEAD;

  std::atomic<std::uint32_t> magic{kAlive};
  RefcountMode mode = RefcountMode::plain;
  // plain: the count; biased: the owner's count (only the owner touches it).
  std::atomic<long> local{1};
  // atomic: the count; biased: other threads' count, in units of 2, low bit = merged.
  std::atomic<long> shared{0};
  std::thread::id owner;
  long value = 0;
};

// Counters of what went wrong, shared by everything in one experiment run.
struct Faults {
  std::atomic<long> use_after_free{0};  // a reference was used after the object was freed
  std::atomic<long> double_free{0};     // the count reached zero twice
  std::atomic<long> frees{0};
};

// Owns every object it made, freed or not, so a poisoned object's memory stays valid until the
// heap dies. Not thread-safe to make(); each thread may have its own heap.
class Heap {
 public:
  explicit Heap(RefcountMode mode, Faults* faults = nullptr) : mode_(mode), faults_(faults) {}
  Object* make(long value);
  RefcountMode mode() const { return mode_; }
  Faults* faults() const { return faults_; }
  std::size_t size() const { return objects_.size(); }

 private:
  RefcountMode mode_;
  Faults* faults_;
  std::vector<std::unique_ptr<Object>> objects_;
};

void incref(Object* o);
// Frees (poisons) the object when the count reaches zero; returns true if this call freed it.
bool decref(Object* o, Faults* faults);
// False, and counted as a use after free, if the object was freed.
bool use(const Object* o, Faults* faults);
// The count as the object sees it now (both fields for biased).
long refcount(const Object* o);

}  // namespace concur::lab::model
