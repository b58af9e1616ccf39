"""CPython's process pools on the workloads of bench/process_pool_bench (issue 4).

Measures multiprocessing.Pool(2) (peer "cpython_pool") and concurrent.futures.ProcessPoolExecutor(2)
(peer "cpython_ppe") with this interpreter's default start method (fork on Linux for 3.11), each
case on a pool of its own that is warmed up first, as the C++ side does:

  a_submit_result   submit N tasks f(x) = x + 1, then the result of each          tasks_per_s
  b_map_chunk1      map(f) over N ints, chunksize 1, every result read            tasks_per_s
  b_map_chunk64     the same with chunksize 64 (Pool.map only)                    tasks_per_s
  c_round_trip      submit(f, i).result(), one at a time                          p50_us, p99_us
  d_array_copy      tasks each given a 1 MiB float64 numpy array (pickled), sum   mib_per_s
  d_array_shared    the same arrays in SharedMemory, attached in the worker       mib_per_s

Prints one JSON object: {peer: {scenario: {counter: [one value per repetition]}},
"start_method": ..., "version": ...}, with the C++ benchmark's scenario and counter names; a
scenario that cannot run here is {"skipped": "why"} (the d pair without numpy, or one that failed).

Run alone: /usr/bin/python3 bench/peers/cpython_process_pool.py --repetitions 3
(bench/process_pool_bench runs it with the counts it uses itself.)
"""
import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import platform
import statistics
import time
from multiprocessing import shared_memory

try:
    import numpy as np

    NUMPY_MISSING = None
except ImportError as e:  # the d pair needs numpy; the rest does not
    np = None
    NUMPY_MISSING = f"numpy is not importable in this Python ({e})"

WORKERS = 2
ARRAY_DOUBLES = 131_072  # 1 MiB of float64
DISTINCT_ARRAYS = 8
TIMEOUT = 120  # seconds: a stuck pool fails its case rather than hanging the run


# The tasks: module level, so both pools can send them to their workers by name.
def inc(x):
    return x + 1


def nap(seconds):
    time.sleep(seconds)
    return seconds


def sum_array(a):
    return float(a.sum())


def sum_shared(name):
    shm = shared_memory.SharedMemory(name=name)
    try:
        a = np.ndarray((ARRAY_DOUBLES,), dtype=np.float64, buffer=shm.buf)
        total = float(a.sum())
        del a  # close() refuses while a view of the buffer is alive
    finally:
        shm.close()
    return total


class PoolPeer:
    name = "cpython_pool"

    def __init__(self):
        self.pool = mp.Pool(WORKERS)
        # Pool forks its workers here; overlapping naps make sure both run tasks before timing.
        self.pool.map_async(nap, [0.005] * (4 * WORKERS), chunksize=1).get(TIMEOUT)

    def submit(self, fn, arg):
        return self.pool.apply_async(fn, (arg,))

    @staticmethod
    def result(future):
        return future.get(TIMEOUT)

    def map(self, fn, items, chunksize):
        return self.pool.map_async(fn, items, chunksize).get(TIMEOUT)

    def close(self):
        self.pool.close()
        self.pool.join()


class PpePeer:
    name = "cpython_ppe"

    def __init__(self):
        self.pool = cf.ProcessPoolExecutor(WORKERS)
        # With fork every worker starts at the first submit; with spawn or forkserver they start
        # on demand, so overlapping naps start both before timing.
        self.pool.submit(inc, 0).result(TIMEOUT)
        list(self.pool.map(nap, [0.005] * (4 * WORKERS), timeout=TIMEOUT))

    def submit(self, fn, arg):
        return self.pool.submit(fn, arg)

    @staticmethod
    def result(future):
        return future.result(TIMEOUT)

    def map(self, fn, items, chunksize):
        return self.pool.map(fn, items, timeout=TIMEOUT, chunksize=chunksize)

    def close(self):
        self.pool.shutdown(wait=True)


def percentile(values, p):
    """Linear interpolation between closest ranks, as support/stats.hpp computes it."""
    values = sorted(values)
    rank = p / 100 * (len(values) - 1)
    lo, hi = int(rank), min(int(rank) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (rank - lo)


def submit_result(peer, n):
    t0 = time.perf_counter()
    futures = [peer.submit(inc, i) for i in range(n)]
    total = sum(peer.result(f) for f in futures)
    dt = time.perf_counter() - t0
    if total != n * (n + 1) // 2:
        raise RuntimeError("wrong sum of results")
    return {"tasks_per_s": n / dt}


def map_items(peer, n, chunksize):
    items = list(range(n))
    t0 = time.perf_counter()
    total = count = 0
    for v in peer.map(inc, items, chunksize):
        total += v
        count += 1
    dt = time.perf_counter() - t0
    if count != n or total != n * (n + 1) // 2:
        raise RuntimeError("wrong results")
    return {"tasks_per_s": n / dt}


def round_trip(peer, n):
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        v = peer.result(peer.submit(inc, i))
        lat.append((time.perf_counter() - t0) * 1e6)
        if v != i + 1:
            raise RuntimeError("wrong result")
    return {"p50_us": statistics.median(lat), "p99_us": percentile(lat, 99)}


def arrays(peer, fn, args, expected, n):
    """Task i gets args[i % 8]; all are submitted, then every result is read and checked."""
    t0 = time.perf_counter()
    futures = [peer.submit(fn, args[i % DISTINCT_ARRAYS]) for i in range(n)]
    results = [peer.result(f) for f in futures]
    dt = time.perf_counter() - t0
    for i, r in enumerate(results):
        if r != expected[i % DISTINCT_ARRAYS]:
            raise RuntimeError(f"task {i} returned a wrong sum")
    return {"mib_per_s": n / dt}  # each task reads 1 MiB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--map-items", type=int, default=20_000)
    ap.add_argument("--round-trips", type=int, default=2_000)
    ap.add_argument("--array-tasks", type=int, default=200)
    ap.add_argument("--repetitions", type=int, default=7)
    args = ap.parse_args()

    scenarios = {
        "a_submit_result": lambda peer: submit_result(peer, args.tasks),
        "b_map_chunk1": lambda peer: map_items(peer, args.map_items, 1),
        "b_map_chunk64": lambda peer: map_items(peer, args.map_items, 64),
        "c_round_trip": lambda peer: round_trip(peer, args.round_trips),
    }
    segments = []
    if np is not None:
        # Array j holds k % 1024 + j: small integers, so every sum is exact whatever the order.
        data = [np.arange(ARRAY_DOUBLES, dtype=np.float64) % 1024 + j
                for j in range(DISTINCT_ARRAYS)]
        expected = [float(a.sum()) for a in data]
        # The segments are made before any pool exists: that starts the resource tracker in this
        # process, and the forked workers share it, so their attaching (which 3.11 registers too)
        # neither warns of leaks nor unlinks the segments when a worker exits.
        for a in data:
            shm = shared_memory.SharedMemory(create=True, size=a.nbytes)
            np.ndarray(a.shape, dtype=a.dtype, buffer=shm.buf)[:] = a
            segments.append(shm)
        names = [shm.name for shm in segments]
        scenarios["d_array_copy"] = lambda peer: arrays(peer, sum_array, data, expected,
                                                        args.array_tasks)
        scenarios["d_array_shared"] = lambda peer: arrays(peer, sum_shared, names, expected,
                                                          args.array_tasks)

    peers = (PoolPeer, PpePeer)
    out = {p.name: {} for p in peers}
    for p in peers:
        if NUMPY_MISSING:
            out[p.name]["d_array_copy"] = {"skipped": NUMPY_MISSING}
            out[p.name]["d_array_shared"] = {"skipped": NUMPY_MISSING}
    try:
        # Repetitions outermost, so a noisy moment is spread over every peer and scenario.
        for _ in range(args.repetitions):
            for p in peers:
                for scenario, run in scenarios.items():
                    if p is PpePeer and scenario == "b_map_chunk64":
                        continue  # Pool.map's chunksize is the one compared
                    cell = out[p.name].setdefault(scenario, {})
                    if "skipped" in cell:
                        continue
                    peer = p()  # a pool per case, as on the C++ side
                    try:
                        for counter, value in run(peer).items():
                            cell.setdefault(counter, []).append(value)
                    except Exception as e:  # report it in the table, keep measuring the rest
                        out[p.name][scenario] = {"skipped": f"failed: {type(e).__name__}: {e}"}
                    finally:
                        peer.close()
    finally:
        for shm in segments:
            shm.close()
            shm.unlink()
    out["start_method"] = mp.get_start_method()
    out["version"] = platform.python_version()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
