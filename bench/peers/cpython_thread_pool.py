"""CPython's concurrent.futures.ThreadPoolExecutor(2) on the workloads of bench/thread_pool_bench.

Prints one JSON object: {scenario: {counter: [one value per repetition]}}, the same scenario and
counter names the C++ benchmark uses, so its table can put CPython beside the C++ pools.
"""
import argparse
import concurrent.futures as cf
import json
import statistics
import time

WORKERS = 2


def work_factory(target_ms_per_1000):
    """A function of ~1 us of Python work, calibrated so that 1,000 calls take ~0.9 ms."""
    n = 8

    def work(i, n_=None):
        x = i
        for _ in range(n_ if n_ is not None else n):
            x = (x * 31 + 7) & 0xFFFF
        return x

    for _ in range(6):
        runs = []
        for _ in range(11):
            t0 = time.perf_counter()
            for i in range(1000):
                work(i, n)
            runs.append((time.perf_counter() - t0) * 1e3)
        n = max(1, round(n * target_ms_per_1000 / statistics.median(runs)))

    def calibrated(i):
        return work(i, n)

    return calibrated


def submit_result(pool, tasks):
    t0 = time.perf_counter()
    futures = [pool.submit(int, i) for i in range(tasks)]
    total = sum(f.result() for f in futures)
    dt = time.perf_counter() - t0
    assert total == tasks * (tasks - 1) // 2
    return tasks / dt


def round_trip(pool, trips):
    lat = []
    for i in range(trips):
        t0 = time.perf_counter()
        assert pool.submit(int, i).result() == i
        lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    return statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * (len(lat) - 1) + 0.5))]


def fan_out_in(pool, work, n, reps=20):
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        futures = [pool.submit(work, i) for i in range(n)]
        cf.wait(futures)
        runs.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(runs)


def map_items(pool, n):
    t0 = time.perf_counter()
    total = sum(pool.map(lambda x: x * 2, range(n)))
    dt = time.perf_counter() - t0
    assert total == n * (n - 1)
    return n / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--round-trips", type=int, default=10_000)
    ap.add_argument("--fan-out", type=int, default=1_000)
    ap.add_argument("--map-items", type=int, default=100_000)
    ap.add_argument("--repetitions", type=int, default=7)
    args = ap.parse_args()

    work = work_factory(0.9)
    out = {"a_submit_result": {"tasks_per_s": []},
           "b_round_trip": {"p50_us": [], "p99_us": []},
           "c_fan_out_in": {"ms": []},
           "e_map": {"items_per_s": []}}
    with cf.ThreadPoolExecutor(WORKERS) as pool:
        # Python's rates do not depend on the count; a quarter of the tasks keeps the run short.
        for _ in range(args.repetitions):
            out["a_submit_result"]["tasks_per_s"].append(submit_result(pool, max(1000, args.tasks // 4)))
            p50, p99 = round_trip(pool, max(100, args.round_trips // 4))
            out["b_round_trip"]["p50_us"].append(p50)
            out["b_round_trip"]["p99_us"].append(p99)
            out["c_fan_out_in"]["ms"].append(fan_out_in(pool, work, args.fan_out))
            out["e_map"]["items_per_s"].append(map_items(pool, max(1000, args.map_items // 4)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
