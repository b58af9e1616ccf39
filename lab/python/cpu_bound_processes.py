"""CPython side of concur-lab's cpu-bound-processes: a CPU-bound loop on one process, then split
over N processes with multiprocessing.Pool (each has its own interpreter and GIL).

Prints JSON: the work, the wall time on 1 process and on N, and the CPU seconds the workers used.
"""
import argparse
import json
import multiprocessing
import sys
import time


def count(n):
    t0 = time.process_time()
    total = 0
    for i in range(n):
        total = total + i
    return total, time.process_time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--processes", type=int, required=True)
    args = ap.parse_args()
    n = 200_000
    t0 = time.perf_counter()
    count(n)
    rate = n / (time.perf_counter() - t0)
    work = max(args.processes * 1000, int(rate * args.seconds))
    share = work // args.processes

    t0 = time.perf_counter()
    total, _ = count(share * args.processes)
    one = time.perf_counter() - t0

    with multiprocessing.Pool(args.processes) as pool:
        pool.map(count, [1000] * args.processes)  # workers started and warm before timing
        t0 = time.perf_counter()
        results = pool.map(count, [share] * args.processes)
        many = time.perf_counter() - t0
    assert all(r == share * (share - 1) // 2 for r, _ in results)
    print(json.dumps({"work": share * args.processes, "one_s": one, "many_s": many,
                      "worker_cpu_s": sum(c for _, c in results),
                      "start_method": multiprocessing.get_start_method(),
                      "version": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
