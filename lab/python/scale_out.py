"""CPython side of concur-lab's scale-out: the CPU-bound loop split over the worker ranks of an MPI
job with mpi4py.futures.MPIPoolExecutor, and the cost of a tiny task through it.

Two ways to run it:
  python3 scale_out.py --calibrate SECONDS
      (no MPI) how many steps of the loop take SECONDS here, with this interpreter's versions;
  mpirun -n K+1 python3 -m mpi4py.futures scale_out.py --work N --repeat P --tiny T \
          --round-trips R
      rank 0 runs main() below, ranks 1..K serve as the pool's workers: one short warm-up task per
      rank, then P times the N steps in K equal shares (one per rank), R tiny tasks one at a time
      (submit(...).result(): the round trip), then T tiny tasks submitted at once.

Prints JSON, as concur's job (lab/scale_out_job.cpp) does.
"""
import argparse
import json
import sys
import time


def count(n):
    from mpi4py import MPI
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total = total + i
    return total, MPI.COMM_WORLD.Get_rank(), time.perf_counter() - t0


def tiny(x):
    return x + 1


def calibrate(seconds):
    import mpi4py
    n = 200_000
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total = total + i
    rate = n / (time.perf_counter() - t0)
    return {"work": max(4000, int(rate * seconds)), "mpi4py": mpi4py.__version__,
            "version": sys.version.split()[0]}


def measure(work, repeat, tiny_tasks, round_trips):
    from mpi4py import MPI
    from mpi4py.futures import MPIPoolExecutor
    ranks = MPI.COMM_WORLD.Get_size() - 1  # under -m mpi4py.futures every other rank serves
    with MPIPoolExecutor() as pool:
        share = work // ranks
        for f in [pool.submit(count, share // 20) for _ in range(ranks)]:
            f.result()  # one short task per rank before the timing starts

        walls, tasks = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            results = [f.result() for f in [pool.submit(count, share) for _ in range(ranks)]]
            walls.append(time.perf_counter() - t0)
            tasks += [s for _, _, s in results]
            assert all(total == share * (share - 1) // 2 for total, _, _ in results), "wrong sum"
            assert len({rank for _, rank, _ in results}) == ranks, "a rank ran no share, or two"

        trips = []
        for i in range(round_trips):
            t0 = time.perf_counter()
            assert pool.submit(tiny, i).result() == i + 1
            trips.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        futures = [pool.submit(tiny, i) for i in range(tiny_tasks)]
        assert all(f.result() == i + 1 for i, f in enumerate(futures))
        tiny_s = time.perf_counter() - t0
    return {"ranks": ranks, "work": share * ranks, "wall_s": walls, "task_s": tasks,
            "round_trip_s": trips,
            "tiny_tasks": tiny_tasks, "tiny_s": tiny_s}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calibrate", type=float)
    ap.add_argument("--work", type=int)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tiny", type=int)
    ap.add_argument("--round-trips", type=int)
    args = ap.parse_args()
    if args.calibrate is not None:
        print(json.dumps(calibrate(args.calibrate)))
    else:
        print(json.dumps(measure(args.work, args.repeat, args.tiny, args.round_trips)))


if __name__ == "__main__":
    main()
