"""CPython side of concur-lab's fork-vs-spawn: how long each start method takes to start a
process that does nothing and to see it exit; and what happens to a script that starts a
process without `if __name__ == '__main__':` under spawn.

  fork_vs_spawn.py --starts N              time the start methods (JSON)
  fork_vs_spawn.py --unguarded MARKS       (used by the first mode) the unguarded script itself
"""
import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time


def nothing():
    pass


def time_starts(method, starts):
    ctx = mp.get_context(method)
    runs = []
    for _ in range(starts):
        t0 = time.perf_counter()
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
        runs.append(time.perf_counter() - t0)
        assert p.exitcode == 0
    return statistics.median(runs)


def run_unguarded(marks):
    """Runs this file as a script that starts a spawn child with no main guard; returns what
    happened: how many times the script body ran, and what the child printed."""
    env = dict(os.environ, CONCUR_LAB_UNGUARDED_MARKS=marks)
    r = subprocess.run([sys.executable, __file__, "--unguarded", marks], env=env,
                       capture_output=True, text=True, timeout=120)
    with open(marks) as f:
        runs = len(f.read().split())
    os.remove(marks)
    lines = [line.strip() for line in r.stderr.strip().splitlines()]
    errors = [i for i, line in enumerate(lines) if "Error" in line.split(":")[0]]
    # The exception line, and its message's first sentence when it continues on the next lines.
    first = errors[-1] if errors else max(0, len(lines) - 1)
    tail = " ".join(line for line in lines[first:first + 3] if line)
    return {"script_runs": runs, "exit_code": r.returncode,
            "stderr_tail": tail[:tail.find(".") + 1] if "." in tail else tail}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--unguarded")
    args = ap.parse_args()
    out = {"version": sys.version.split()[0],
           "seconds": {m: time_starts(m, args.starts) for m in ("fork", "spawn", "forkserver")}}
    marks = f"/tmp/concur-lab-unguarded-{os.getpid()}"
    out["unguarded"] = run_unguarded(marks)
    print(json.dumps(out))


# The unguarded script: everything below runs again in a spawned child, as on Windows.
if "--unguarded" in sys.argv or os.environ.get("CONCUR_LAB_UNGUARDED_MARKS"):
    marks_file = os.environ["CONCUR_LAB_UNGUARDED_MARKS"]
    depth = int(os.environ.get("CONCUR_LAB_UNGUARDED_DEPTH", "0"))
    with open(marks_file, "a") as f:
        f.write(f"{os.getpid()}\n")
    if depth <= 3:  # a safety net for the lab itself, should Python not stop the recursion
        os.environ["CONCUR_LAB_UNGUARDED_DEPTH"] = str(depth + 1)
        mp.set_start_method("spawn", force=True)
        child = mp.Process(target=nothing)
        child.start()
        child.join()
        print(f"child exit code {child.exitcode}")
    sys.exit(0)

if __name__ == "__main__":
    main()
