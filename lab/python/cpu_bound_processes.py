"""CPython side of concur-lab's cpu-bound-processes: a CPU-bound loop on one process, then split
over N processes with multiprocessing.Pool (each has its own interpreter and GIL).

Prints JSON: the work, the wall time on 1 process and on N (--repeat times each, interleaved), and
the CPU seconds the workers used.
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
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    n = 200_000
    t0 = time.perf_counter()
    count(n)
    rate = n / (time.perf_counter() - t0)
    work = max(args.processes * 1000, int(rate * args.seconds))
    share = work // args.processes

    ones, manys, cpus = [], [], []
    with multiprocessing.Pool(args.processes) as pool:
        pool.map(count, [1000] * args.processes)  # workers started and warm before timing
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            total, _ = count(share * args.processes)
            ones.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            results = pool.map(count, [share] * args.processes)
            manys.append(time.perf_counter() - t0)
            cpus.append(sum(c for _, c in results))
            assert all(r == share * (share - 1) // 2 for r, _ in results)
    print(json.dumps({"work": share * args.processes, "one_s": ones[-1], "many_s": manys[-1],
                      "one_runs": ones, "many_runs": manys, "worker_cpu_runs": cpus,
                      "worker_cpu_s": cpus[-1],
                      "start_method": multiprocessing.get_start_method(),
                      "version": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
