"""CPython's multiprocessing.Pool(n) on the two workloads of bench/process_pool_curve (issue 22).

One run measures one worker count n (bench/process_pool_curve calls this once per worker count
and repetition, so that its repetitions interleave with concur's); each workload gets a Pool(n)
of its own, warmed up first (every worker has run a task) so process start-up is not measured:

  tiny  Pool.map(f, range(N), chunksize=1) with f(x) = x + 1, every result read     tiny_tasks_per_s
        (one message per task, as concur's submit(); Pool.map is the fastest per-task way
        through Pool here: apply_async per task measured ~1.5x slower, imap about the same)
  cpu   Pool.map(spin, [K] * M, chunksize=1): M tasks of K rounds of an LCG        cpu_tasks_per_s

Prints one JSON object: {"tiny_tasks_per_s": x, "cpu_tasks_per_s": y, "errors": {workload: why}}
(a workload that failed is missing from the figures and named in errors).

  --calibrate [--cpu-ms T]: instead, prints {"cpu_iterations": K, "task_ms": t, "version": ...,
  "start_method": ...}: the K for which spin(K) takes about T ms (default 1) in this process.

Run alone: /usr/bin/python3 bench/peers/cpython_process_pool_curve.py --calibrate
           /usr/bin/python3 bench/peers/cpython_process_pool_curve.py --workers 2 --cpu-iterations K
"""
import argparse
import json
import multiprocessing as mp
import platform
import time

TIMEOUT = 300  # seconds: a stuck pool fails its workload rather than hanging the run


# The tasks: module level, so the pool sends them to its workers by name.
def inc(x):
    return x + 1


def nap(seconds):
    time.sleep(seconds)
    return seconds


def spin(k):
    """k rounds of an LCG modulo 2**31; the C++ side runs the same recurrence."""
    x = 1
    for _ in range(k):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def calibrate(target_ms):
    # Double k until one call takes 2 ms, then take the fastest of 20 calls: calls this short
    # mostly run without being preempted, so on a shared machine the fastest is the work itself
    # (calls of tens of ms would rarely escape a neighbour's time slice).
    k = 1024
    while timed(spin, k) < 0.002:
        k *= 2
    best = min(timed(spin, k) for _ in range(20))
    iterations = max(1, round(k * target_ms / 1000 / best))
    return {
        "cpu_iterations": iterations,
        "task_ms": min(timed(spin, iterations) for _ in range(20)) * 1000,
        "version": platform.python_version(),
        "start_method": mp.get_start_method(),
    }


def timed(fn, arg):
    t0 = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t0


def warm_pool(workers):
    pool = mp.Pool(workers)
    # Pool starts every worker here; overlapping naps make each of them run a task before timing.
    pool.map_async(nap, [0.005] * (4 * workers), chunksize=1).get(TIMEOUT)
    return pool


def measure(workers, fn, items, check):
    pool = warm_pool(workers)
    try:
        t0 = time.perf_counter()
        results = pool.map_async(fn, items, chunksize=1).get(TIMEOUT)
        dt = time.perf_counter() - t0
    finally:
        pool.close()
        pool.join()  # every worker reaped before the next pool (or concur's) starts
    if not check(results):
        raise RuntimeError("wrong results")
    return len(items) / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--cpu-ms", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tiny-tasks", type=int, default=20_000)
    ap.add_argument("--cpu-tasks", type=int, default=1_000)
    ap.add_argument("--cpu-iterations", type=int, default=15_000)
    args = ap.parse_args()
    if args.calibrate:
        print(json.dumps(calibrate(args.cpu_ms)))
        return

    n, k = args.tiny_tasks, args.cpu_iterations
    expected = spin(k)
    workloads = {
        "tiny_tasks_per_s": lambda: measure(args.workers, inc, list(range(n)),
                                            lambda r: sum(r) == n * (n + 1) // 2),
        "cpu_tasks_per_s": lambda: measure(args.workers, spin, [k] * args.cpu_tasks,
                                           lambda r: all(v == expected for v in r)),
    }
    out = {"errors": {}}
    for name, run in workloads.items():
        try:
            out[name] = run()
        except Exception as e:  # report it in the table, keep measuring the rest
            out["errors"][name] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
