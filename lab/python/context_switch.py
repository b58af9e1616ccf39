"""CPython side of concur-lab's context-switch: what one switch between two coroutines costs, and
one switch between two OS threads.

Every variant passes the turn back and forth between two parties and checks that the turn really
alternated; the cost of one switch is the time divided by the number of hand-overs. Variants:
  asyncio-event    two tasks ping-pong through two asyncio.Events (set / wait / clear)
  asyncio-sleep0   two tasks that each `await asyncio.sleep(0)` in turn (a bare yield)
  uvloop-event, uvloop-sleep0   the same on uvloop's loop, when uvloop can be imported
  threads          two threading.Threads ping-pong through two Locks (used as binary semaphores)
  threads-1cpu     the same with both threads pinned to one CPU (os.sched_setaffinity)

The variants' runs are interleaved (one run of each per round), and each variant's figure is its
best run. CPython's figures also differ from one process to the next (here the Event hand-over
came out near either of two values, steady within a process, whatever PYTHONHASHSEED), so with
--processes K the measurement runs in K fresh child processes and each variant reports the
median over processes of its best run, with the lowest and the highest.

Prints JSON: {"version", "processes", "variants": {name: {"per_switch_s", "low_s", "high_s",
"per_process_s": [...]}}, "uvloop_skipped": reason or null}; times are per switch.
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time


class TurnError(Exception):
    pass


def asyncio_event(rounds, loop_factory):
    async def main():
        to_pong, to_ping = asyncio.Event(), asyncio.Event()
        turn = [0]

        async def ping():
            for i in range(rounds):
                if turn[0] != 2 * i:
                    raise TurnError("ping ran out of turn")
                turn[0] += 1
                to_pong.set()
                await to_ping.wait()
                to_ping.clear()

        async def pong():
            for i in range(rounds):
                await to_pong.wait()
                to_pong.clear()
                if turn[0] != 2 * i + 1:
                    raise TurnError("pong ran out of turn")
                turn[0] += 1
                to_ping.set()

        t0 = time.perf_counter()
        await asyncio.gather(ping(), pong())
        elapsed = time.perf_counter() - t0
        if turn[0] != 2 * rounds:
            raise TurnError("the turn was not passed 2 x rounds times")
        return elapsed

    return run_on(loop_factory, main()), 2 * rounds


def asyncio_sleep0(rounds, loop_factory):
    async def main():
        last = [None]
        steps = [0]
        alternations = [0]

        async def party(name):
            for _ in range(rounds):
                if last[0] is not None and last[0] != name:
                    alternations[0] += 1
                last[0] = name
                steps[0] += 1
                await asyncio.sleep(0)

        t0 = time.perf_counter()
        await asyncio.gather(party("a"), party("b"))
        elapsed = time.perf_counter() - t0
        if steps[0] != 2 * rounds or alternations[0] < 2 * rounds - 2:
            raise TurnError("sleep(0) did not alternate between the two tasks")
        return elapsed

    return run_on(loop_factory, main()), 2 * rounds


def run_on(loop_factory, coro):
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def threads(rounds, pin_cpu):
    to_pong, to_ping = threading.Lock(), threading.Lock()
    to_pong.acquire()
    to_ping.acquire()
    turn = [0]
    errors = []

    def pin():
        if pin_cpu is not None:
            os.sched_setaffinity(0, {pin_cpu})  # 0: the calling thread

    def ping():
        pin()
        for i in range(rounds):
            if turn[0] != 2 * i:
                errors.append("ping ran out of turn")
                break
            turn[0] += 1
            to_pong.release()
            to_ping.acquire()

    def pong():
        pin()
        for i in range(rounds):
            to_pong.acquire()
            if turn[0] != 2 * i + 1:
                errors.append("pong ran out of turn")
                break
            turn[0] += 1
            to_ping.release()

    a = threading.Thread(target=ping)
    b = threading.Thread(target=pong)
    t0 = time.perf_counter()
    b.start()
    a.start()
    a.join()
    b.join()
    elapsed = time.perf_counter() - t0
    if errors or turn[0] != 2 * rounds:
        raise TurnError(errors[0] if errors else "the turn was not passed 2 x rounds times")
    return elapsed, 2 * rounds


def measure_all(fns, seconds, repeats):
    """Calibrates each variant's rounds to about `seconds` a run, then times `repeats` rounds of
    runs, one run of every variant per round (interleaved, so that they share the machine's
    moods)."""
    rounds = {}
    for name, fn in fns.items():
        elapsed, _ = fn(1000)
        rounds[name] = max(1000, int(1000 * seconds / max(elapsed, 1e-6)))
    runs = {name: [] for name in fns}
    switches = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            elapsed, switches[name] = fn(rounds[name])
            runs[name].append(elapsed / switches[name])
    return {name: {"best_s": min(r), "median_s": statistics.median(r), "runs": r,
                   "switches": switches[name]} for name, r in runs.items()}


def in_children(args):
    """Runs the measurement in args.processes fresh processes; gathers each one's best runs."""
    children = []
    for _ in range(args.processes):
        out = subprocess.run(
            [sys.executable, __file__, "--seconds", str(args.seconds), "--repeats",
             str(args.repeats), "--cpu", str(args.cpu), "--processes", "0"],
            check=True, capture_output=True, text=True, timeout=600).stdout
        children.append(json.loads(out))
    first = children[0]
    variants = {}
    for name in first["variants"]:
        bests = [child["variants"][name]["best_s"] for child in children]
        variants[name] = {"per_switch_s": statistics.median(bests), "low_s": min(bests),
                          "high_s": max(bests), "per_process_s": bests}
    return {"version": first["version"], "processes": args.processes, "variants": variants,
            "uvloop_skipped": first["uvloop_skipped"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True, help="per timed run")
    ap.add_argument("--repeats", type=int, required=True)
    ap.add_argument("--cpu", type=int, required=True, help="the CPU for the pinned variant")
    ap.add_argument("--processes", type=int, default=0,
                    help="measure in this many child processes (0: in this one)")
    args = ap.parse_args()
    if args.processes > 0:
        print(json.dumps(in_children(args)))
        return

    loops = {"asyncio": asyncio.new_event_loop}
    uvloop_skipped = None
    try:
        import uvloop
        loops["uvloop"] = uvloop.new_event_loop
    except ImportError as e:
        uvloop_skipped = f"uvloop is not importable in {sys.executable}: {e}"

    fns = {}
    for name, factory in loops.items():
        fns[name + "-event"] = lambda r, f=factory: asyncio_event(r, f)
        fns[name + "-sleep0"] = lambda r, f=factory: asyncio_sleep0(r, f)
    fns["threads"] = lambda r: threads(r, None)
    fns["threads-1cpu"] = lambda r: threads(r, args.cpu)
    variants = measure_all(fns, args.seconds, args.repeats)
    print(json.dumps({"version": sys.version.split()[0], "variants": variants,
                      "uvloop_skipped": uvloop_skipped}))


if __name__ == "__main__":
    main()
