#include "concur/thread_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <thread>

#include "platform/threads.hpp"
#include "thread_pool/scheduler.hpp"

namespace concur {

namespace {

std::size_t default_max_workers() {
  // Python 3.13's rule: the CPUs this process may use, not all the machine has.
  return std::min<std::size_t>(32, platform::usable_cpu_count() + 4);
}

std::string default_prefix() {
  static std::atomic<unsigned> counter{0};
  return "ThreadPoolExecutor-" + std::to_string(counter.fetch_add(1));
}

detail::SchedulerOptions scheduler_options(ThreadPoolOptions options) {
  if (options.max_workers && *options.max_workers == 0) {
    throw std::invalid_argument(
        "concur::ThreadPoolExecutor: max_workers must be greater than 0; leave it unset for the "
        "default min(32, cores + 4)");
  }
  detail::SchedulerOptions out;
  out.max_workers = options.max_workers.value_or(default_max_workers());
  out.thread_name_prefix =
      options.thread_name_prefix.empty() ? default_prefix() : std::move(options.thread_name_prefix);
  out.initializer = std::move(options.initializer);
  return out;
}

}  // namespace

ThreadPoolExecutor::ThreadPoolExecutor(ThreadPoolOptions options)
    : scheduler_(new detail::Scheduler(scheduler_options(std::move(options)))) {}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  if (scheduler_->on_worker_thread()) {
    std::fputs(
        "concur: a ThreadPoolExecutor was destroyed by one of its own tasks; it cannot wait for "
        "itself. Destroy the pool from a thread outside it.\n",
        stderr);
    std::terminate();
  }
  scheduler_->shutdown(true, false);
  delete scheduler_;
}

void ThreadPoolExecutor::schedule(detail::StateBase* task) {
  scheduler_->submit(task);
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  scheduler_->shutdown(wait, cancel_futures);
}

std::size_t ThreadPoolExecutor::max_workers() const noexcept {
  return scheduler_->max_workers();
}

std::size_t ThreadPoolExecutor::thread_count() const noexcept {
  return scheduler_->thread_count();
}

std::string thread_name() {
  if (const std::string* name = detail::Scheduler::current_worker_name()) return *name;
  return platform::current_thread_name();
}

}  // namespace concur
