// Built (not run) against an installed concur::mpi by tests/find-package/run.cmake: the package
// exports the MPI executor with what it needs to link.
#include <concur/mpi_pool.hpp>

int twice(int x) {
  return 2 * x;
}
CONCUR_REGISTER(twice);

int main(int argc, char** argv) {
  concur::mpi::main_guard(argc, argv);  // worker ranks serve here
  concur::MpiPoolExecutor pool;
  return pool.submit(twice, 21).result() == 42 ? 0 : 1;
}
