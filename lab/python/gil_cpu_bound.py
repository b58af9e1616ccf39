"""CPython side of concur-lab's gil-cpu-bound: a CPU-bound loop on 1 thread, then split over N.

Prints JSON: the work size, wall and CPU time for 1 and N threads (--repeat times each, the two
interleaved so that a slow spell of the machine falls on both), and how many OS threads the
process had while the N threads ran (they are real OS threads).
"""
import argparse
import json
import os
import sys
import threading
import time


def count(n):
    total = 0
    for i in range(n):
        total = total + i
    return total


def os_thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def run(threads, work):
    share = work // threads
    results = [None] * threads
    seen = [0]

    def body(k):
        results[k] = count(share)

    workers = [threading.Thread(target=body, args=(k,)) for k in range(threads)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for w in workers:
        w.start()
    seen[0] = os_thread_count()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert all(r == share * (share - 1) // 2 for r in results), "wrong sum"
    return {"wall_s": wall, "cpu_s": cpu, "os_threads": seen[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True, help="single-thread run length")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    # Calibrate the work so that one thread takes about --seconds.
    n = 200_000
    t0 = time.perf_counter()
    count(n)
    rate = n / (time.perf_counter() - t0)
    work = max(args.threads * 1000, int(rate * args.seconds))
    ones, manys = [], []
    for _ in range(args.repeat):
        ones.append(run(1, work))
        manys.append(run(args.threads, work))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(json.dumps({"work": work, "threads": args.threads, "one": ones[-1], "many": manys[-1],
                      "one_runs": ones, "many_runs": manys,
                      "gil_enabled": gil, "version": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
