// Built against an installed concur by tests/find-package/run.cmake.
#include <concur/thread_pool.hpp>

int main() {
  concur::ThreadPoolExecutor pool(2);
  auto squares = pool.map([](int x) { return x * x; }, std::vector<int>{1, 2, 3});
  int sum = 0;
  for (int v : squares) sum += v;
  return sum == 14 && pool.submit([] { return 7; }).result() == 7 ? 0 : 1;
}
