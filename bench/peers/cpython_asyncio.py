"""CPython's asyncio and uvloop on the coroutine workloads of bench/asyncio_bench (issue 12).

  a_switch         two tasks take turns through asyncio.sleep(0)              ns_per_switch
  a_switch_event   two tasks ping-pong through two asyncio.Events             ns_per_switch
  b_create_gather  create N tasks (each returns its argument), gather them    tasks_per_s
  c_parked_task    N tasks parked on one Event: bytes per task                bytes_per_task

Bytes per parked task are what tracemalloc sees allocated while the N tasks exist (their Task
objects, coroutine frames and the futures they wait on), over N: the Python counterpart of the
C++ side's heap growth.

Prints one JSON object {peer: {scenario: {counter: [one value per repetition]}} | {"skipped":
why}, "version": ...}. Run alone: /usr/bin/python3 bench/peers/cpython_asyncio.py --repetitions 3
"""
import argparse
import asyncio
import json
import platform
import time
import tracemalloc

try:
    import uvloop

    UVLOOP_MISSING = None
except ImportError as e:
    uvloop = None
    UVLOOP_MISSING = f"uvloop is not importable in this Python ({e})"


async def yielder(turns, count):
    for _ in range(turns):
        await asyncio.sleep(0)
        count[0] += 1


async def switch_sleep0(turns):
    count = [0]
    t0 = time.perf_counter()
    await asyncio.gather(yielder(turns, count), yielder(turns, count))
    dt = time.perf_counter() - t0
    assert count[0] == 2 * turns
    return dt * 1e9 / count[0]


async def pinger(rounds, mine, theirs, count):
    for _ in range(rounds):
        await mine.wait()
        mine.clear()
        count[0] += 1
        theirs.set()


async def switch_event(rounds):
    a, b = asyncio.Event(), asyncio.Event()
    count = [0]
    a.set()
    t0 = time.perf_counter()
    await asyncio.gather(pinger(rounds, a, b, count), pinger(rounds, b, a, count))
    dt = time.perf_counter() - t0
    assert count[0] == 2 * rounds
    return dt * 1e9 / count[0]


async def identity(x):
    return x


async def create_gather(n):
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(identity(i)) for i in range(n)]
    out = await asyncio.gather(*tasks)
    dt = time.perf_counter() - t0
    assert out == list(range(n))
    return n / dt


async def parked(event):
    await event.wait()


async def parked_bytes(n):
    go = asyncio.Event()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.create_task(parked(go)) for _ in range(n)]
    await asyncio.sleep(0)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # The list holding the tasks is the caller's, not the tasks': leave it out.
    lst = tasks.__sizeof__()
    go.set()
    await asyncio.gather(*tasks)
    return (after - before - lst) / n


def measure(run, args):
    out = {"a_switch": {"ns_per_switch": []}, "a_switch_event": {"ns_per_switch": []},
           "b_create_gather": {"tasks_per_s": []}, "c_parked_task": {"bytes_per_task": []}}
    # Python is ~100x slower per switch: a tenth of the turns keeps the run short.
    turns = max(1000, args.switches // 10)
    for _ in range(args.repetitions):
        out["a_switch"]["ns_per_switch"].append(run(switch_sleep0(turns)))
        out["a_switch_event"]["ns_per_switch"].append(run(switch_event(turns)))
        out["b_create_gather"]["tasks_per_s"].append(run(create_gather(args.tasks)))
        out["c_parked_task"]["bytes_per_task"].append(run(parked_bytes(args.tasks)))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--switches", type=int, default=1_000_000)
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--repetitions", type=int, default=7)
    args = p.parse_args()
    result = {"version": platform.python_version()}
    result["cpython_asyncio"] = measure(asyncio.run, args)
    if uvloop is None:
        result["uvloop"] = {"skipped": UVLOOP_MISSING}
    else:
        def run_uv(coro):
            loop = uvloop.new_event_loop()
            try:
                return loop.run_until_complete(coro)
            finally:
                loop.close()
        result["uvloop"] = measure(run_uv, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
