"""CPython side of concur-lab's preemption: CPU-bound threads pinned to one core.

Pins the process to --cpu (threads started afterwards inherit it), runs --threads threads of a
counting loop for --seconds, and prints JSON: over all of them, voluntary and involuntary
context switches (/proc/self/task/<tid>/status) and time on the core and waiting for it
(/proc/self/task/<tid>/schedstat), each thread reading its own before and after.
"""
import argparse
import json
import os
import sys
import threading
import time


def task_figures():
    tid = threading.get_native_id()
    out = {}
    with open("/proc/self/task/%d/status" % tid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "voluntary_ctxt_switches":
                out["voluntary"] = int(value)
            elif key == "nonvoluntary_ctxt_switches":
                out["involuntary"] = int(value)
    try:
        with open("/proc/self/task/%d/schedstat" % tid) as f:
            run_ns, wait_ns, _ = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        run_ns = wait_ns = 0
    out["on_cpu_s"], out["wait_s"] = run_ns / 1e9, wait_ns / 1e9
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    totals = {"voluntary": 0, "involuntary": 0, "on_cpu_s": 0.0, "wait_s": 0.0}
    lock = threading.Lock()
    deadline = time.perf_counter() + args.seconds

    def body():
        before = task_figures()
        n = 0
        while time.perf_counter() < deadline:
            for i in range(1000):
                n = n + i
        after = task_figures()
        with lock:
            for k in totals:
                totals[k] += after[k] - before[k]

    workers = [threading.Thread(target=body) for _ in range(args.threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    totals["version"] = sys.version.split()[0]
    totals["threads"] = args.threads
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
