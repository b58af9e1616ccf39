#include "concur/multiprocessing/registry.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include "concur/base/mutex.hpp"

namespace concur::multiprocessing::detail {
namespace {

struct Registry {
  base::Mutex mu;
  std::unordered_map<std::uintptr_t, Registration*> by_key CONCUR_GUARDED_BY(mu);
  std::unordered_map<std::string, Registration> by_name CONCUR_GUARDED_BY(mu);
};

// Constructed on first use: registrations run from static initialisers in any order.
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: children may look up until _exit
  return *r;
}

}  // namespace

bool add_registration(std::uintptr_t key, std::string_view name, std::string signature,
                      Invoker invoke) {
  Registry& r = registry();
  base::MutexLock lock(r.mu);
  auto [it, inserted] = r.by_name.try_emplace(std::string(name));
  if (!inserted && it->second.invoke != invoke) {
    std::fprintf(stderr,
                 "concur: two different functions were registered as '%.*s'; register each under "
                 "a distinct name (CONCUR_REGISTER uses the name as written: qualify it)\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  it->second = Registration{std::string(name), std::move(signature), invoke};
  r.by_key[key] = &it->second;
  return true;
}

const Registration* find_registration(std::uintptr_t key) {
  Registry& r = registry();
  base::MutexLock lock(r.mu);
  auto it = r.by_key.find(key);
  return it == r.by_key.end() ? nullptr : it->second;
}

const Registration* find_registration(std::string_view name) {
  Registry& r = registry();
  base::MutexLock lock(r.mu);
  auto it = r.by_name.find(std::string(name));
  return it == r.by_name.end() ? nullptr : &it->second;
}

}  // namespace concur::multiprocessing::detail
