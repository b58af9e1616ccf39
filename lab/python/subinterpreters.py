"""CPython side of concur-lab's subinterpreters: a CPU-bound loop in N subinterpreters, each with
its own GIL (PEP 684, CPython 3.12+), on N threads, against the same work on one thread, and
against N threads of the main interpreter (one shared GIL) against one of its threads doing it all.

Uses _interpreters (3.13+) or _xxsubinterpreters (3.12), the private modules under PEP 734's
planned `interpreters`; on 3.12, create(isolated=True) gives the interpreter its own GIL, on 3.13
the "isolated" config does (printed: "gil"). Prints JSON; {"skip": reason} when this CPython has
no such module.
"""
import argparse
import json
import sys
import threading
import time

# The loop in a function, as count() below: module-level code would use slower global names.
LOOP = """
def count(n):
    total = 0
    for i in range(n):
        total = total + i
    assert total == n * (n - 1) // 2, "wrong sum"
count({n})
"""


def count(n):
    total = 0
    for i in range(n):
        total = total + i
    assert total == n * (n - 1) // 2, "wrong sum"


def interpreters_api():
    try:
        import _interpreters as api  # 3.13+
        config = api.new_config("isolated")
        return (lambda: api.create(config)), api.exec, api.destroy, getattr(config, "gil", "?")
    except ImportError:
        pass
    import _xxsubinterpreters as api  # 3.12
    return (lambda: api.create(isolated=True)), api.run_string, api.destroy, "own (isolated=True)"


def timed_threads(bodies):
    threads = [threading.Thread(target=b) for b in bodies]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True, help="one share's run length")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = {"version": sys.version.split()[0]}
    if sys.version_info < (3, 12):
        out["skip"] = ("CPython %s: before 3.12 every subinterpreter shares the one GIL; a "
                       "CPython 3.12 or later is needed (PEP 684)" % out["version"])
        print(json.dumps(out))
        return
    try:
        create, run, destroy, gil = interpreters_api()
    except ImportError as e:
        out["skip"] = "CPython %s has no subinterpreter module (%s); 3.12 or later is needed" % (
            out["version"], e)
        print(json.dumps(out))
        return
    out["gil"] = gil
    n = 200_000
    t0 = time.perf_counter()
    count(n)
    n = max(1000, int(n * args.seconds / (time.perf_counter() - t0)))
    code = LOOP.format(n=n)
    interps = [create() for _ in range(args.threads)]
    errors = []

    def in_interp(k, times):
        def body():
            try:
                for _ in range(times):
                    result = run(interps[k], code)
                    if result is not None:  # 3.13's exec returns an exception snapshot
                        errors.append(str(result))
            except Exception as e:  # noqa: BLE001 - reported, and the run fails below
                errors.append(repr(e))
        return body

    runs = {"serial_s": [], "subinterpreters_s": [], "main_serial_s": [],
            "shared_gil_threads_s": []}
    for _ in range(args.repeat):
        runs["serial_s"].append(timed_threads([in_interp(0, args.threads)]))
        runs["subinterpreters_s"].append(
            timed_threads([in_interp(k, 1) for k in range(args.threads)]))
        runs["main_serial_s"].append(
            timed_threads([lambda: [count(n) for _ in range(args.threads)]]))
        runs["shared_gil_threads_s"].append(
            timed_threads([lambda: count(n) for _ in range(args.threads)]))
    for i in interps:
        destroy(i)
    if errors:
        raise SystemExit("subinterpreter run failed: " + errors[0])
    out.update(runs)
    out.update({"work_per_share": n, "threads": args.threads})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
