// concur/base/thread_annotations.hpp: Clang thread-safety annotations, as abseil spells them.
//
// The macros document which mutex guards which member and which functions need it held; Clang's
// -Wthread-safety checks them (the `clang-tsa` preset builds with it and -Werror). On other
// compilers they expand to nothing. libstdc++'s mutexes carry no annotations, so concur's own code
// locks concur::base::Mutex (concur/base/mutex.hpp), which does.
//
// An opt-out (CONCUR_NO_THREAD_SAFETY_ANALYSIS) always carries a one-line comment saying why.
#pragma once

#if defined(__clang__)
#define CONCUR_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CONCUR_THREAD_ANNOTATION(x)
#endif

#define CONCUR_CAPABILITY(name) CONCUR_THREAD_ANNOTATION(capability(name))
#define CONCUR_SCOPED_CAPABILITY CONCUR_THREAD_ANNOTATION(scoped_lockable)
#define CONCUR_GUARDED_BY(x) CONCUR_THREAD_ANNOTATION(guarded_by(x))
#define CONCUR_PT_GUARDED_BY(x) CONCUR_THREAD_ANNOTATION(pt_guarded_by(x))
#define CONCUR_REQUIRES(...) CONCUR_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define CONCUR_EXCLUDES(...) CONCUR_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define CONCUR_ACQUIRE(...) CONCUR_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define CONCUR_RELEASE(...) CONCUR_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define CONCUR_TRY_ACQUIRE(...) CONCUR_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define CONCUR_ASSERT_CAPABILITY(x) CONCUR_THREAD_ANNOTATION(assert_capability(x))
#define CONCUR_RETURN_CAPABILITY(x) CONCUR_THREAD_ANNOTATION(lock_returned(x))
#define CONCUR_NO_THREAD_SAFETY_ANALYSIS CONCUR_THREAD_ANNOTATION(no_thread_safety_analysis)
