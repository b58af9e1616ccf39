"""mpi4py.futures.MPIPoolExecutor on bench/mpi_pool_bench's workloads (the peer it races).

Run as `mpirun -n 3 python3 -m mpi4py.futures mpi4py_futures_bench.py [--quick]`: rank 0 runs
this script, ranks 1 and 2 serve as workers, as concur's pool does under `mpirun -n 3`.
Prints one line in the format of mpi_pool_bench.
"""
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def plus_one(x):
    return x + 1


def size_of(b):
    return len(b)


def main():
    quick = "--quick" in sys.argv
    tiny, trips, bigs = (500, 50, 1) if quick else (100_000, 2_000, 8)
    with MPIPoolExecutor() as pool:
        [f.result() for f in [pool.submit(plus_one, i) for i in range(min(tiny, 1000))]]
        t0 = time.perf_counter()
        futures = [pool.submit(plus_one, i) for i in range(tiny)]
        total = sum(f.result() for f in futures)
        rate = tiny / (time.perf_counter() - t0)
        assert total == tiny * (tiny + 1) // 2
        us = []
        for i in range(trips):
            t0 = time.perf_counter()
            pool.submit(plus_one, i).result()
            us.append((time.perf_counter() - t0) * 1e6)
        us.sort()
        big = bytes(64 << 20)
        t0 = time.perf_counter()
        futures = [pool.submit(size_of, big) for _ in range(bigs)]
        assert all(f.result() == len(big) for f in futures)
        mib = 64.0 * bigs / (time.perf_counter() - t0)
    print(f"mpi4py_futures tiny_tasks_per_s={rate:.0f} round_trip_p50_us={us[len(us) // 2]:.1f} "
          f"big_arg_mib_per_s={mib:.0f}", flush=True)


if __name__ == "__main__":
    main()
