// lab/model/workload.hpp: the CPU-bound "interpreted" workload of the GIL experiments.
//
// count_boxed(n) does what CPython does for
//     total = 0
//     for i in range(n): total = total + i
// with boxed integers: each step boxes i and the sum in new objects (recycled through a free list,
// as CPython's allocator does), changes reference counts where the eval loop would, and calls
// gil->checkpoint() at the loop's backward jump, where CPython's eval loop checks its eval
// breaker. Without a lock (nullptr) it is the free-threaded build's loop.
#pragma once

#include <concur/gil.hpp>

namespace concur::lab::model {

// Returns n * (n - 1) / 2, computed the slow way.
long count_boxed(long n, InterpreterLock* gil);

}  // namespace concur::lab::model
