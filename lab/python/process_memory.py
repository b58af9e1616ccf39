"""CPython side of concur-lab's process-memory: how much memory children use when given a big
array by fork (read-only, and through a list of Python floats), by spawn (pickled), and through
multiprocessing.shared_memory.

Each child touches all the data, says it is ready, and waits; meanwhile the parent reads the
child's /proc/<pid>/smaps_rollup. Prints JSON rows of per-child Rss, Pss and private MiB.
"""
import argparse
import json
import multiprocessing as mp
import sys
from multiprocessing import shared_memory

try:
    import numpy as np
except ImportError:  # the lab says so; the list and spawn rows still run
    np = None


def memory_of(pid):
    use = {"rss_mib": 0.0, "pss_mib": 0.0, "private_mib": 0.0}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2 or not parts[0].endswith(":"):
                continue  # the first line names the mapping, it is not a field
            kib = float(parts[1])
            if parts[0] == "Rss:":
                use["rss_mib"] = kib / 1024
            elif parts[0] == "Pss:":
                use["pss_mib"] = kib / 1024
            elif parts[0] in ("Private_Clean:", "Private_Dirty:"):
                use["private_mib"] += kib / 1024
    return use


def touch_and_wait(data, ready, done):
    total = 0.0
    for x in data if isinstance(data, list) else [data.sum()]:
        total += x
    ready.put(total)
    done.wait(120)


def touch_shared_and_wait(name, count, ready, done):
    shm = shared_memory.SharedMemory(name=name)
    view = np.ndarray((count,), dtype=np.float64, buffer=shm.buf)
    ready.put(float(view.sum()))
    done.wait(120)
    del view
    shm.close()


def measure(ctx, target, args, children):
    ready, done = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=target, args=args + (ready, done)) for _ in range(children)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    rows = [memory_of(p.pid) for p in procs]
    done.set()
    for p in procs:
        p.join()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, required=True)
    ap.add_argument("--children", type=int, default=2)
    args = ap.parse_args()
    count = args.mib * 1024 * 1024 // 8
    out = {"array_mib": args.mib, "version": sys.version.split()[0], "rows": {}, "notes": []}
    fork, spawn = mp.get_context("fork"), mp.get_context("spawn")
    if np is not None:
        array = np.ones(count)
        out["rows"]["fork, a numpy array"] = measure(fork, touch_and_wait, (array,), args.children)
        out["rows"]["spawn, the numpy array pickled"] = measure(spawn, touch_and_wait, (array,), args.children)
        shm = shared_memory.SharedMemory(create=True, size=count * 8)
        np.ndarray((count,), dtype=np.float64, buffer=shm.buf)[:] = 1.0
        out["rows"]["shared_memory"] = measure(spawn, touch_shared_and_wait, (shm.name, count), args.children)
        shm.close()
        shm.unlink()
        del array
    else:
        out["notes"].append("numpy is not importable here: the numpy rows were skipped")
    # The same amount of data as Python float objects: reading them writes their refcounts.
    floats = [1.0 + i * 1e-12 for i in range(args.mib * 1024 * 1024 // 32)]
    out["rows"]["fork, a list of Python floats"] = measure(fork, touch_and_wait, (floats,), args.children)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
